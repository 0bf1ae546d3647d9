"""The lists trending readers are due (`digest.trending`): fetched once per (source, period) on the
run that plans their digests (several periods when due days were missed: merged into one), stored with the state (`trending_lists`) so that a digest sent late
or after a kill is rebuilt from what it was planned on.

A list that cannot be fetched fails its source for the run (reported like a failed source, exit
4) and leaves its readers' period due: the next run fetches it again and sends it late.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from digest.config import Settings
from digest.core.errors import FetchError, ParseError
from digest.core.models import Digest, Paper, Subscriber
from digest.plan import TrendingList
from digest.sources.fetch import Fetcher
from digest.sources.hf import HfDailySource, parse_hf_page
from digest.store import Store
from digest.trending import Period, due_day, period, periods_due, trending, trending_digest

log = logging.getLogger(__name__)


@dataclass
class TrendingFetch:
    lists: dict[str, TrendingList] = field(default_factory=dict)  # by reader email: due and fetched
    failed: list[tuple[str, str]] = field(default_factory=list)  # (source, why)


def due_lists(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    date: dt.date,
    *,
    dry_run: bool = False,
    transport: Any = None,
) -> TrendingFetch:
    """The lists of the trending readers whose periods are due on `date`, each fetched once."""
    readers = [sub for sub in subscribers if trending(sub)]
    planned = store.planned_periods(sub.email for sub in readers) if readers else {}
    due = {
        sub.email: periods_due(sub, date, planned.get((sub.email.lower(), str(sub.trending))))
        for sub in readers
    }
    readers = [sub for sub in readers if due[sub.email]]
    out = TrendingFetch()
    wanted = sorted(
        {(name, when) for sub in readers for name in _sources(settings, sub) for when in due[sub.email]}
    )
    fetched = _fetch_all(settings, store, wanted, date, out, dry_run=dry_run, transport=transport)
    for sub in readers:
        if (papers := _papers(settings, sub, due[sub.email], fetched)) is not None:
            already = store.sent_paper_ids(sub.email, [p.id for p in papers])
            out.lists[sub.email] = TrendingList(due[sub.email][-1], papers, frozenset(already))
    return out


def _papers(
    settings: Settings,
    sub: Subscriber,
    due: Sequence[Period],
    fetched: Mapping[tuple[str, Period], list[Paper]],
) -> list[Paper] | None:
    """The reader's due periods' papers, from each of their sources; None while a list is missing
    (its fetch failed) or they are all empty (Hugging Face has not made them yet): still due."""
    asked = [(name, when) for when in due for name in _sources(settings, sub)]
    if not asked or any(key not in fetched for key in asked):
        return None
    return [paper for key in asked for paper in fetched[key]] or None


def _fetch_all(
    settings: Settings,
    store: Store,
    wanted: Sequence[tuple[str, Period]],
    date: dt.date,
    out: TrendingFetch,
    *,
    dry_run: bool,
    transport: Any,
) -> dict[tuple[str, Period], list[Paper]]:
    """Each (source, period) list once, kept in the state (but on a dry run); a failure is noted
    in `out.failed` and leaves the list out."""
    fetched: dict[tuple[str, Period], list[Paper]] = {}
    if not wanted:
        return fetched
    with Fetcher(settings.fetch, {}, transport=transport) as fetcher:
        for name, when in wanted:
            try:
                fetched[(name, when)] = _fetch(HfDailySource(settings.source(name)), fetcher, when)
            except (FetchError, ParseError) as exc:
                log.warning("source %r: the %s list failed: %s", name, when[1], exc)
                out.failed.append((name, f"trending {when[1]}: {exc}"))
                continue
            if not dry_run:
                store.record_trending(name, when[1], date, fetched[(name, when)])
    return fetched


def stored_trending_digest(
    settings: Settings, store: Store, sub: Subscriber, date: dt.date | None
) -> tuple[Digest, int] | None:
    """For `digest preview`: the trending reader's digest of the period `date` (else the newest
    stored day) closes, from the lists as last fetched, and how many papers they listed; None when
    no run has fetched them yet (a preview fetches nothing)."""
    date = date or next(iter(store.snapshot_dates(limit=1)), None) or dt.date.today()
    _, when = period(sub, date)
    listed = [p for name in _sources(settings, sub) for p in store.trending_list(name, when) or ()]
    if not listed:
        return None
    day = due_day(sub, date)
    # as the run leaves out what earlier digests sent (not this period's own, once it went out)
    already = store.sent_paper_ids(sub.email, [p.id for p in listed], before=day)
    return trending_digest(sub, day, listed, already), len({p.id for p in listed})


def _sources(settings: Settings, sub: Subscriber) -> list[str]:
    """The Hugging Face sources a trending reader reads (`sources`, or all of them)."""
    return [name for name in settings.hf_source_names if not sub.sources or name in sub.sources]


def _fetch(source: HfDailySource, fetcher: Fetcher, when: Period) -> list[Paper]:
    """The period's papers, each once (the first page that lists it)."""
    papers: dict[str, Paper] = {}
    for result in source.trending(fetcher, when):
        for paper in parse_hf_page(result.body, source.config.name):
            papers.setdefault(paper.id, paper)
    return list(papers.values())
