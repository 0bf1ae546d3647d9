"""Weekly digests: which readers get their digest on a run date, and what a week's digest holds. Pure.

A reader with `cadence = "weekly"` gets one digest a week, on their `weekday` (Monday unless the
profile or the list's [defaults] says otherwise). On the days between, their matches of the day
are *held* (`store`'s `held` table): their private feed shows them the same day, and the week's
digest takes them. The week's digest is the best of the held days and the day's own matches,
ranked by score, up to `max_papers`, with the rest counted ("N more").

No paper of a week is lost to a run that failed or was skipped:
- a day no run stored is fetched late (the backfill) and its papers are new on the next run
  date, so they are matched and held then;
- a day a run stored but never planned (it died) is planned by the next run: held too;
- a weekday with no run: the first run after it sends the week's digest (the plan knows the last
  day planned before the run, `last_run`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from digest.core.models import WEEKDAYS, Digest, Subscriber


def weekly(sub: Subscriber) -> bool:
    return sub.cadence == "weekly"


def last_weekday(date: dt.date, sub: Subscriber) -> dt.date:
    """The latest date on or before `date` that falls on the reader's weekday."""
    wanted = WEEKDAYS.index(sub.weekday or "monday")
    return date - dt.timedelta(days=(date.weekday() - wanted) % 7)


def due(sub: Subscriber, date: dt.date, last_run: dt.date | None) -> bool:
    """Whether the reader's digest goes out on `date`: every day for a daily reader; for a weekly
    one on their weekday, or on the first run after a weekday no run planned."""
    if not weekly(sub):
        return True
    weekday = last_weekday(date, sub)
    return date == weekday or (last_run is not None and last_run < weekday)


def week_digest(today: Digest, held: Sequence[Digest]) -> Digest:
    """The week's digest: the held days' matches and `today`'s, each paper once (the first day
    it matched), best score first (earlier days first among equals), up to max_papers; the total
    counts every paper that matched over the week."""
    sub = today.subscriber
    seen: set[str] = set()
    matches = []
    for day in (*sorted(held, key=lambda d: d.date), today):
        for match in day.matches:
            if match.paper.id not in seen:
                seen.add(match.paper.id)
                matches.append(match)
    near = {pid: why for day in (*held, today) for pid, why in day.similar.items()}
    # by similarity where the reader has liked papers (`Digest.similar`), then by the rules' score;
    # stable: day order among equals
    ranked = sorted(matches, key=lambda m: (-near[m.paper.id][1] if m.paper.id in near else 1.0, -m.score))
    total = max(sum(d.total_matched for d in held) + today.total_matched, len(ranked))
    shown = tuple(ranked[: sub.max_papers])
    return Digest(
        sub,
        today.date,
        shown,
        total,
        similar={m.paper.id: near[m.paper.id] for m in shown if m.paper.id in near},
    )
