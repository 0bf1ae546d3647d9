"""What a source kind is: the `Source` protocol every `[[sources]] kind` implements.

A kind fetches bytes through the `Fetcher` (the only place it touches the network) and parses
bytes into papers (never the network). `digest.sources.SOURCES` maps each kind name to its class;
`fetch_listing` looks the configured kind up there.
"""

from __future__ import annotations

import datetime as dt
from typing import ClassVar, NamedTuple, Protocol

from digest.config import SourceConfig
from digest.core.models import Paper
from digest.sources.fetch import Fetcher, FetchResult


class Parsed(NamedTuple):
    """One response's papers, and the title the response gives itself (a feed's channel title)."""

    papers: list[Paper]
    title: str | None = None


class Source(Protocol):
    """One kind of source, made for one configured source (`[[sources]]` in digest.toml)."""

    kind: ClassVar[str]  # the `kind` in digest.toml
    # What readers see when the config sets no `display_name`; None: the title the listing gives
    # itself, else the source's name.
    label: ClassVar[str | None]

    def __init__(self, config: SourceConfig) -> None: ...

    def fetch(self, fetcher: Fetcher, date: dt.date) -> list[FetchResult]:
        """Every response the listing for run date `date` is made of, in order.

        May parse what it fetched (to follow a pager), but returns only the responses.
        Raises FetchError naming the URL.
        """
        ...

    def parse(self, body: bytes) -> Parsed:
        """One response's papers, unmerged. Pure: no network, no clock. Raises ParseError."""
        ...


def display_name(config: SourceConfig, source: type[Source], title: str | None = None) -> str:
    """The configured `display_name`, else the kind's label, else the listing's title, else the name."""
    return config.display_name or source.label or title or config.name
