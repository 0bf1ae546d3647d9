"""`digest serve`: run the daily pipeline on the `[schedule] cron` in `[schedule] timezone`.

Only scheduling lives here; each run is one call of `pipeline.run`, exactly as `digest run` from
cron would make it. Three things APScheduler 3 gets wrong for us by default, and what we do:

* Crontab day-of-week numbers: crontab says 0 (and 7) = Sunday, 1-5 = Monday to Friday;
  APScheduler 3 says 0 = Monday, and `CronTrigger.from_crontab` passes the numbers straight
  through, so "0 7 * * 1-5" would fire Tuesday to Saturday (agronholm/apscheduler#286, fixed only
  in 4.x). We translate the field to day names ourselves.
* DST: a time that does not exist on the spring change day (02:30 in Europe/Berlin on
  2026-03-29) fires once, at the same instant as the wall clock an hour later (03:30 CEST), as
  APScheduler computes it; we only normalise the datetime so logs show a real local time. A time
  that happens twice on the autumn change day (02:30 on 2026-10-25) fires only the first time,
  where APScheduler alone fires twice: one digest a day, like Vixie cron's fixed-time jobs.
* `misfire_grace_time` defaults to one second: a run delayed by a suspended machine or a busy
  process would be skipped silently. We allow `[schedule] misfire_grace_hours` instead and, on
  start, catch up today's run if its time has passed and no run for today got to sending.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler
from apscheduler.triggers.cron import CronTrigger

from digest.config import ScheduleConfig, Settings
from digest.errors import ConfigError, DigestError, LockedError
from digest.pipeline import stop_on_signals
from digest.store import Store

JOB_ID = "daily-digest"
DONE_STATUSES = frozenset({"ok", "partial"})  # a run for the date got as far as sending

log = logging.getLogger("digest.schedule")

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


def make_trigger(config: ScheduleConfig) -> DigestCronTrigger:
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


def next_fire_times(config: ScheduleConfig, start: dt.datetime, n: int) -> list[dt.datetime]:
    """The next `n` fire times at or after `start` (aware), in the schedule's time zone."""
    trigger = make_trigger(config)
    times: list[dt.datetime] = []
    fire = trigger.get_next_fire_time(None, start)
    while fire is not None and len(times) < n:
        times.append(fire)
        fire = trigger.get_next_fire_time(fire, fire)
    return times


def scheduled_time_today(config: ScheduleConfig, now: dt.datetime) -> dt.datetime | None:
    """The first fire time on `now`'s date in the schedule's time zone, or None on a day off."""
    today = now.astimezone(config.tz).date()
    midnight = dt.datetime.combine(today, dt.time(0), tzinfo=config.tz).astimezone(dt.UTC)
    fire = make_trigger(config).get_next_fire_time(None, midnight)
    return fire if fire is not None and fire.date() == today else None


def should_catch_up(config: ScheduleConfig, now: dt.datetime, last_status: str | None) -> bool:
    """Run at once on start? Yes if today's time has passed and no run for today got to sending.

    `last_status` is `Store.run_status(today)`: None (never ran), "running" (a run died or is
    still going: the pipeline's lock tells which), "failed", "partial" or "ok"; `serve` also
    passes "interrupted" for a partial run that left recipients pending.
    """
    scheduled = scheduled_time_today(config, now)
    return scheduled is not None and scheduled <= now and last_status not in DONE_STATUSES


def _today_status(settings: Settings, date: dt.date) -> str | None:
    """`run_status(date)`, except that a partial run with recipients still pending (stopped by a
    signal, or by an SMTP server that was down) reads as "interrupted": a re-run sends only those."""
    if not settings.state.path.exists():
        return None
    with Store.open(settings.state.path, create=False) as store:
        status = store.run_status(date)
        if status == "partial" and any(d.status == "pending" for d in store.deliveries(date).values()):
            return "interrupted"
        return status


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _ensure_logging() -> None:
    """Plain timestamped lines on stderr, unless the embedding program configured logging."""
    if not logging.getLogger().hasHandlers():
        logging.basicConfig(
            level=logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(message)s",
            datefmt="%Y-%m-%dT%H:%M:%S%z",
        )
    # Our own lines say when a run starts, ends, is missed or skipped; APScheduler's lines
    # ("Running job …", "Run time of job … was missed") repeat them. Kept when debugging (-v).
    aps = logging.getLogger("apscheduler")
    if aps.level == logging.NOTSET and logging.getLogger().getEffectiveLevel() > logging.DEBUG:
        aps.setLevel(logging.ERROR)


