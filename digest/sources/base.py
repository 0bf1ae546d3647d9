"""What a source kind is: the `Source` protocol every `[[sources]] kind` implements.

A kind fetches bytes through the `Fetcher` (the only place it touches the network) and parses
bytes into papers (never the network). `digest.sources.SOURCES` maps each kind name to its class;
`fetch_listing` looks the configured kind up there.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import ClassVar, NamedTuple, Protocol

from digest.config import SourceConfig
from digest.core.models import Paper
from digest.sources.fetch import Fetcher, FetchResult

log = logging.getLogger(__name__)


class Parsed(NamedTuple):
    """One response's papers, the title the response gives itself (a feed's channel title), and
    what was left out of it: malformed items (`skipped`) and repeats of an earlier item's id
    (`duplicates`), each logged as a warning when parsed and counted in the run's summary."""

    papers: list[Paper]
    title: str | None = None
    skipped: int = 0
    duplicates: int = 0


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


def first_of_each(papers: Iterable[Paper], source: str) -> tuple[list[Paper], int]:
    """The papers of one response with each id once, and how many repeats were left out.

    The rule: within one response the first item with an id is kept as it is, and later items
    with the same id are dropped (logged and counted), not merged. Items that share an id in one
    listing are a publisher's mistake (a guid reused for every entry), not one paper described
    twice, so merging them would mix different papers' authors and categories. Papers from
    different responses or sources are still merged (`merge_papers`): there an id seen twice is
    the same paper.
    """
    kept: dict[str, Paper] = {}
    repeated: dict[str, int] = {}
    for paper in papers:
        if paper.id in kept:
            repeated[paper.id] = repeated.get(paper.id, 0) + 1
        else:
            kept[paper.id] = paper
    duplicates = sum(repeated.values())
    if duplicates:
        worst = max(repeated, key=lambda k: repeated[k])
        log.warning(
            "source %r: %d items repeat the id of an earlier item (%r is listed %d times); kept the first",
            source, duplicates, worst[:200], repeated[worst] + 1,
        )  # fmt: skip
    return list(kept.values()), duplicates
