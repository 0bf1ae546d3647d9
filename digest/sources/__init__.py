"""The sources stage: fetch each configured source's bytes and parse them into a `Listing`.

Each `[[sources]] kind` is a class implementing `base.Source` (fetch bytes through the
`fetch.Fetcher`; parse bytes into papers, never the network); `SOURCES` maps the kind to it and
`fetch_listing` joins the two halves. It never touches the database: the fetcher reads the cache
of earlier validators, and the caller stores the returned `FetchResult`s with the snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import get_args

from digest.config import SourceConfig
from digest.config.sections import SourceKind
from digest.core.models import Listing, Paper, merge_papers
from digest.sources.arxiv import ArxivRssSource, parse_arxiv_rss
from digest.sources.base import Parsed, Source, display_name
from digest.sources.feed import FeedSource, parse_feed
from digest.sources.fetch import CachedResponse, Fetcher, FetchResult
from digest.sources.hf import HfDailySource, parse_hf_daily

__all__ = [
    "SOURCES",
    "CachedResponse",
    "FetchResult",
    "Fetcher",
    "Parsed",
    "Source",
    "fetch_listing",
    "parse_arxiv_rss",
    "parse_feed",
    "parse_hf_daily",
    "source_for",
]

SOURCES: dict[str, type[Source]] = {s.kind: s for s in (HfDailySource, ArxivRssSource, FeedSource)}

# The config's `SourceKind` (which gives the user the list of kinds when one is misspelt) and this
# registry must name the same kinds: a kind in one only is a config that validates and cannot run,
# or an implementation nobody can configure.
if set(SOURCES) != set(get_args(SourceKind)):  # pragma: no cover - caught on import, in every test
    raise ImportError(
        f"digest.sources.SOURCES {sorted(SOURCES)} and config SourceKind "
        f"{sorted(get_args(SourceKind))} must name the same kinds"
    )


def source_for(config: SourceConfig) -> Source:
    """The implementation of `config.kind`, made for `config`."""
    return SOURCES[config.kind](config)


def fetch_listing(
    source: SourceConfig, fetcher: Fetcher, date: dt.date, *, now: dt.datetime
) -> tuple[Listing, list[FetchResult]]:
    """Fetch and parse one configured source for run date `date`.

    Returns the listing (duplicates merged by id, each paper labelled with the source's display
    name) and every response it was built from, in order.
    Raises FetchError or ParseError naming the URL or the source.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(date, dt.datetime):  # a datetime is a date too, but its isoformat() has a time
        date = date.date()
    kind = source_for(source)
    results = kind.fetch(fetcher, date)
    parsed = [kind.parse(result.body) for result in results]
    title = next((p.title for p in parsed if p.title), None)
    label = display_name(source, type(kind), title)
    papers = merge_papers(_labelled(p, label) for one in parsed for p in one.papers)
    listing = Listing(source=source.name, papers=tuple(papers), fetched_at=now.astimezone(dt.UTC))
    return listing, results


def _labelled(paper: Paper, label: str) -> Paper:
    return dataclasses.replace(paper, source_labels=(label,))
