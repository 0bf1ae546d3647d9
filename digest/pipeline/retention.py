"""The state's window (`[state] keep_days`): checked before a run, applied at its end.

The window covers everything a later run reads whole: the feeds' `[output] feed_days` days, the
late digests of `digest.plan.LATE_DAYS` days and the day pages the archive rewrites (the feed
days). What compaction keeps of older days is in `digest.store.retention`.
"""

from __future__ import annotations

import datetime as dt

from digest.config import Settings
from digest.core.errors import ConfigError
from digest.plan import LATE_DAYS
from digest.store import Drop, Shrink, Store


def window_days(settings: Settings) -> int:
    """How many days are kept whole: `[state] keep_days` when set (0: every day), else what
    later runs read whole, the late digests' days or the feeds' if more."""
    keep = settings.state.keep_days
    if keep == 0:
        return 0
    return max(keep or 0, settings.output.feed_days, LATE_DAYS + 1)


def check_window(settings: Settings) -> None:
    """ConfigError unless `[state] keep_days`, when set, covers what later runs read whole."""
    keep, feed_days = settings.state.keep_days, settings.output.feed_days
    if keep and keep < max(feed_days, LATE_DAYS + 1):
        raise ConfigError(
            f"[state] keep_days = {keep}: less than [output] feed_days = {feed_days}; the feeds are "
            f"rebuilt from the last feed_days days, so keep at least {max(feed_days, LATE_DAYS + 1)} "
            "(or leave it out: the window then follows feed_days; 0 keeps everything)"
        )


def cutoff(settings: Settings, store: Store, today: dt.date) -> dt.date | None:
    """The first day kept whole for a run of `today`; None: nothing to compact (or keep_days 0)."""
    window = window_days(settings)
    return store.retention_cutoff(today, window) if window else None


def apply(
    settings: Settings, store: Store, today: dt.date, now: dt.datetime, *, vacuum: bool = False
) -> tuple[Drop, Shrink]:
    """Drop the explanations kept only until their digest was sent, compact the days before the
    window (one transaction), then shrink the file when worth it (`vacuum`: in any case)."""
    store.forget_sent_explanations()
    drop = store.compact(cutoff(settings, store, today), now)
    return drop, store.shrink(force=vacuum)
