"""A plan is recorded whole before anything is sent (`digest.pipeline.recording`, issue 20).

Real listings from a real local HTTP server, `digest run` in-process through the CLI, the real
SQLite state, the mail in the outbox. Recording the digests in slices while the first emails
went out was tried and given up (a run killed between two slices left a day half recorded, which
the next date's run planned again from scratch: weekly readers got their week twice); these
tests hold the one-transaction rule and are the harness of `tests/test_render_workers.py`.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cli_runner import digest
from pytest_httpserver import HTTPServer
from test_weekly import WEEKDAYS, mails, serve
from test_weekly import setup as weekly_setup

from digest import pipeline
from digest.config import Settings, load_settings
from digest.pipeline.daily import read_ledger
from digest.pipeline.fetching import fetch_day
from digest.pipeline.readers import load_readers
from digest.pipeline.recording import record_plan
from digest.plan import Plan, plan_run
from digest.store import Store

DAY, NEXT = WEEKDAYS[0], WEEKDAYS[1]
NOW = dt.datetime.combine(DAY, dt.time(7), dt.UTC)
TOPICS = ["learning", "model", "graph", "quantum", "language", "robot", "vision", "network"]
# 30 readers, a third of them weekly (their days are held, and their week's digest takes them)
PROFILES = '[defaults]\nweekday = "friday"\n' + "".join(
    f"""
[[subscribers]]
email = "reader{n:02d}@example.org"
keywords = ["{TOPICS[n % len(TOPICS)]}", "{TOPICS[(n * 3 + 1) % len(TOPICS)]}"]
max_papers = {3 + n % 5}
{'cadence = "weekly"' if n % 3 == 0 else ""}
"""
    for n in range(30)
)


def setup(tmp: Path, server: HTTPServer) -> Path:
    """test_weekly's digest.toml (the local arXiv listings, the outbox), with these 30 readers."""
    tmp.mkdir(parents=True, exist_ok=True)
    config = weekly_setup(tmp, server)
    (tmp / "subscribers.toml").write_text(PROFILES)
    return config


def run(tmp: Path, config: Path, server: HTTPServer, day: dt.date) -> None:
    serve(server, day)
    done = digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp)
    assert done.returncode == 0, done.stdout + done.stderr


@contextlib.contextmanager
def planned(
    tmp: Path, config: Path, server: HTTPServer, monkeypatch: pytest.MonkeyPatch, day: dt.date = DAY
) -> Iterator[tuple[Store, Plan]]:
    """A run of `day` up to its plan, recorded (what a run killed before its first email leaves)."""
    serve(server, day)
    monkeypatch.chdir(tmp)
    settings = load_settings(config)
    now = dt.datetime.combine(day, dt.time(7), dt.UTC)
    with Store.from_config(settings.state) as store:
        result = fetch_day(settings, store, day, now, plans=True).result
        store.start_run(day, now)
        readers = load_readers(settings, None).all
        plan = plan_run(day, readers, result.new, read_ledger(store, day, result))
        record_plan(store, plan, now)
        yield store, plan


def papers_by_reader(tmp: Path) -> dict[str, list[tuple[str, set[str]]]]:
    return {reader: sorted(got, key=lambda one: one[0]) for reader, got in mails(tmp).items()}


def ledger(tmp: Path, day: dt.date) -> dict[str, tuple[Any, ...]]:
    with Store.open(tmp / "state" / "digest.sqlite3") as store:
        return {
            email: (str(row.status), row.papers, store.recorded_digest(day, email))
            for email, row in store.deliveries(day).items()
        }


def test_the_plan_is_recorded_whole_before_the_first_email(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = setup(tmp_path, httpserver)
    with planned(tmp_path, config, httpserver, monkeypatch) as (store, plan):
        rows = store.deliveries(DAY)
        assert store.is_recorded(DAY)
        assert {s.subscriber.email for s in plan.sends} == rows.keys()
        assert {str(row.status) for row in rows.values()} == {"pending"}
        assert store.held(before=NEXT).keys() == {d.subscriber.email for d in plan.holds}


class StopAfter:
    """A progress report that asks the run to stop after `n` emails."""

    def __init__(self, stop: threading.Event, n: int) -> None:
        self.stop, self.n, self.seen = stop, n, 0

    def stage(self, name: str, total: int) -> Any:
        def advance(label: str = "") -> None:
            if name == "send":
                self.seen += 1
                if self.seen >= self.n:
                    self.stop.set()

        return advance


def test_a_stopped_run_leaves_the_whole_plan_recorded(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = tmp_path / "clean"
    run(clean, setup(clean, httpserver), httpserver, DAY)
    planned_rows = ledger(clean, DAY).keys()
    stopped = tmp_path / "stopped"
    config = setup(stopped, httpserver)
    serve(httpserver, DAY)
    monkeypatch.chdir(stopped)
    settings: Settings = load_settings(config)
    stop = threading.Event()
    summary = pipeline.run(settings, date=DAY, now=NOW, stop=stop, progress=StopAfter(stop, 3))
    assert 3 <= summary.sent < len(planned_rows)
    with Store.from_config(settings.state) as store:
        rows = store.deliveries(DAY)
        assert store.is_recorded(DAY)
    assert rows.keys() == planned_rows  # every digest of the plan, sent or not
    statuses = Counter(str(row.status) for row in rows.values())
    assert statuses == Counter({"sent": summary.sent, "pending": len(rows) - summary.sent})
    run(stopped, config, httpserver, DAY)  # the rest, once each
    assert papers_by_reader(stopped) == papers_by_reader(clean)
    run(stopped, config, httpserver, NEXT)
    run(clean, setup(clean, httpserver), httpserver, NEXT)
    assert papers_by_reader(stopped) == papers_by_reader(clean)


def test_a_reader_turned_daily_keeps_the_held_days_when_the_date_is_run_again(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """reader00 is weekly on Monday (its day is held), daily from Tuesday: Tuesday's digest takes
    the held day. Tuesday's run is killed after recording its plan; its re-run sends that digest
    as recorded, not only Tuesday's papers (found by this session's state review)."""
    weekly_first = PROFILES.replace(
        'email = "reader00@example.org"', 'email = "reader00@example.org"\nall = true'
    )
    weekly_first = weekly_first.replace("max_papers = 3", "max_papers = 100", 1)  # reader00's
    daily_after = weekly_first.replace('cadence = "weekly"', "")  # every weekly reader turns daily
    got = {}
    for name in ("clean", "killed"):
        tmp = tmp_path / name
        config = setup(tmp, httpserver)
        (tmp / "subscribers.toml").write_text(weekly_first)
        run(tmp, config, httpserver, DAY)
        (tmp / "subscribers.toml").write_text(daily_after)
        if name == "killed":
            with planned(tmp, config, httpserver, monkeypatch, NEXT) as (store, _):
                assert store.delivery(NEXT, "reader00@example.org") is not None
        run(tmp, config, httpserver, NEXT)
        got[name] = papers_by_reader(tmp)["reader00@example.org"]
    assert got["killed"] == got["clean"]
    ((_, papers),) = got["clean"]  # one email, Tuesday's, with Monday's held papers in it
    assert len(papers) > 12
