"""`digest serve`: run the daily pipeline on the `[schedule] cron` in `[schedule] timezone`.

Only scheduling lives here; each run is one call of `pipeline.run`, exactly as `digest run` from
cron would make it. The crontab and DST rules of the trigger are in `digest.config.cron`; one more thing
APScheduler 3 gets wrong for us by default, and what we do:

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

from digest.config import ScheduleConfig, Settings
from digest.config.cron import make_trigger, scheduled_time_today
from digest.core.errors import DigestError, LockedError
from digest.pipeline import stop_on_signals
from digest.store import Store

JOB_ID = "daily-digest"
DONE_STATUSES = frozenset({"ok", "partial"})  # a run for the date got as far as sending

log = logging.getLogger("digest.serve")

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
