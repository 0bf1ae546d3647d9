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
from typing import Any, Protocol

from apscheduler.events import EVENT_JOB_MAX_INSTANCES, EVENT_JOB_MISSED, JobEvent
from apscheduler.executors.pool import ThreadPoolExecutor
from apscheduler.schedulers.background import BackgroundScheduler

from digest import pipeline
from digest.config import ScheduleConfig, Settings
from digest.config.cron import make_trigger, scheduled_time_today
from digest.core.errors import DigestError, LockedError
from digest.core.speed import give_back_freed_memory
from digest.store import Store
from digest.web.server import WebThread

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
    if not settings.state.exists():
        return None
    with Store.from_config(settings.state, create=False) as store:
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


class Scheduler(Protocol):
    """What `serve` needs of a scheduler: APScheduler's BackgroundScheduler, or a stand-in that
    fires the job on an injected clock (the tests')."""

    def add_listener(self, callback: Callable[[JobEvent], None], mask: int) -> None: ...
    def start(self) -> None: ...
    def shutdown(self, wait: bool = True) -> None: ...


class SchedulerFactory(Protocol):
    def __call__(self, config: ScheduleConfig, job: Callable[[], None], *, catch_up: bool) -> Scheduler: ...


def real_scheduler(config: ScheduleConfig, job: Callable[[], None], *, catch_up: bool) -> Scheduler:
    """`make_scheduler`, with the catch-up run due at once."""
    # APScheduler keeps the real time whatever `serve`'s clock says, so "at once" is by its clock.
    return make_scheduler(config, job, first_run_at=dt.datetime.now(config.tz) if catch_up else None)


class _Runs:
    """The job the scheduler calls, and the runs in progress that stopping the service must stop.

    Each run gets its own stop event, set only if the service stops while that run is going: a
    run that has returned must never be poked again (the pipeline's send loop is closed).
    """

    def __init__(
        self,
        settings: Settings,
        subscribers_path: Path | str | None,
        clock: Callable[[], dt.datetime],
        stop: threading.Event,
    ) -> None:
        self.settings = settings
        self.subscribers_path = subscribers_path
        self.clock = clock
        self.stop = stop
        self.trigger = make_trigger(settings.schedule)
        self._running: set[threading.Event] = set()
        self._guard = threading.Lock()

    def next_fire(self) -> str:
        fire = self.trigger.get_next_fire_time(None, self.clock())
        return fire.isoformat() if fire is not None else "never"

    def job(self) -> None:
        run_stop = threading.Event()
        with self._guard:
            if self.stop.is_set():
                return
            self._running.add(run_stop)
        try:
            self._run(run_stop)
        finally:
            with self._guard:
                self._running.discard(run_stop)
            # This process lives on between runs: what the run freed goes back to the system now,
            # not whenever a full collection happens to come (a run gives its digests' memory
            # back before publishing; publishing's, and a joiner's run, it does not)
            give_back_freed_memory()
        if not self.stop.is_set():
            log.info("next run at %s", self.next_fire())

    def _run(self, run_stop: threading.Event) -> None:
        log.info("run starting")
        try:
            summary = pipeline.run(
                self.settings,
                subscribers_path=self.subscribers_path,
                now=self.clock(),
                stop=run_stop,
                log=log.info,
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

    def stop_all(self) -> None:
        with self._guard:
            for run_stop in self._running:
                run_stop.set()

    def on_event(self, event: JobEvent) -> None:
        if event.code == EVENT_JOB_MISSED:
            log.warning(
                "missed the run due at %s: more than %s hours late ([schedule] misfire_grace_hours)",
                getattr(event, "scheduled_run_time", "?"),
                self.settings.schedule.misfire_grace_hours,
            )
        else:
            log.warning("skipped a run: the previous one is still going")


def serve(
    settings: Settings,
    *,
    subscribers_path: Path | str | None = None,
    clock: Callable[[], dt.datetime] = _utcnow,
    stop_event: threading.Event | None = None,
    scheduler_factory: SchedulerFactory = real_scheduler,
) -> int:
    """Run the daily digest on the schedule until SIGTERM/SIGINT or `stop_event`; returns 0.

    `clock` gives the runs' `now` (hence their date) and the catch-up decision; the scheduler
    from `scheduler_factory` decides when the job fires (APScheduler: by the real time). On a
    signal the stop event is set: the run in progress finishes the message being sent, records
    it and returns, and the scheduler waits for it.
    """
    config = settings.schedule
    stop = stop_event or threading.Event()
    runs = _Runs(settings, subscribers_path, clock, stop)  # a bad cron fails here, before anything starts
    _ensure_logging()

    now = clock()
    today = pipeline.run_date(settings, now)
    status = _today_status(settings, today)
    catch_up = should_catch_up(config, now, status)
    if catch_up:
        log.info("catching up: the run for %s was due and its status is %s", today, status or "none")
    scheduler = scheduler_factory(config, runs.job, catch_up=catch_up)
    scheduler.add_listener(runs.on_event, EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES)

    # [web] listen and base_url: the reader's pages in this process too (a thread of their own)
    web = WebThread(settings) if settings.web.enabled else None
    restore = pipeline.stop_on_signals(stop)
    try:
        if web is not None:
            web.start()
        log.info(
            "serving: %s; next run at %s",
            runs.trigger,
            ("once now, then " if catch_up else "") + runs.next_fire(),
        )
        scheduler.start()
        while not stop.wait(1):
            pass
        runs.stop_all()
        log.info("stopping: waiting for the run in progress, if any")
        scheduler.shutdown(wait=True)
    finally:
        if web is not None:
            web.stop()
        restore()
    log.info("stopped")
    return 0
