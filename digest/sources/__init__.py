"""The sources stage: fetch each configured source's bytes and parse them into a `Listing`.

Each `[[sources]] kind` is a class implementing `base.Source` (fetch bytes through the
`fetch.Fetcher`; parse bytes into papers, never the network); `SOURCES` maps the kind to it and
`fetch_listing` joins the two halves. It never touches the database: the fetcher reads the cache
of earlier validators, and the caller stores the returned `FetchResult`s with the snapshot.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import NamedTuple, get_args

from digest.config import SourceConfig
from digest.config.sections import SourceKind
from digest.core.errors import FetchError, ParseError
from digest.core.models import Listing, Paper, merge_papers
from digest.sources import arxiv_api
from digest.sources.arxiv import ArxivRssSource, announced_day, parse_arxiv_rss
from digest.sources.arxiv_api import business_days_between
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
    source: SourceConfig,
    fetcher: Fetcher,
    date: dt.date,
    *,
    now: dt.datetime,
    last_day: dt.date | None = None,
    backfill_days: int = 0,
) -> tuple[Listing, list[FetchResult]]:
    """Fetch and parse one configured source for run date `date`.

    Returns the listing (duplicates merged by id, each paper labelled with the source's display
    name) and every response it was built from, in order. With `last_day`, the newest
    announcement day of this source a run stored, the days it missed since are fetched too (the
    arXiv API for an arXiv feed, `date=` for Hugging Face), back to `backfill_days` before `date`;
    their papers carry `announced`. A listing not newer than `last_day` backfills nothing.
    Raises FetchError or ParseError naming the URL or the source.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(date, dt.datetime):  # a datetime is a date too, but its isoformat() has a time
        date = date.date()
    kind = source_for(source)
    results = kind.fetch(fetcher, date)
    parsed = [parse_at(kind, result) for result in results]
    title = next((p.title for p in parsed if p.title), None)
    label = display_name(source, type(kind), title)
    days, announced = _days(source, results, date)
    missed = _missed(
        source, days, last_day, date - dt.timedelta(days=backfill_days) if backfill_days else None
    )
    failed = None
    try:
        extra, extra_results = _backfill(source, fetcher, missed.fetch)
    except (FetchError, ParseError) as exc:  # the day's own listing stands; those days wait
        where = "[[sources]] api_url" if source.kind == "arxiv_rss" else "the days' URLs"
        days_text = ", ".join(d.isoformat() for d in missed.fetch)
        failed = f"missed days {days_text} could not be fetched ({where}): {exc}"
        extra, extra_results = Parsed([]), []
    papers = merge_papers(_labelled(p, label) for one in (*parsed, extra) for p in one.papers)
    listing = Listing(
        source=source.name,
        papers=tuple(papers),
        fetched_at=now.astimezone(dt.UTC),
        skipped=sum(p.skipped for p in parsed),  # items the responses left out, per `Parsed`
        duplicates=sum(p.duplicates for p in parsed),
        days=() if failed else tuple(sorted({*days, *missed.fetch})),
        announced=announced,
        backfilled=() if failed else tuple(missed.fetch),
        cut=tuple(missed.cut),
        backfill_failed=failed,
    )
    return listing, [*results, *extra_results]


class _Missed(NamedTuple):
    fetch: list[dt.date]  # missed days to fetch now
    cut: list[dt.date]  # missed days older than the cap


def _days(
    source: SourceConfig, results: list[FetchResult], date: dt.date
) -> tuple[list[dt.date], dt.date | None]:
    """The announcement days the listing covers, and the day it says it is of."""
    if source.kind == "arxiv_rss":
        announced = announced_day(results[0].body) if results else None
        return ([announced] if announced else []), announced
    if source.kind == "hf_daily":
        # Hugging Face's days are the `date=` asked for: it does not say a list is of an old day.
        return sorted(date - dt.timedelta(days=back) for back in range(source.days)), None
    return [], None


def _missed(
    source: SourceConfig, days: list[dt.date], last_day: dt.date | None, oldest: dt.date | None
) -> _Missed:
    """The announcement days between `last_day` and the listing's own that no run fetched."""
    if last_day is None or not days or days[-1] <= last_day:
        return _Missed([], [])
    if source.kind == "arxiv_rss":
        missed = business_days_between(last_day, days[0])
    else:  # hf_daily: every calendar day has a list
        missed = [last_day + dt.timedelta(days=n) for n in range(1, (days[0] - last_day).days)]
    if oldest is None:
        return _Missed([], missed)
    return _Missed([d for d in missed if d >= oldest], [d for d in missed if d < oldest])


def _backfill(
    source: SourceConfig, fetcher: Fetcher, days: list[dt.date]
) -> tuple[Parsed, list[FetchResult]]:
    """The papers of missed days `days` (each `announced` on its day), and the responses."""
    if not days:
        return Parsed([]), []
    papers: list[Paper] = []
    results: list[FetchResult] = []
    if source.kind == "arxiv_rss":
        for day, result in arxiv_api.fetch_days(fetcher, source, days):
            papers += arxiv_api.parse_page(result.body, source.name, day).papers
            results.append(result)
    elif source.kind == "hf_daily":
        one_day = source_for(source.model_copy(update={"days": 1}))
        for day in days:
            for result in one_day.fetch(fetcher, day):
                papers += [dataclasses.replace(p, announced=day) for p in one_day.parse(result.body).papers]
                results.append(result)
    return Parsed(papers), results


def parse_at(kind: Source, result: FetchResult) -> Parsed:
    """`kind.parse` of a response's body; a ParseError names the response's URL."""
    try:
        return kind.parse(result.body)
    except ParseError as exc:
        raise exc.at(result.url) from None


def _labelled(paper: Paper, label: str) -> Paper:
    return dataclasses.replace(paper, source_labels=(label,))
