"""Trending digests: Hugging Face's most upvoted papers of a week or a month. Pure.

A profile with `trending = "week"` or `"month"` is not matched against each day's new papers. It
gets, once a period, the papers of Hugging Face Daily Papers' list for the period that just closed
(the API's `week=YYYY-Www` and `month=YYYY-MM`), ranked by their upvotes as fetched on the day the
digest goes out, filtered by the profile's rules when it has any (keywords, authors, query,
`min_upvotes`...; none: the whole list), up to `max_papers`, the rest counted.

When a period's digest is due:
- "week": on the reader's `weekday` (Monday unless the profile or [defaults] says otherwise), for
  the last whole ISO week before that day's week (on a Monday, the week just ended), so that
  every day of every week is in one digest.
- "month": on the 1st, for the month just ended (`weekday` is not used).

A period is due until a run has fetched its list, found papers in it, and planned the reader's
digest of it (sent, or nothing in it for the profile): a run that failed, was skipped, could not
fetch the list or got an empty one (not computed yet) leaves it due for the next run, which sends
it late; periods of several missed due days (up to CATCH_UP_DAYS back) go out in one digest. The newest period planned for each reader
is kept past the state's window (`trending_periods`), so a period never goes out twice; a paper
already emailed to the reader is never in it again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Sequence

from digest.cadence import last_weekday
from digest.core.models import Digest, Paper, Subscriber
from digest.matching.matcher import Matcher

Period = tuple[str, str]  # ("week", "2026-W48") or ("month", "2026-11"): the API's parameter and value
# How far back a missed due day is caught up (as `plan.LATE_DAYS` for late digests): the periods
# of older due days are not sent.
CATCH_UP_DAYS = 14


def trending(sub: Subscriber) -> bool:
    return sub.trending is not None


def due_day(sub: Subscriber, date: dt.date) -> dt.date:
    """The latest day on or before `date` on which a digest of the reader's period was due."""
    if sub.trending == "month":
        return date.replace(day=1)
    return last_weekday(date, sub)


def period(sub: Subscriber, date: dt.date) -> Period:
    """The period whose digest is due by `date`: the last whole ISO week before the week of the
    latest due day (on a Monday, the week just ended), or the month before the latest 1st."""
    day = due_day(sub, date)
    if sub.trending == "month":
        last = day - dt.timedelta(days=1)
        return ("month", f"{last.year:04d}-{last.month:02d}")
    year, week, _ = (day - dt.timedelta(days=day.weekday() + 1)).isocalendar()
    return ("week", f"{year:04d}-W{week:02d}")


def periods_due(sub: Subscriber, date: dt.date, planned: str | None) -> list[Period]:
    """The periods whose digest is due on `date`, oldest first: those not planned yet whose due
    day is at most CATCH_UP_DAYS back (a run missed a due day: they go out together, late); a
    reader with none planned yet gets the latest only. `planned`: the newest period planned for
    the reader. Periods are written so that a later one sorts after ("2026-W09" < "2026-W10")."""
    if planned is None:
        return [period(sub, date)]
    out: list[Period] = []
    day = due_day(sub, date)
    while day >= date - dt.timedelta(days=CATCH_UP_DAYS):
        closed = period(sub, day)
        if closed[1] <= planned:
            break
        out.append(closed)
        day = due_day(sub, day - dt.timedelta(days=1))
    return out[::-1]


def due(sub: Subscriber, date: dt.date, planned: str | None) -> bool:
    """Whether a trending reader's digest is due on `date` (`periods_due`)."""
    return bool(periods_due(sub, date, planned))


def trending_digest(
    sub: Subscriber, date: dt.date, listed: Sequence[Paper], already: Collection[str] = ()
) -> Digest:
    """The reader's digest of the period's list `listed` (one source's, or several merged): the
    papers that pass the profile and were not emailed to them before (`already`), most upvoted
    first (then best match, then id), up to `max_papers`; the total counts every one that passed."""
    fresh = [p for p in _merged(listed) if p.id not in already]
    # a trending profile with no rules takes the whole list (exclude, min_upvotes and sources still count)
    rules = sub if _has_rules(sub) else dataclasses.replace(sub, all=True)
    matches = Matcher([rules]).match(fresh)[sub.email]
    ranked = sorted(matches, key=lambda m: (-(m.paper.upvotes or 0), -m.score, m.paper.id))
    return Digest(sub, date, tuple(ranked[: sub.max_papers]), len(ranked))


def _has_rules(sub: Subscriber) -> bool:
    return bool(sub.keywords or sub.authors or sub.categories or sub.query)


def _merged(papers: Sequence[Paper]) -> list[Paper]:
    """Each paper once: a paper two sources list keeps its highest upvote count."""
    best: dict[str, Paper] = {}
    for paper in papers:
        kept = best.get(paper.id)
        if kept is None or (paper.upvotes or 0) > (kept.upvotes or 0):
            best[paper.id] = paper
    return list(best.values())
