"""fetch → snapshot → diff: the first half of every run, and all of `digest fetch`.

Every source is fetched and parsed before anything is stored; the snapshot, its HTTP validators
and the announcement days each source listed are stored in one transaction. A source that fails
or is stale is left out of it (so nothing hides its day from the next run) and the others go on;
only when every source fails is nothing stored.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digest.config import Settings, SourceConfig
from digest.core.errors import ConfigError, DigestError, FetchError, ParseError
from digest.core.models import CachedResponse, DiffResult, FetchResult, Listing, Paper, merge_papers
from digest.core.progress import Progress, QuietProgress
from digest.diff import diff
from digest.sources import fetch_listing
from digest.sources.fetch import Fetcher
from digest.store import Store

log = logging.getLogger(__name__)


def run_date(settings: Settings, now: dt.datetime) -> dt.date:
    """Today in the configured time zone: what `--date` defaults to."""
    return now.astimezone(settings.schedule.tz).date()


@dataclass(frozen=True)
class SourceFetch:
    """One source's outcome: its listing and responses, or the error it failed with."""

    name: str
    listing: Listing | None
    results: list[FetchResult] = field(default_factory=list)
    error: DigestError | None = None


@dataclass
class FetchReport:
    """What the fetch stage of a run found: the diff, and how each source fared."""

    result: DiffResult
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, why): nothing of it stored
    stale: list[tuple[str, str]] = field(default_factory=list)  # (source, why): nothing of it stored
    notes: list[str] = field(default_factory=list)  # days backfilled, days the cap cut, sources left
    # source: items its responses left out (logged when parsed), whether the source was stored or not
    malformed_items: dict[str, int] = field(default_factory=dict)  # not a paper: skipped
    duplicate_ids: dict[str, int] = field(default_factory=dict)  # an earlier item's id: first kept


def fetch_sources(
    settings: Settings,
    sources: Sequence[SourceConfig],
    cache: dict[str, CachedResponse],
    date: dt.date,
    now: dt.datetime,
    *,
    last_days: Mapping[str, dt.date] | None = None,
    transport: Any = None,
    progress: Progress | None = None,
) -> list[SourceFetch]:
    """Fetch and parse each of `sources`; a source that fails is returned with its error, and the
    others are fetched all the same. With `last_days`, days a source missed are backfilled."""
    out: list[SourceFetch] = []
    advance = (progress or QuietProgress()).stage("fetch", len(sources))
    with Fetcher(settings.fetch, cache, transport=transport) as fetcher:
        for source in sources:
            last = (last_days or {}).get(source.name)
            try:
                listing, results = fetch_listing(
                    source, fetcher, date, now=now, last_day=last, backfill_days=settings.fetch.backfill_days
                )
            except (FetchError, ParseError) as exc:
                log.warning("source %r failed: %s", source.name, exc)
                out.append(SourceFetch(source.name, None, error=exc))
                advance(f"{source.name}: failed")
                continue
            out.append(SourceFetch(source.name, listing, results))
            advance(f"{source.name}: {len(listing.papers)} papers")
    return out


def fetch_all(
    settings: Settings,
    cache: dict[str, CachedResponse],
    date: dt.date,
    now: dt.datetime,
    *,
    transport: Any = None,
    progress: Progress | None = None,
) -> tuple[list[Paper], list[FetchResult]]:
    """Fetch and parse every source, without backfilling; the first failure raises."""
    fetched = fetch_sources(
        settings, settings.sources, cache, date, now, transport=transport, progress=progress
    )
    for one in fetched:
        if one.error is not None:
            raise one.error
    papers = [p for one in fetched if one.listing for p in one.listing.papers]
    return merge_papers(papers), [r for one in fetched for r in one.results]


def new_on(store: Store, date: dt.date) -> DiffResult | None:
    """The diff of a stored snapshot against everything before it (None: no snapshot that day)."""
    papers = store.snapshot(date)
    if papers is None:
        return None
    return diff(papers, store.seen_before(date, [p.id for p in papers]))


