"""`[schedule] cron` as a trigger: crontab semantics on APScheduler 3's CronTrigger.

Pure: a cron expression and a time zone in, fire times out (no scheduler, no clock). It sits in
the configuration layer because `[schedule] cron` is validated by building its trigger; `digest
serve` (digest.serve) runs it. Two things APScheduler 3 gets wrong for us by default:

* Crontab day-of-week numbers: crontab says 0 (and 7) = Sunday, 1-5 = Monday to Friday;
  APScheduler 3 says 0 = Monday, and `CronTrigger.from_crontab` passes the numbers straight
  through, so "0 7 * * 1-5" would fire Tuesday to Saturday (agronholm/apscheduler#286, fixed only
  in 4.x). We translate the field to day names ourselves.
* DST: a time that does not exist on the spring change day (02:30 in Europe/Berlin on
  2026-03-29) fires once, at the same instant as the wall clock an hour later (03:30 CEST), as
  APScheduler computes it; we only normalise the datetime so logs show a real local time. A time
  that happens twice on the autumn change day (02:30 on 2026-10-25) fires only the first time,
  where APScheduler alone fires twice: one digest a day, like Vixie cron's fixed-time jobs.
"""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Protocol

from apscheduler.triggers.cron import CronTrigger

from digest.core.errors import ConfigError


class CronSchedule(Protocol):
    """What a trigger is made from: `[schedule]`'s cron in its time zone."""

    @property
    def cron(self) -> str: ...

    @property
    def tz(self) -> zoneinfo.ZoneInfo: ...


_MACROS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_CRONTAB_DAYS = ("sun", "mon", "tue", "wed", "thu", "fri", "sat")  # index = crontab number
_MONDAY_FIRST = (1, 2, 3, 4, 5, 6, 0)  # crontab numbers in APScheduler's order
_CRON_HELP = (
    'write 5 crontab fields "minute hour day-of-month month day-of-week", e.g. "0 7 * * 1-5" for '
    "07:00 Monday to Friday (0 or 7 = Sunday), or 6 fields with seconds first"
)


class DigestCronTrigger(CronTrigger):
    """A CronTrigger that fires once per wall-clock time across DST changes (see module doc)."""

    __slots__ = ("expression",)

    def get_next_fire_time(
        self, previous_fire_time: dt.datetime | None, now: dt.datetime
    ) -> dt.datetime | None:
        fire: dt.datetime | None = super().get_next_fire_time(previous_fire_time, now)
        while fire is not None and _is_repeated(fire):
            fire = super().get_next_fire_time(fire, fire)
        if fire is None:
            return None
        # A wall time in the spring gap comes back as e.g. 02:30+01:00; the same instant written
        # as a real local time is 03:30+02:00. fold=0 keeps that reading whatever `now` was.
        return fire.replace(fold=0).astimezone(dt.UTC).astimezone(self.timezone)

    def __str__(self) -> str:
        return f"cron {self.expression!r} in {self.timezone}"


def _is_repeated(moment: dt.datetime) -> bool:
    """The second occurrence of a wall-clock time in the hour that repeats when clocks go back.

    Only there does fold=0 read as a larger UTC offset than fold=1 (in the spring gap it is the
    other way round, and elsewhere the two are equal).
    """
    first, second = moment.replace(fold=0).utcoffset(), moment.utcoffset()
    return moment.fold == 1 and first is not None and second is not None and first > second


def _day_number(text: str) -> int:
    if text.isdigit():
        number = int(text)
        if not 0 <= number <= 7:
            raise ValueError(f"day of week {text} is out of range 0-7")
        return number
    if text in _CRONTAB_DAYS:
        return _CRONTAB_DAYS.index(text)
    raise ValueError(f"day of week {text!r} is neither a number 0-7 nor one of {', '.join(_CRONTAB_DAYS)}")


def crontab_days(field: str) -> set[int]:
    """The crontab day-of-week field as crontab numbers (0 = Sunday … 6 = Saturday)."""
    days: set[int] = set()
    for item in field.lower().split(","):
        body, has_step, step_text = item.partition("/")
        step = 1
        if has_step:
            if not step_text.isdigit() or int(step_text) == 0:
                raise ValueError(f"step {step_text!r} in day of week {item!r} must be a positive number")
            step = int(step_text)
        if body == "*":
            low, high = 0, 6
        elif "-" in body:
            start, _, end = body.partition("-")
            low, high = _day_number(start), _day_number(end)
            if low > high:
                raise ValueError(f"day-of-week range {body!r} runs backwards; write it as {low}-6,0-{high}")
        else:
            low = _day_number(body)
            high = 6 if has_step else low  # "1/2": from Monday every second day, as cronie reads it
        days.update(day % 7 for day in range(low, high + 1, step))
    return days


def _scheduler_days(field: str) -> str:
    """The crontab day-of-week field written for APScheduler 3, in day names."""
    if field == "*":
        return "*"
    days = crontab_days(field)
    return ",".join(_CRONTAB_DAYS[number] for number in _MONDAY_FIRST if number in days)


def make_trigger(config: CronSchedule) -> DigestCronTrigger:
    """The trigger for `[schedule] cron` in `[schedule] timezone`; ConfigError if it is not a cron.

    Five crontab fields, or six with seconds first ("S M H dom mon dow", for tests and
    sub-minute experiments), or one of @hourly @daily @weekly @monthly @yearly.
    """
    expression = " ".join(config.cron.split())
    fields = _MACROS.get(expression.lower(), expression).split()
    try:
        if len(fields) == 5:
            fields = ["0", *fields]
        if len(fields) != 6:
            raise ValueError(f"it has {len(fields)} fields")
        second, minute, hour, day, month, day_of_week = fields
        if not day.startswith("*") and not day_of_week.startswith("*"):
            # crontab fires when either matches, APScheduler when both do: refuse, don't guess.
            raise ValueError(
                "it restricts both day of month and day of week, which crontab reads as either/or; "
                "restrict only one of them"
            )
        trigger = DigestCronTrigger(
            second=second,
            minute=minute,
            hour=hour,
            day=day,
            month=month,
            day_of_week=_scheduler_days(day_of_week),
            timezone=config.tz,
        )
    except ValueError as exc:
        raise ConfigError(
            f"[schedule] cron = {config.cron!r} is not a valid schedule: {exc}; {_CRON_HELP}"
        ) from None
    trigger.expression = expression
    return trigger


def next_fire_times(config: CronSchedule, start: dt.datetime, n: int) -> list[dt.datetime]:
    """The next `n` fire times at or after `start` (aware), in the schedule's time zone."""
    trigger = make_trigger(config)
    times: list[dt.datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and len(times) < n:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times


def scheduled_time_today(config: CronSchedule, now: dt.datetime) -> dt.datetime | None:
    """The first fire time on `now`'s date in the schedule's time zone, or None on a day off."""
    today = now.astimezone(config.tz).date()
    midnight = dt.datetime.combine(today, dt.time(0), tzinfo=config.tz).astimezone(dt.UTC)
    fire = make_trigger(config).get_next_fire_time(None, midnight)
    return fire if fire is not None and fire.date() == today else None
