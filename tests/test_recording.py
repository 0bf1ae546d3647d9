"""A plan recorded in slices while its emails go out (`digest.pipeline.recording`, issue 20).

Real listings from a real local HTTP server, `digest run` in-process through the CLI, the real
SQLite state, the mail in the outbox. The state a run killed between two slices leaves (each
slice is its own committed transaction, the day not marked recorded yet) is made with the real
`PlanRecorder`, stopped where a SIGKILL would stop it; then the next run heals it: every reader
gets each digest once, with the papers a clean run gives them.
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
from cli_runner import digest, offline_config
from pytest_httpserver import HTTPServer
from test_weekly import WEEKDAYS, mails, serve

from digest import pipeline
from digest.config import Settings, load_settings
from digest.deliver.sender import Job
from digest.pipeline import recording
from digest.pipeline.daily import read_ledger
from digest.pipeline.fetching import fetch_day
from digest.pipeline.readers import load_readers
from digest.pipeline.recording import PlanRecorder
from digest.pipeline.sending import claimed
from digest.plan import plan_run
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
    sources = f"""
[[sources]]
name = "arxiv"
kind = "arxiv_rss"
url = "{server.url_for("/rss/cs")}"
api_url = "{server.url_for("/api/query")}"
"""
    tmp.mkdir(parents=True, exist_ok=True)
    (tmp / "subscribers.toml").write_text(PROFILES)
    return offline_config(tmp, sources)


def run(tmp: Path, config: Path, server: HTTPServer, day: dt.date) -> None:
    serve(server, day)
    done = digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp)
    assert done.returncode == 0, done.stdout + done.stderr


@contextlib.contextmanager
def planned(
    tmp: Path, config: Path, server: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> Iterator[tuple[Store, PlanRecorder]]:
    """A run of DAY up to its plan, recorded up to its head, in slices of four readers."""
    serve(server, DAY)
    monkeypatch.chdir(tmp)
    settings = load_settings(config)
    with Store.from_config(settings.state) as store:
        result = fetch_day(settings, store, DAY, NOW, plans=True).result
        store.start_run(DAY, NOW)
        readers = load_readers(settings, None).all
        plan = plan_run(DAY, readers, result.new, read_ledger(store, DAY, result))
        recorder = PlanRecorder(store, plan, NOW, slice_size=4)
        recorder.head()
        yield store, recorder


def killed_between_slices(
    tmp: Path, config: Path, server: HTTPServer, monkeypatch: pytest.MonkeyPatch, *, sent: int
) -> list[str]:
    """What a run of DAY killed after its third slice of four readers leaves, its first `sent`
    digests sent; the readers whose digests were recorded."""
    with planned(tmp, config, server, monkeypatch) as (store, recorder):
        recorder.through(9)  # the sender reached the tenth email: three slices
        for send in recorder.jobs[:sent]:
            store.mark_sending(DAY, send.subscriber.email, f"<{send.subscriber.email}>", NOW)
            store.mark_sent(DAY, send.subscriber.email, "250 OK", NOW)
        recorded = sorted(store.deliveries(DAY))
        assert len(recorded) == 12 < len(recorder.jobs)
        assert not store.is_recorded(DAY)  # the day is marked last
    return recorded


def test_each_digest_is_recorded_before_it_is_claimed(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The sender's order of the jobs (`sending.claimed`): each batch's slices first."""
    config = setup(tmp_path, httpserver)
    with planned(tmp_path, config, httpserver, monkeypatch) as (store, recorder):
        assert store.deliveries(DAY) == {}  # the head holds no email digest of the day
        jobs = [Job(send.date, send.subscriber, lambda: None) for send in recorder.jobs]
        taken = []
        for index in claimed(store, jobs, DAY, recorder=recorder):
            row = store.delivery(DAY, jobs[index].subscriber.email)
            assert row is not None and row.status == "pending", index
            taken.append(index)
        assert taken == list(range(len(jobs))) and recorder.recorded == len(jobs) > 8
        assert not store.is_recorded(DAY)
        recorder.finish()
        assert store.is_recorded(DAY)