def fetch_day(
    settings: Settings,
    store: Store,
    date: dt.date,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    transport: Any = None,
    progress: Progress | None = None,
    plans: bool = False,
    before_store: Callable[[], object] | None = None,
) -> FetchReport:
    """fetch → snapshot → diff: the first half of every run (`plans=True`: the run plans the
    date's digests right after) and all of `digest fetch`.

    A day's listing is fetched once per source: when the snapshot of `date` covers a source, it
    is what the day's papers of that source are, and re-running the day gives the same answer.
    Fetching again would store what the source lists *now* under `date`; papers added since,
    which the next day's run would send as new, would then count as seen before it, and readers
    already sent the day's digest would never get them.

    A source that fails (or is stale) is reported and left out: nothing of it is stored (its
    validators, its papers, its days), and the others go on. A re-run of the date fetches the
    sources its snapshot lacks, as long as no digest of the date is recorded yet; after that the
    next run backfills them (the days each source listed are stored, so it knows what it missed).
    Only when every source fails does it raise, with nothing stored. `before_store` is called
    before anything is stored; whatever it raises, nothing is (a run's profiles, read meanwhile).
    """
    covered = store.snapshot_sources(date)
    if covered is not None:
        _refuse_compacted(settings, store, date)
    stored = store.snapshot(date)
    covered = covered or []
    report = FetchReport(DiffResult((), ()))
    wanted = _still_to_fetch(
        settings, store, date, now, stored, covered, report, dry_run=dry_run, plans=plans
    )
    if stored is not None and not wanted:
        report.result = diff(stored, store.seen_before(date, [p.id for p in stored]))
        return report
    last = store.last_days(before=date)
    fetched = fetch_sources(
        settings,
        wanted,
        store.http_cache(),
        date,
        now,
        last_days=last,
        transport=transport,
        progress=progress,
    )
    good = _sort(store, date, fetched, last, report, first=stored is None)
    listings = [one.listing for one in good if one.listing is not None]
    papers = merge_papers([*(stored or []), *(p for listing in listings for p in listing.papers)])
    report.result = diff(papers, store.seen_before(date, [p.id for p in papers]))
    if not dry_run and (stored is None or good):
        if before_store is not None:
            before_store()
        store.record_snapshot(
            date,
            papers,
            [r for one in good for r in one.results],
            sources=[*covered, *(one.name for one in good)],
            now=now,
            days={listing.source: listing.days for listing in listings},
        )
    return report


def _still_to_fetch(
    settings: Settings,
    store: Store,
    date: dt.date,
    now: dt.datetime,
    stored: list[Paper] | None,
    covered: list[str],
    report: FetchReport,
    *,
    dry_run: bool,
    plans: bool,
) -> list[SourceConfig]:
    """The sources whose listing of `date` is not stored yet, and may still be. A first snapshot
    of a date is checked against the dates already stored (`check_snapshot_date`).

    A source missing from a stored day is fetched into it only while the day is open: no digest
    of it in the ledger, no later day stored, and, for `digest fetch` (which plans nothing), its
    digests not recorded. Papers added to a day whose digests went out would miss those readers;
    added by a fetch to a recorded day they would be "seen before" the next day and in nobody's
    digest; added once a later day is stored, they are that later day's news and would go out
    twice. The next run backfills the source's missed day instead."""
    wanted = [s for s in settings.sources if s.name not in covered]
    if stored is None and not dry_run:
        check_snapshot_date(store, date, run_date(settings, now))
    elif stored is not None and wanted and _closed(store, date, plans=plans):
        report.notes += [
            f"{s.name}: not in {date}'s listing, whose digests are recorded (or a later day is stored); "
            "the next run backfills it"
            for s in wanted
        ]
        return []
    return wanted


def _closed(store: Store, date: dt.date, *, plans: bool) -> bool:
    newest = store.snapshot_dates(limit=1)
    if (newest and newest[0] > date) or store.deliveries(date):
        return True
    return not plans and store.is_recorded(date)


