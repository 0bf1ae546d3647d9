"""fetch → snapshot → diff: the first half of every run, and all of `digest fetch`.

Every source is fetched and parsed before anything is stored, so a failed fetch stores nothing;
the snapshot and its HTTP validators are stored in one transaction.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from digest.config import Settings
from digest.core.errors import ConfigError
from digest.core.models import CachedResponse, DiffResult, FetchResult, Paper, merge_papers
from digest.core.progress import Progress, QuietProgress
from digest.diff import diff
from digest.sources import fetch_listing
from digest.sources.fetch import Fetcher
from digest.store import Store


def run_date(settings: Settings, now: dt.datetime) -> dt.date:
    """Today in the configured time zone: what `--date` defaults to."""
    return now.astimezone(settings.schedule.tz).date()


def fetch_all(
    settings: Settings,
    cache: dict[str, CachedResponse],
    date: dt.date,
    now: dt.datetime,
    *,
    transport: Any = None,
    progress: Progress | None = None,
) -> tuple[list[Paper], list[FetchResult]]:
    """Fetch and parse every source; any failure raises before anything is stored."""
    papers: list[Paper] = []
    responses: list[FetchResult] = []
    progress = progress or QuietProgress()
    advance = progress.stage("fetch", len(settings.sources))
    with Fetcher(settings.fetch, cache, transport=transport) as fetcher:
        for source in settings.sources:
            listing, results = fetch_listing(source, fetcher, date, now=now)
            papers.extend(listing.papers)
            responses.extend(results)
            advance(f"{source.name}: {len(listing.papers)} papers")
    return merge_papers(papers), responses


def new_on(store: Store, date: dt.date) -> DiffResult | None:
    """The diff of a stored snapshot against everything before it (None: no snapshot that day)."""
    papers = store.snapshot(date)
    if papers is None:
        return None
    return diff(papers, store.seen_before(date, [p.id for p in papers]))


def fetch_and_store(
    settings: Settings,
    store: Store,
    date: dt.date,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    transport: Any = None,
    progress: Progress | None = None,
) -> DiffResult:
    """fetch → snapshot → diff: the first half of every run (and all of `digest fetch`).

    A day's listing is fetched once: when a snapshot of `date` is
    stored, it is what the day's papers are, and re-running the day (to send what is pending)
    gives the same answer. Fetching again would store what the sources list *now* under `date`;
    papers added since, which the next day's run would send as new, would then count as seen
    before it, and readers already sent the day's digest would never get them.
    """
    stored = new_on(store, date)  # a source added since joins from the next day
    if stored is not None:
        return stored
    if not dry_run:
        check_snapshot_date(store, date, run_date(settings, now))
    papers, responses = fetch_all(
        settings, store.http_cache(), date, now, transport=transport, progress=progress
    )
    result = diff(papers, store.seen_before(date, [p.id for p in papers]))
    if not dry_run:
        store.record_snapshot(date, papers, responses, sources=[s.name for s in settings.sources], now=now)
    return result


def check_snapshot_date(store: Store, date: dt.date, today: dt.date) -> None:
    """ConfigError unless a snapshot may be stored for `date`: not after `today` (in the
    configured time zone), and not before the newest snapshot stored.

    What is new on a day is what no earlier snapshot lists, so a snapshot stored under an earlier
    date (a mistyped `--date 0206-...`) would make its papers "seen before" every later day: they
    would never be sent. A day is fetched once, so a snapshot stored ahead of its day (a listing
    such as arXiv's shows only the current one) would stand for that day when it comes.
    """
    if date > today:
        raise ConfigError(f"--date {date}: that is in the future (today is {today} in [schedule] timezone)")
    newest = store.snapshot_dates(limit=1)
    if newest and date < newest[0]:
        raise ConfigError(
            f"--date {date}: a snapshot for the later date {newest[0]} is already stored; storing one "
            f"for {date} would make its papers seen before {newest[0]}, never new; use {newest[0]} or later "
            "(or --dry-run to look without storing)"
        )