def papers_by_reader(tmp: Path) -> dict[str, list[tuple[str, set[str]]]]:
    return {reader: sorted(got, key=lambda one: one[0]) for reader, got in mails(tmp).items()}


def test_a_rerun_of_the_date_sends_what_the_killed_run_had_not(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = tmp_path / "clean"
    run(clean, setup(clean, httpserver), httpserver, DAY)
    expected = papers_by_reader(clean)
    killed = tmp_path / "killed"
    config = setup(killed, httpserver)
    recorded = killed_between_slices(killed, config, httpserver, monkeypatch, sent=2)
    run(killed, config, httpserver, DAY)
    got = papers_by_reader(killed)
    with Store.open(killed / "state" / "digest.sqlite3") as store:
        rows = store.deliveries(DAY)
        assert store.is_recorded(DAY)
    # the two the killed run sent: in the ledger under their first Message-ID, not in this outbox
    sent_before = [e for e, row in rows.items() if row.message_id == f"<{e}>"]
    assert len(sent_before) == 2 and set(sent_before) <= set(recorded)
    assert Counter(str(row.status) for row in rows.values()) == Counter({"sent": len(rows)})
    for reader in sent_before:
        assert reader not in got  # never a second copy
    assert {r: m for r, m in expected.items() if r not in sent_before} == got
    assert all(len(one) == 1 for one in got.values())


def test_the_next_day_s_run_sends_the_killed_day_late(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    clean = tmp_path / "clean"
    config = setup(clean, httpserver)
    run(clean, config, httpserver, DAY)
    run(clean, config, httpserver, NEXT)
    expected = papers_by_reader(clean)
    killed = tmp_path / "killed"
    config = setup(killed, httpserver)
    killed_between_slices(killed, config, httpserver, monkeypatch, sent=0)
    run(killed, config, httpserver, NEXT)  # no re-run of DAY: its digests go out late
    got = papers_by_reader(killed)
    assert got == expected  # each reader both days' digests, each once, as a clean fortnight
    with Store.open(killed / "state" / "digest.sqlite3") as store:
        assert store.is_recorded(DAY) and store.is_recorded(NEXT)
        for day in (DAY, NEXT):
            assert {str(row.status) for row in store.deliveries(day).values()} == {"sent"}


def ledger(tmp: Path, day: dt.date) -> dict[str, tuple[Any, ...]]:
    with Store.open(tmp / "state" / "digest.sqlite3") as store:
        return {
            email: (str(row.status), row.papers, store.recorded_digest(day, email))
            for email, row in store.deliveries(day).items()
        }


def test_slices_of_any_size_record_what_the_whole_plan_records(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    outcomes = []
    for size in (1, 3, 10_000):
        tmp = tmp_path / f"slice{size}"
        config = setup(tmp, httpserver)
        with monkeypatch.context() as patch:
            patch.setattr(recording, "SLICE", size)
            run(tmp, config, httpserver, DAY)
            run(tmp, config, httpserver, NEXT)
        outcomes.append((papers_by_reader(tmp), ledger(tmp, DAY), ledger(tmp, NEXT)))
    assert outcomes[0] == outcomes[1] == outcomes[2]
    assert len(outcomes[0][1]) > 10  # enough digests for many slices


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
    planned = ledger(clean, DAY).keys()
    stopped = tmp_path / "stopped"
    config = setup(stopped, httpserver)
    serve(httpserver, DAY)
    monkeypatch.chdir(stopped)
    monkeypatch.setattr(recording, "SLICE", 2)
    settings: Settings = load_settings(config)
    stop = threading.Event()
    summary = pipeline.run(settings, date=DAY, now=NOW, stop=stop, progress=StopAfter(stop, 3))
    assert 3 <= summary.sent < len(planned)
    with Store.from_config(settings.state) as store:
        rows = store.deliveries(DAY)
        assert store.is_recorded(DAY)
    assert rows.keys() == planned  # every digest of the plan, sent or not
    statuses = Counter(str(row.status) for row in rows.values())
    assert statuses == Counter({"sent": summary.sent, "pending": len(rows) - summary.sent})
    run(stopped, config, httpserver, DAY)  # the rest, once each
    assert papers_by_reader(stopped) == papers_by_reader(clean)
