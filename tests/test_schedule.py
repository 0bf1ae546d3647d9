"""The schedule: crontab semantics on APScheduler 3, DST, catch-up, and `digest serve`: in-process on
an injected clock, once on the real scheduler, and as a real process for the signals."""

from __future__ import annotations

import datetime as dt
import logging
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from apscheduler.events import (
    EVENT_JOB_MAX_INSTANCES,
    EVENT_JOB_MISSED,
    JobExecutionEvent,
    JobSubmissionEvent,
)
from apscheduler.triggers.cron import CronTrigger
from apscheduler.triggers.interval import IntervalTrigger
from cli_runner import base_env, digest
from clock_scheduler import Clock, serving
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.config import ScheduleConfig, Settings, load_settings
from digest.config.cron import make_trigger, next_fire_times
from digest.core.errors import ConfigError
from digest.serve import JOB_ID, make_scheduler, should_catch_up
from digest.store import Store

ROOT = Path(__file__).parent.parent
BERLIN = ZoneInfo("Europe/Berlin")
UTC = dt.UTC
WEEKDAYS = ScheduleConfig(cron="0 7 * * 1-5", timezone="Europe/Berlin")
SECRET = "test-secret-not-for-production"


def berlin(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=BERLIN)


def utc(year: int, month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def days(times: list[dt.datetime]) -> list[str]:
    return [t.strftime("%a") for t in times]


# -- crontab semantics ----------------------------------------------------------------------------


def test_weekdays_are_monday_to_friday() -> None:
    # From Saturday 2026-06-13: the next ten are two full working weeks.
    times = next_fire_times(ScheduleConfig(), utc(2026, 6, 13), 10)
    assert days(times) == ["Mon", "Tue", "Wed", "Thu", "Fri"] * 2
    assert all(t.time() == dt.time(7, 0) for t in times)


def test_apscheduler_from_crontab_reads_1_5_as_tuesday_to_saturday() -> None:
    # The trap make_trigger exists to avoid (agronholm/apscheduler#286). If this starts failing,
    # APScheduler fixed from_crontab and the translation in make_trigger should be reviewed.
    trigger = CronTrigger.from_crontab("0 7 * * 1-5", timezone="UTC")
    fire, seen = trigger.get_next_fire_time(None, utc(2026, 6, 14)), []  # from Sunday
    for _ in range(5):
        seen.append(fire.strftime("%a"))
        fire = trigger.get_next_fire_time(fire, fire)
    assert seen == ["Tue", "Wed", "Thu", "Fri", "Sat"]


@pytest.mark.parametrize(
    ("day_of_week", "expected"),
    [
        ("0", {"Sun"}),
        ("7", {"Sun"}),
        ("sun", {"Sun"}),
        ("6", {"Sat"}),
        ("1", {"Mon"}),
        ("1,3", {"Mon", "Wed"}),
        ("mon-fri", {"Mon", "Tue", "Wed", "Thu", "Fri"}),
        ("5-7", {"Fri", "Sat", "Sun"}),
        ("0-6", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
        ("*/2", {"Sun", "Tue", "Thu", "Sat"}),  # crontab steps count from Sunday = 0
        ("1-5/2", {"Mon", "Wed", "Fri"}),
        ("*", {"Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"}),
    ],
)
def test_day_of_week_follows_crontab(day_of_week: str, expected: set[str]) -> None:
    times = next_fire_times(ScheduleConfig(cron=f"0 7 * * {day_of_week}"), utc(2026, 6, 1), 21)
    assert set(days(times)) == expected


def test_six_fields_have_seconds_first_and_macros_work() -> None:
    times = next_fire_times(ScheduleConfig(cron="*/20 30 6 * * *"), utc(2026, 6, 12, 6, 30, 5), 3)
    assert times == [utc(2026, 6, 12, 6, 30, 20), utc(2026, 6, 12, 6, 30, 40), utc(2026, 6, 13, 6, 30)]
    assert next_fire_times(ScheduleConfig(cron="@daily"), utc(2026, 6, 12, 1), 1) == [utc(2026, 6, 13)]
    assert days(next_fire_times(ScheduleConfig(cron="@weekly"), utc(2026, 6, 12), 2)) == ["Sun", "Sun"]


@pytest.mark.parametrize(
    "cron",
    [
        "0 7 * *",  # four fields
        "0 7 * * * * *",  # seven
        "0 25 * * *",  # no hour 25
        "61 7 * * *",
        "0 7 * * 8",  # no day 8
        "0 7 * * 5-1",  # backwards
        "0 7 * * funday",
        "0 7 * * */0",
        "0 7 1 * 1",  # crontab ORs day of month and day of week; refused rather than misread
        "every morning",
    ],
)
def test_invalid_cron_is_a_config_error_naming_the_key_and_the_fix(cron: str, tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        make_trigger(ScheduleConfig.model_construct(cron=cron, timezone="UTC"))
    message = str(info.value)
    assert "[schedule] cron" in message
    assert repr(cron) in message
    assert '"0 7 * * 1-5"' in message  # the fix, by example
    # and refused when the configuration loads, so `digest check` and `digest run` find it too
    config = tmp_path / "digest.toml"
    config.write_text(f'[schedule]\ntimezone = "UTC"\ncron = "{cron}"\n')
    with pytest.raises(
        ConfigError, match=rf"digest.toml:3: schedule.cron: cron = {re.escape(repr(cron))} is not a valid"
    ):
        load_settings(config)


# -- DST: Europe/Berlin 2026, spring forward on 03-29 (02:00 → 03:00), fall back on 10-25 (03:00 → 02:00)


def test_weekday_job_stays_at_0700_local_across_spring_change() -> None:
    times = next_fire_times(WEEKDAYS, berlin(2026, 3, 26), 4)
    assert [t.isoformat() for t in times] == [
        "2026-03-26T07:00:00+01:00",
        "2026-03-27T07:00:00+01:00",  # CET: 06:00 UTC
        "2026-03-30T07:00:00+02:00",  # CEST: 05:00 UTC
        "2026-03-31T07:00:00+02:00",
    ]
    assert [t.astimezone(UTC).hour for t in times] == [6, 6, 5, 5]


def test_weekday_job_stays_at_0700_local_across_autumn_change() -> None:
    times = next_fire_times(WEEKDAYS, berlin(2026, 10, 22), 4)
    assert [t.isoformat() for t in times] == [
        "2026-10-22T07:00:00+02:00",
        "2026-10-23T07:00:00+02:00",  # CEST: 05:00 UTC
        "2026-10-26T07:00:00+01:00",  # CET: 06:00 UTC
        "2026-10-27T07:00:00+01:00",
    ]
    assert [t.astimezone(UTC).hour for t in times] == [5, 5, 6, 6]


def test_daily_job_across_changes_is_23_and_25_hours_apart() -> None:
    daily = ScheduleConfig(cron="0 7 * * *", timezone="Europe/Berlin")
    spring = next_fire_times(daily, berlin(2026, 3, 28), 2)
    autumn = next_fire_times(daily, berlin(2026, 10, 24), 2)
    # (subtracting in UTC: Python subtracts wall times when both sides share a tzinfo)
    assert spring[1].astimezone(UTC) - spring[0].astimezone(UTC) == dt.timedelta(hours=23)
    assert autumn[1].astimezone(UTC) - autumn[0].astimezone(UTC) == dt.timedelta(hours=25)


def fires_on(config: ScheduleConfig, day: dt.date) -> list[dt.datetime]:
    start = dt.datetime.combine(day - dt.timedelta(days=1), dt.time(12), tzinfo=config.tz)
    return [t for t in next_fire_times(config, start, 6) if t.date() == day]


def test_a_time_that_does_not_exist_fires_once_an_hour_later() -> None:
    # 02:30 does not exist in Berlin on 2026-03-29. APScheduler 3 fires at 01:30 UTC, which is
    # 03:30 CEST: once, an hour "late" by the wall clock, never skipped.
    at_0230 = ScheduleConfig(cron="30 2 * * *", timezone="Europe/Berlin")
    fires = fires_on(at_0230, dt.date(2026, 3, 29))
    assert [t.isoformat() for t in fires] == ["2026-03-29T03:30:00+02:00"]
    assert fires[0].astimezone(UTC) == utc(2026, 3, 29, 1, 30)
    # the days around it are untouched
    assert [t.isoformat() for t in fires_on(at_0230, dt.date(2026, 3, 30))] == ["2026-03-30T02:30:00+02:00"]


def test_a_time_that_happens_twice_fires_once() -> None:
    # 02:30 happens twice in Berlin on 2026-10-25 (CEST, then CET). Plain APScheduler 3 fires at
    # both; make_trigger fires at the first only: one digest a day.
    at_0230 = ScheduleConfig(cron="30 2 * * *", timezone="Europe/Berlin")
    fires = fires_on(at_0230, dt.date(2026, 10, 25))
    assert [t.isoformat() for t in fires] == ["2026-10-25T02:30:00+02:00"]
    assert fires[0].astimezone(UTC) == utc(2026, 10, 25, 0, 30)

    plain = CronTrigger(hour=2, minute=30, timezone=BERLIN)
    first = plain.get_next_fire_time(None, berlin(2026, 10, 25))
    second = plain.get_next_fire_time(first, first)
    assert (first.astimezone(UTC), second.astimezone(UTC)) == (
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 25, 1, 30),
    )


def test_fire_times_come_out_as_real_local_times() -> None:
    # Each fire time, round-tripped through UTC, is the same wall time: nothing in the gap.
    for config, start in [
        (WEEKDAYS, berlin(2026, 3, 1)),
        (ScheduleConfig(cron="30 2 * * *", timezone="Europe/Berlin"), berlin(2026, 3, 20)),
    ]:
        for t in next_fire_times(config, start, 30):
            assert t.astimezone(UTC).astimezone(BERLIN).replace(fold=0) == t.replace(fold=0)
            assert t.astimezone(UTC).astimezone(BERLIN).isoformat() == t.isoformat()


# -- catch-up on start ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("now", "last_status", "expected"),
    [
        (berlin(2026, 6, 12, 6, 59), None, False),  # Friday, before 07:00
        (berlin(2026, 6, 12, 7, 0), None, True),  # at the time, nothing ran
        (berlin(2026, 6, 12, 9, 30), None, True),
        (berlin(2026, 6, 12, 9, 30), "ok", False),
        (berlin(2026, 6, 12, 9, 30), "partial", False),  # it sent; the ledger has the rest
        (berlin(2026, 6, 12, 9, 30), "failed", True),
        (berlin(2026, 6, 12, 9, 30), "running", True),  # died mid-run (or still going: the lock says)
        (berlin(2026, 6, 12, 9, 30), "interrupted", True),  # partial with recipients pending
        (berlin(2026, 6, 13, 9, 30), None, False),  # Saturday: no run today
        (berlin(2026, 6, 14, 23, 59), None, False),  # Sunday
        (berlin(2026, 6, 15, 0, 1), None, False),  # Monday, before 07:00
        (utc(2026, 6, 12, 4, 59), None, False),  # 06:59 CEST, clock in UTC
        (utc(2026, 6, 12, 5, 0), None, True),  # 07:00 CEST
        (utc(2026, 6, 12, 22, 30), None, False),  # Friday in UTC, but 00:30 on Saturday in Berlin
        (utc(2026, 6, 14, 22, 30), None, False),  # Sunday in UTC, 00:30 on Monday in Berlin: too early
    ],
)
def test_catch_up_decision(now: dt.datetime, last_status: str | None, expected: bool) -> None:
    assert should_catch_up(WEEKDAYS, now, last_status) is expected


def test_catch_up_uses_the_schedule_time_zone_date() -> None:
    # Friday 20:00 UTC is Saturday 08:00 in Auckland: no weekday run there.
    auckland = ScheduleConfig(cron="0 7 * * 1-5", timezone="Pacific/Auckland")
    assert should_catch_up(auckland, utc(2026, 6, 12, 20), None) is False
    # Thursday 20:00 UTC is Friday 08:00 in Auckland: due.
    assert should_catch_up(auckland, utc(2026, 6, 11, 20), None) is True


# -- the scheduler as configured ------------------------------------------------------------------


def test_scheduler_job_options() -> None:
    scheduler = make_scheduler(ScheduleConfig(misfire_grace_hours=6), lambda: None)
    job = scheduler.get_job(JOB_ID)
    assert (job.max_instances, job.coalesce, job.misfire_grace_time) == (1, True, 6 * 3600)
    assert len(scheduler.get_jobs()) == 1


@pytest.mark.integration
def test_a_late_run_still_runs_within_the_grace_time() -> None:
    # A machine that slept through 07:00 and wakes an hour later: APScheduler's default grace of
    # one second would drop the run; ours keeps it.
    ran = threading.Event()
    an_hour_ago = dt.datetime.now(UTC) - dt.timedelta(hours=1)
    scheduler = make_scheduler(ScheduleConfig(cron="0 0 1 1 *"), ran.set, first_run_at=an_hour_ago)
    scheduler.start()
    try:
        assert ran.wait(10)
    finally:
        scheduler.shutdown(wait=True)


@pytest.mark.integration
def test_runs_never_overlap() -> None:
    # Each run takes longer than the interval between fire times: the runs that come due while
    # one is going are skipped, never run side by side. The job is the one serve configures
    # (options, executor); only its trigger fires every 0.1 s instead of every second or more.
    running, most, count = [0], [0], [0]
    guard = threading.Lock()

    def slow_run() -> None:
        with guard:
            running[0] += 1
            count[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        with guard:
            running[0] -= 1

    scheduler = make_scheduler(ScheduleConfig(cron="* * * * * *"), slow_run)
    scheduler.get_job(JOB_ID).reschedule(IntervalTrigger(seconds=0.1, timezone=UTC))
    scheduler.start()
    deadline = time.monotonic() + 10
    while count[0] < 2 and time.monotonic() < deadline:
        time.sleep(0.05)
    scheduler.shutdown(wait=True)
    assert count[0] >= 2
    assert most[0] == 1


# -- `digest serve`: local HTTP source, outbox delivery ---------------------------------------------
# In-process on a clock the test turns (tests/clock_scheduler.py), but for one real-time run on
# APScheduler and the tests that signal a real `digest serve` process.


def _write_config(tmp_path: Path, url: str, cron: str) -> tuple[Path, Path]:
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[[sources]]\nkind = "hf_daily"\nurl = "{url}"\n\n'
        "[fetch]\nretries = 0\n\n"
        '[delivery]\ntransport = "outbox"\n\n'
        f'[schedule]\ncron = "{cron}"\ntimezone = "UTC"\n'
    )
    subscribers = tmp_path / "subscribers.toml"
    subscribers.write_text('[[subscribers]]\nemail = "ada@example.org"\nname = "Ada"\nall = true\n')
    return config, subscribers


def _settings(tmp_path: Path, url: str, cron: str) -> tuple[Settings, Path]:
    config, subscribers = _write_config(tmp_path, url, cron)
    return load_settings(config, secret=SECRET), subscribers


@pytest.fixture
def serve_log(
    caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> Iterator[pytest.LogCaptureFixture]:
    """serve's log lines, as `digest serve` writes them."""
    monkeypatch.chdir(tmp_path)  # as `digest serve` would run: nothing lands in the checkout
    caplog.set_level("INFO", logger="digest.serve")
    aps = logging.getLogger("apscheduler")
    level = aps.level  # serve quiets APScheduler for the process: put it back for the next test
    yield caplog
    aps.setLevel(level)


def _hf_day(httpserver: HTTPServer, data_dir: Path) -> str:
    body = (data_dir / "hf_daily_papers_2026-06-12.json").read_bytes()
    httpserver.expect_request("/api/daily_papers").respond_with_data(body, content_type="application/json")
    return httpserver.url_for("/api/daily_papers")


@pytest.mark.integration
def test_serve_catches_up_at_once_on_the_real_scheduler(
    tmp_path: Path, httpserver: HTTPServer, data_dir: Path, serve_log: pytest.LogCaptureFixture
) -> None:
    """The real APScheduler wiring, in real time: started at 10:00 by the clock the runs use,
    serve catches up on the 07:00 run at once, and stops when told."""
    from digest.serve import serve

    settings, subscribers = _settings(tmp_path, _hf_day(httpserver, data_dir), "0 7 * * *")
    stop = threading.Event()
    result: list[int] = []
    thread = threading.Thread(
        target=lambda: result.append(
            serve(settings, subscribers_path=subscribers, clock=lambda: utc(2026, 6, 12, 10), stop_event=stop)
        )
    )
    thread.start()
    try:
        deadline = time.monotonic() + 30
        while "next run at 2026-06-13" not in serve_log.text.split("finished with exit code", 1)[-1]:
            assert time.monotonic() < deadline, serve_log.text
            time.sleep(0.02)
    finally:
        stop.set()
        thread.join(30)
    assert not thread.is_alive()
    assert result == [0]
    text = serve_log.text
    assert "catching up: the run for 2026-06-12 was due and its status is none" in text
    assert "finished with exit code 0" in text, text
    assert "stopped" in text.splitlines()[-1], text
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 1, text


@pytest.mark.integration
def test_serve_runs_once_on_schedule_and_stops_cleanly(
    tmp_path: Path, httpserver: HTTPServer, data_dir: Path, serve_log: pytest.LogCaptureFixture
) -> None:
    # (the same stop by SIGTERM, from outside the process: test_serve_stopped_mid_run_loses_nothing)
    settings, subscribers = _settings(tmp_path, _hf_day(httpserver, data_dir), "0 7 * * *")
    clock = Clock(utc(2026, 6, 12, 6, 59, 50))
    with serving(settings, clock, subscribers) as scheduler:
        assert scheduler.advance_to(utc(2026, 6, 12, 6, 59, 59)) == 0
        assert "run starting" not in serve_log.text
        assert scheduler.advance_to(utc(2026, 6, 12, 7, 0, 1)) == 1
        assert (
            "next run at 2026-06-13T07:00:00+00:00" in serve_log.text.split("finished with exit code", 1)[1]
        )
        assert scheduler.advance_to(utc(2026, 6, 12, 9)) == 0  # the next is tomorrow's
        assert scheduler.next_fire_time() == utc(2026, 6, 13, 7)

    text = serve_log.text
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 1, text
    assert text.count("run starting") == 1, text
    assert "finished with exit code 0" in text, text
    assert "stopped" in text.splitlines()[-1], text
    assert "Traceback" not in text, text
    with Store.open(tmp_path / "state" / "digest.sqlite3", create=False) as store:
        assert store.run_status(dt.date(2026, 6, 12)) == "ok"


@pytest.mark.integration
def test_a_failed_run_is_logged_and_the_schedule_goes_on(
    tmp_path: Path, httpserver: HTTPServer, data_dir: Path, serve_log: pytest.LogCaptureFixture
) -> None:
    """The first run meets a 500 and fails before sending, the service carries on, the next run
    sends the digest, the ones after send nothing again."""
    body = (data_dir / "hf_daily_papers_2026-06-12.json").read_bytes()
    calls = [0]

    def flaky(_request: Request) -> Response:
        calls[0] += 1
        if calls[0] == 1:
            return Response("upstream is down", status=500)
        return Response(body, content_type="application/json")

    httpserver.expect_request("/api/daily_papers").respond_with_handler(flaky)
    # every 3 seconds; the clock says 2026-06-12, the day of the captured listing
    settings, subscribers = _settings(tmp_path, httpserver.url_for("/api/daily_papers"), "*/3 * * * * *")
    clock = Clock(utc(2026, 6, 12, 10))
    with serving(settings, clock, subscribers) as scheduler:
        assert scheduler.advance_to(utc(2026, 6, 12, 10)) == 1  # the catch-up
        assert scheduler.advance_to(utc(2026, 6, 12, 10, 0, 3)) == 1
        assert scheduler.advance_to(utc(2026, 6, 12, 10, 0, 6)) == 1
    text = serve_log.text
    assert "catching up: the run for 2026-06-12 was due" in text
    assert "run failed (exit 1)" in text
    assert text.index("run failed (exit 1)") < text.index("finished with exit code 0")
    assert text.count("finished with exit code 0") >= 2, text
    assert len(list((tmp_path / "outbox").rglob("*.eml"))) == 1, text


@pytest.mark.integration
def test_runs_missed_while_the_clock_jumped_make_one_run(
    tmp_path: Path, httpserver: HTTPServer, data_dir: Path, serve_log: pytest.LogCaptureFixture
) -> None:
    settings, subscribers = _settings(tmp_path, _hf_day(httpserver, data_dir), "*/3 * * * * *")
    with serving(settings, Clock(utc(2026, 6, 12, 6)), subscribers) as scheduler:
        assert scheduler.advance_to(utc(2026, 6, 12, 6)) == 1  # the catch-up
        assert scheduler.advance_to(utc(2026, 6, 12, 6, 1)) == 1  # twenty fire times passed
        assert scheduler.next_fire_time() == utc(2026, 6, 12, 6, 1, 3)
    assert serve_log.text.count("run starting") == 2


@pytest.mark.integration
def test_a_missed_run_and_a_skipped_one_are_logged(
    tmp_path: Path, serve_log: pytest.LogCaptureFixture
) -> None:
    settings, subscribers = _settings(tmp_path, "http://127.0.0.1:9/unused", "0 7 * * *")
    with serving(settings, Clock(utc(2026, 6, 12, 6)), subscribers) as scheduler:
        ((on_event, mask),) = scheduler.listeners
        assert mask == EVENT_JOB_MISSED | EVENT_JOB_MAX_INSTANCES
        on_event(JobExecutionEvent(EVENT_JOB_MISSED, JOB_ID, "default", utc(2026, 6, 12, 7)))
        on_event(JobSubmissionEvent(EVENT_JOB_MAX_INSTANCES, JOB_ID, "default", [utc(2026, 6, 12, 7)]))
    text = serve_log.text
    assert "missed the run due at 2026-06-12 07:00:00+00:00: more than" in text, text
    assert "skipped a run: the previous one is still going" in text, text
    assert "run starting" not in text


@pytest.mark.e2e
def test_serve_stopped_mid_run_loses_nothing(tmp_path: Path, httpserver: HTTPServer, data_dir: Path) -> None:
    """SIGTERM while the run is fetching: the process still exits 0, and the restarted service
    catches up on whatever was left, so the subscriber ends up with exactly one digest."""
    body = (data_dir / "hf_daily_papers_2026-06-12.json").read_bytes()
    fetching = threading.Event()

    def slow(_request: Request) -> Response:
        if not fetching.is_set():  # the first fetch only: long enough for the signal to land in it
            fetching.set()
            time.sleep(0.5)
        return Response(body, content_type="application/json")

    httpserver.expect_request("/api/daily_papers").respond_with_handler(slow)
    # midnight, long past whenever the test runs: the run starts at once, as a catch-up
    config, subscribers = _write_config(tmp_path, httpserver.url_for("/api/daily_papers"), "0 0 * * *")
    log = tmp_path / "serve.log"
    outbox = tmp_path / "outbox"

    process = _serve(tmp_path, config, subscribers, log)
    try:
        _wait_for(fetching.is_set, 60, "the fetch", process, log)
    finally:
        _stop(process, log)
    first = log.read_text()
    assert "stopped" in first.splitlines()[-1], first
    assert "Traceback" not in first, first

    # Started again: it catches up if anything is still due.
    process = _serve(tmp_path, config, subscribers, log)
    try:
        _wait_for(lambda: "serving:" in log.read_text()[len(first) :], 60, "the restart", process, log)
        if "catching up" in log.read_text()[len(first) :]:
            _wait_for(
                lambda: "finished with exit code" in log.read_text()[len(first) :],
                60,
                "the catch-up run",
                process,
                log,
            )
    finally:
        _stop(process, log)
    assert len(list(outbox.rglob("*.eml"))) == 1, log.read_text()


def _wait_for(
    predicate: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen[bytes], log: Path
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        if process.poll() is not None:
            raise AssertionError(
                f"digest serve exited {process.returncode} before {what}; the log:\n{log.read_text()}"
            )
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}; the log:\n{log.read_text()}")


def _serve(tmp_path: Path, config: Path, subscribers: Path, log: Path) -> subprocess.Popen[bytes]:
    env = base_env(secret=SECRET)
    # the checkout under test, whether or not digest is installed in this environment
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "serve", "--config", str(config), "--subscribers", str(subscribers)],
        cwd=tmp_path,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


def _stop(process: subprocess.Popen[bytes], log: Path) -> None:
    process.send_signal(signal.SIGTERM)
    try:
        code = process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        raise AssertionError(f"digest serve did not stop on SIGTERM; the log:\n{log.read_text()}") from None
    assert code == 0, log.read_text()


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_serve_waits_quietly_and_stops_on_a_signal(tmp_path: Path, signum: signal.Signals) -> None:
    # Midnight on the 1st of next month: not today, so no catch-up and no run; nothing is fetched.
    today = dt.datetime.now(UTC).date()
    first = dt.date(today.year + today.month // 12, today.month % 12 + 1, 1)
    config, subscribers = _write_config(tmp_path, "http://127.0.0.1:9/unused", f"0 0 1 {first.month} *")
    log = tmp_path / "serve.log"
    process = _serve(tmp_path, config, subscribers, log)
    try:
        _wait_for(lambda: "serving:" in log.read_text(), 60, "the start", process, log)
    finally:
        process.send_signal(signum)
        code = process.wait(timeout=30)
    text = log.read_text()
    assert code == 0, text
    assert f"next run at {first.isoformat()}T00:00:00+00:00" in text
    assert "run starting" not in text
    assert "Traceback" not in text
    assert not (tmp_path / "outbox").exists()
    assert "stopped" in text.splitlines()[-1], text


@pytest.mark.integration
def test_serve_refuses_a_bad_cron_with_one_line(tmp_path: Path) -> None:
    config, subscribers = _write_config(tmp_path, "http://127.0.0.1:9/unused", "0 7 * * 1-8")
    result = digest(
        "serve", "--config", str(config), "--subscribers", str(subscribers), cwd=tmp_path, secret=SECRET
    )
    assert result.returncode == 1
    assert "schedule.cron: cron = '0 7 * * 1-8' is not a valid schedule" in result.stderr + result.stdout
    assert "Traceback" not in result.stderr + result.stdout