def _refuse_compacted(settings: Settings, store: Store, date: dt.date) -> None:
    """ConfigError for a stored day that `[state] keep_days` compacted: its listing is gone."""
    oldest = store.oldest_full_day()
    if oldest is not None and date < oldest:
        raise ConfigError(
            f"--date {date}: that day is older than [state] keep_days ({settings.state.keep_days or 'unset: the default window'}) and "
            f"compacted: its digests are settled and its listing is gone; run {oldest} or later"
        )


def _sort(
    store: Store,
    date: dt.date,
    fetched: list[SourceFetch],
    last: Mapping[str, dt.date],
    report: FetchReport,
    *,
    first: bool,
) -> list[SourceFetch]:
    """The sources to store; the failed and stale ones go into `report`. Raises when every
    source failed and nothing of the day is stored yet (so the state stays as it was)."""
    errors = [one for one in fetched if one.error is not None]
    if first and errors and len(errors) == len(fetched):
        if len(errors) == 1 and errors[0].error is not None:
            raise errors[0].error
        raise DigestError("every source failed: " + "; ".join(f"{one.name}: {one.error}" for one in errors))
    report.failed += [(one.name, str(one.error)) for one in errors]
    good = []
    for one in fetched:
        if one.listing is None:
            continue
        _count_left_out(report, one.listing)
        why = stale_reason(one.listing, last.get(one.name), store, date)
        if why is not None:
            log.warning("source %r is stale: %s", one.name, why)
            report.stale.append((one.name, why))
            continue
        good.append(one)
        report.notes += _backfill_notes(one.listing)
        if one.listing.backfill_failed:  # today's papers are in; the missed days are not
            report.failed.append((one.name, f"{one.listing.backfill_failed}; the next run tries them again"))
    return good


def stale_reason(listing: Listing, last_day: dt.date | None, store: Store, date: dt.date) -> str | None:
    """Why `listing` is stale (None: it is not): it says it is of a day not newer than the last one
    stored for its source, or every item of a dated listing was listed before, unchanged."""
    if listing.announced is None:
        return None  # a listing that does not say which day it is of (Hugging Face, feeds)
    if last_day is not None and listing.announced <= last_day:
        return (
            f"it still shows the listing of {listing.announced}, and {last_day} is already stored; "
            "the next run checks again"
        )
    own = [p for p in listing.papers if p.announced is None]  # not the backfilled ones
    if not own:
        return None
    seen = store.seen_before(date, [p.id for p in own])
    if all(p.id in seen and not (p.version or 0) > (seen[p.id].version or 0) for p in own):
        return (
            f"every one of its {len(own)} items of {listing.announced} was listed before; "
            "the next run checks again"
        )
    return None


def _count_left_out(report: FetchReport, listing: Listing) -> None:
    if listing.skipped:
        report.malformed_items[listing.source] = listing.skipped
    if listing.duplicates:
        report.duplicate_ids[listing.source] = listing.duplicates


def _backfill_notes(listing: Listing) -> list[str]:
    notes = []
    if listing.backfilled:
        count = sum(1 for p in listing.papers if p.announced in listing.backfilled)
        days = ", ".join(d.isoformat() for d in listing.backfilled)
        notes.append(f"{listing.source}: backfilled missed days {days} ({count} papers)")
    if listing.cut:
        notes.append(
            f"{listing.source}: missed days {day_ranges(listing.cut)} are older than [fetch] backfill_days "
            "and were not fetched"
        )
    return notes


def day_ranges(days: Sequence[dt.date]) -> str:
    """'2026-12-01, 2026-12-03 to 2026-12-09': runs of consecutive days as ranges, so a source
    down for months is one short line."""
    runs: list[list[dt.date]] = []
    for day in sorted(days):
        if runs and day - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return ", ".join(r[0].isoformat() if len(r) == 1 else f"{r[0]} to {r[-1]}" for r in runs)


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