def make_scheduler(
    config: ScheduleConfig, func: Callable[[], None], *, first_run_at: dt.datetime | None = None
) -> BackgroundScheduler:
    """A scheduler (not started) with the one job, `JOB_ID`, calling `func` on the schedule.

    `first_run_at` (real time) runs the job once then, before the schedule takes over: the
    catch-up. One worker and max_instances=1: two runs never overlap; coalesce: runs missed
    while the machine slept make one run, not a burst.
    """
    scheduler = BackgroundScheduler(timezone=config.tz, executors={"default": ThreadPoolExecutor(1)})
    options: dict[str, Any] = {} if first_run_at is None else {"next_run_time": first_run_at}
    scheduler.add_job(
        func,
        make_trigger(config),
        id=JOB_ID,
        name="daily digest",
        max_instances=1,
        coalesce=True,
        # APScheduler's default is one second: a run that starts late (a suspended laptop, a
        # slow previous run) would be dropped without a word.
        misfire_grace_time=max(1, round(config.misfire_grace_hours * 3600)),
        replace_existing=True,
        **options,
    )
    return scheduler


def serve(
    settings: Settings,
    *,
    subscribers_path: Path | str | None = None,
    clock: Callable[[], dt.datetime] = _utcnow,
    stop_event: threading.Event | None = None,
) -> int:
    """Run the daily digest on the schedule until SIGTERM/SIGINT or `stop_event`; returns 0.

    `clock` gives the runs' `now` (hence their date) and the catch-up decision; APScheduler
    itself keeps the real time. On a signal the stop event is set: the run in progress finishes
    the message being sent, records it and returns, and the scheduler waits for it.
    """
    config = settings.schedule
    trigger = make_trigger(config)  # a bad cron fails here, before anything starts
    # Imported here, not at the top: the pure schedule functions above should not need the whole
    # pipeline (renderers, transports) to be importable.
    from digest import pipeline

    stop = stop_event or threading.Event()
    _ensure_logging()

    def next_fire() -> str:
        fire = trigger.get_next_fire_time(None, clock())
        return fire.isoformat() if fire is not None else "never"

    # Each run gets its own stop event, set only if the service stops while that run is going:
    # a run that has returned must never be poked again (the pipeline's send loop is closed).
    running: set[threading.Event] = set()
    guard = threading.Lock()

    def job() -> None:
        run_stop = threading.Event()
        with guard:
            if stop.is_set():
                return
            running.add(run_stop)
        log.info("run starting")
        try:
            summary = pipeline.run(
                settings, subscribers_path=subscribers_path, now=clock(), stop=run_stop, log=log.info
            )
        except LockedError as exc:  # a manual `digest run` is going: it does the job
            log.warning("run skipped: %s", exc)
        except DigestError as exc:
            log.error("run failed (exit %d): %s", exc.exit_code, exc)
        except Exception:
            # A bug must not end the service: tomorrow's run may well succeed.
            log.exception("run crashed")
        else:
            for line in summary.lines():
                log.info("%s", line)
            level = logging.INFO if summary.exit_code == 0 else logging.WARNING
            log.log(level, "run for %s finished with exit code %d", summary.date, summary.exit_code)
        finally:
            with guard:
                running.discard(run_stop)
        if not stop.is_set():
            log.info("next run at %s", next_fire())

    def on_event(event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "missed the run due at %s: more than %s hours late ([schedule] misfire_grace_hours)",
                getattr(event, "scheduled_run_time", "?"),
                config.misfire_grace_hours,
            )
        else:
            log.warning("skipped a run: the previous one is still going")

    now = clock()
    today = pipeline.run_date(settings, now)
    status = _today_status(settings, today)
    first_run_at = None
    if should_catch_up(config, now, status):
        log.info("catching up: the run for %s was due and its status is %s", today, status or "none")
        first_run_at = dt.datetime.now(config.tz)  # the scheduler's clock is the real one
    scheduler = make_scheduler(config, job, first_run_at=first_run_at)
    scheduler.add_listener(on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    restore = stop_on_signals(stop)
    try:
        log.info(
            "serving: %s; next run at %s",
            trigger,
            "once now, then " + next_fire() if first_run_at else next_fire(),
        )
        scheduler.start()
        while not stop.wait(1):
            pass
        with guard:
            for run_stop in running:
                run_stop.set()
        log.info("stopping: waiting for the run in progress, if any")
        scheduler.shutdown(wait=True)
    finally:
        restore()
    log.info("stopped")
    return 0
