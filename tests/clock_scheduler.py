"""`digest serve` on a clock the test turns: a stand-in for APScheduler that fires the job at the
fire times of the real trigger (`make_trigger`) as the test moves the clock past them.

    clock = Clock(utc(2026, 6, 12, 6, 59))
    with serving(settings, clock, subscribers) as scheduler:
        scheduler.advance_to(utc(2026, 6, 12, 7))  # runs the 07:00 run, in this thread
    # serve has returned 0; `scheduler.started` and `.stopped` tell it used the stand-in

Only when the job fires is replaced: the job itself, the catch-up decision, logging and stopping
are `serve`'s own. APScheduler's side (options, executor, grace time) has real-time tests of its
own in test_schedule.py. Runs are coalesced like serve's (several fire times passed: one run).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from digest.config import ScheduleConfig, Settings
from digest.config.cron import make_trigger


class Clock:
    def __init__(self, now: dt.datetime) -> None:
        self._now = now
        self._lock = threading.Lock()

    def __call__(self) -> dt.datetime:
        with self._lock:
            return self._now

    def set(self, now: dt.datetime) -> None:
        with self._lock:
            self._now = now


class ClockScheduler:
    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self.started = threading.Event()
        self.stopped = threading.Event()
        self.listeners: list[tuple[Callable[[Any], None], int]] = []
        self._job: Callable[[], None] | None = None
        self._catch_up = False
        self._next: dt.datetime | None = None

    # -- serve's side: SchedulerFactory and Scheduler ---------------------------------------------
    def __call__(self, config: ScheduleConfig, job: Callable[[], None], *, catch_up: bool) -> ClockScheduler:
        self._trigger = make_trigger(config)  # the trigger APScheduler would get
        self._job, self._catch_up = job, catch_up
        return self

    def add_listener(self, callback: Callable[[Any], None], mask: int) -> None:
        self.listeners.append((callback, mask))

    def start(self) -> None:
        # as make_scheduler's first_run_at: the catch-up takes the place of the first fire time
        now = self.clock()
        self._next = now if self._catch_up else self._trigger.get_next_fire_time(None, now)
        self.started.set()

    def shutdown(self, wait: bool = True) -> None:
        self.stopped.set()

    # -- the test's side ----------------------------------------------------------------------------
    def advance_to(self, now: dt.datetime) -> int:
        """Move the clock to `now` and run, in this thread, the job if a fire time has passed:
        once however many did, as APScheduler with coalesce does. Returns how many runs (0 or 1).
        Not modelled: the grace time (a run later than it is missed, not run)."""
        assert self.started.is_set() and self._job is not None, "serve has not started the scheduler"
        self.clock.set(now)
        if self._next is None or self._next > now:
            return 0
        fire = self._next
        while (following := self._trigger.get_next_fire_time(fire, now)) is not None and following <= now:
            fire = following
        self._next = following
        self._job()
        return 1

    def next_fire_time(self) -> dt.datetime | None:
        return self._next


@contextmanager
def serving(
    settings: Settings, clock: Clock, subscribers: Path | None = None, timeout: float = 30
) -> Iterator[ClockScheduler]:
    """`serve` in a thread on `clock`; stopped (by its stop event) and joined on leaving."""
    from digest.serve import serve

    scheduler = ClockScheduler(clock)
    stop = threading.Event()
    result: list[int | BaseException] = []

    def target() -> None:
        try:
            result.append(
                serve(
                    settings,
                    subscribers_path=subscribers,
                    clock=clock,
                    stop_event=stop,
                    scheduler_factory=scheduler,
                )
            )
        except BaseException as exc:  # handed to the test's thread below
            result.append(exc)

    thread = threading.Thread(target=target, name="digest-serve")
    thread.start()
    try:
        while not scheduler.started.wait(0.02):
            if not thread.is_alive():
                raise AssertionError(f"serve ended before starting its scheduler: {result}")
        yield scheduler
    finally:
        stop.set()
        thread.join(timeout)
    assert not thread.is_alive(), "serve did not stop"
    if result and isinstance(result[0], BaseException):
        raise result[0]
    assert result == [0]
    assert scheduler.stopped.is_set()
