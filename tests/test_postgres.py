"""Issue 20, past one machine: the state on a real PostgreSQL server (`[state] url`), shared by
several `digest run` processes that split the readers between them with no coordination but the
database, each digest sent once, also when one runner is SIGKILLed mid-send.

The server is Debian's PostgreSQL, started by the `pg_server` fixture (tests/pg_server.py) with a
fresh database per test. The store's own tests run on it too: `DIGEST_TEST_STATE=postgres pytest`
(tests/conftest.py; `.ci/run` runs that pass over the state's test modules).
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import re
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cli_runner import base_env, digest
from pytest_httpserver import HTTPServer
from smtp_servers import AcceptAll, smtp_server
from test_hostile_smtp import DATE, serve_listings, write_config
from test_kill_points import start

from digest.config.sections import StateConfig
from digest.core.errors import LockedError, StoreError
from digest.core.status import DeliveryStatus
from digest.store import MIGRATIONS, Store, pg_schema, postgres_store
from digest.store.retention import epoch_day

pytestmark = pytest.mark.e2e
PgStore = postgres_store()

ROOT = Path(__file__).parent.parent
DAY = dt.date.fromisoformat(DATE)
NOW = dt.datetime(2026, 6, 12, 7, 0, tzinfo=dt.UTC)


class SlowAccept(AcceptAll):
    """Accepts each message after `delay` seconds: a run long enough for three runners to overlap."""

    def __init__(self, delay: float) -> None:
        super().__init__()
        self.delay = delay

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        await asyncio.sleep(self.delay)
        return await super().handle_DATA(server, session, envelope)


def pg_config(tmp_path: Path, httpserver: HTTPServer, port: int, url: str, readers: list[str]) -> Path:
    config = write_config(tmp_path, httpserver, port, readers=readers)
    text = config.read_text().replace('path = "state/digest.sqlite3"', f'url = "{url}"')
    config.write_text(text)
    return config


@contextlib.contextmanager
def three_runners(
    tmp_path: Path, httpserver: HTTPServer, url: str, readers: list[str]
) -> Iterator[tuple[SlowAccept, Path, list[subprocess.Popen[str]]]]:
    """Three `digest run` of DATE started at once on the database `url`, to a sink that takes
    a hundredth of a second a message (long enough for them to overlap)."""
    serve_listings(httpserver)
    handler = SlowAccept(0.01)
    with smtp_server(handler) as (_host, port, _):
        config = pg_config(tmp_path, httpserver, port, url, readers)
        yield handler, config, [start(config) for _ in range(3)]


def statuses(url: str) -> dict[str, str]:
    with psycopg.connect(url) as conn:
        rows = conn.execute("SELECT email, status FROM deliveries WHERE date = %s", (DATE,)).fetchall()
    return dict(rows)


def sent_counts(outs: list[str]) -> list[int]:
    return [int(m.group(1)) if (m := re.search(r"emails sent\D+(\d+)", out)) else -1 for out in outs]


# -- the schema -----------------------------------------------------------------------------------
@pytest.mark.sqlite_only  # opens the SQLite file beside the server: the default pass runs it
def test_postgres_has_the_schema_of_the_sqlite_file_at_the_same_version(tmp_path: Path, pg_url: str) -> None:
    with Store.open(tmp_path / "d.sqlite3") as lite:
        tables = [n for (n,) in lite.conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        sqlite_schema = {
            t: {(row[1], bool(row[5])) for row in lite.conn.execute(f"PRAGMA table_info({t})")}
            for t in tables
        }
        sqlite_keys = {t: [row[1] for row in sorted(lite.conn.execute(f"PRAGMA table_info({t})"), key=lambda r: r[5]) if row[5]] for t in tables}  # fmt: skip
    with PgStore.connect(pg_url) as pg:
        pg_schema_now = {
            t: {(c, c in pg.conn.keys.get(t, [])) for c in cols} for t, cols in pg.conn.columns.items()
        }
        version = pg.conn.execute("SELECT version FROM digest_schema").fetchone()[0]
        pg_keys = dict(pg.conn.keys)
    del pg_schema_now["digest_schema"]  # PostgreSQL's PRAGMA user_version
    pg_schema_now["snapshot_rows_v8"].remove(("rowid", False))  # SQLite's implicit rowid, spelt out
    assert pg_schema_now == sqlite_schema
    assert {t: k for t, k in pg_keys.items()} == {t: k for t, k in sqlite_keys.items() if k}
    assert version == len(MIGRATIONS) == pg_schema.BASE_VERSION + len(pg_schema.MIGRATIONS)


def test_a_second_open_keeps_the_state_and_a_newer_schema_is_refused(pg_url: str) -> None:
    with PgStore.connect(pg_url) as store:
        store.mark_pending(DAY, "ada@example.org", ["2406.00001"], NOW)
    with PgStore.connect(pg_url) as store:
        assert store.delivery(DAY, "ada@example.org") is not None
        store.conn.execute("UPDATE digest_schema SET version = 999")
    with pytest.raises(StoreError, match=r"newer digest \(schema 999"):
        PgStore.connect(pg_url)


def test_an_empty_database_opened_to_read_is_an_empty_state(pg_url: str) -> None:
    with PgStore.connect(pg_url, create=False) as store:
        assert store.snapshot_dates() == [] and store.deliveries(DAY) == {}


def test_a_server_that_is_not_there_is_one_line_naming_the_url_without_its_password() -> None:
    state = StateConfig(url="postgresql://digest:hunter2@127.0.0.1:9/nowhere")  # type: ignore[arg-type]
    with pytest.raises(StoreError) as caught:
        Store.from_config(state)
    message = str(caught.value)
    assert "\n" not in message and "hunter2" not in message
    assert message.startswith("postgresql://digest:***@127.0.0.1:9/nowhere: cannot open the state database")
    assert "check [state] url" in message


def test_config_refuses_a_url_that_is_not_postgresql_and_a_shared_state_without_a_secret(
    tmp_path: Path, pg_url: str
) -> None:
    (tmp_path / "digest.toml").write_text('[state]\nurl = "mysql://db/x"\n')
    (tmp_path / "subscribers.toml").write_text('[[subscribers]]\nemail = "a@example.org"\nall = true\n')
    result = digest("run", "--config", "digest.toml", cwd=tmp_path)
    assert result.returncode != 0
    assert "[state] url" in result.stderr or "state.url" in result.stderr, result.stderr
    assert "is not a PostgreSQL URL" in result.stderr

    (tmp_path / "digest.toml").write_text(f'[state]\nurl = "{pg_url}"\n')
    env = {k: v for k, v in base_env().items() if k != "DIGEST_SECRET"} | {"PYTHONPATH": str(ROOT)}
    done = subprocess.run(
        [sys.executable, "-m", "digest", "run", "--config", "digest.toml", "--date", DATE],
        cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode != 0
    assert done.stderr.strip().count("\n") == 0, done.stderr
    assert "set DIGEST_SECRET (the same on every runner)" in done.stderr, done.stderr


# -- one runner, then several ---------------------------------------------------------------------
def test_a_run_on_postgres_sends_each_reader_once_and_a_rerun_sends_nothing(
    tmp_path: Path, httpserver: HTTPServer, pg_url: str
) -> None:
    serve_listings(httpserver)
    readers = [f"reader{i}@example.org" for i in range(5)]
    with smtp_server() as (_host, port, handler):
        config = pg_config(tmp_path, httpserver, port, pg_url, readers)
        first = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert first.returncode == 0, first.stdout + first.stderr
        again = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert again.returncode == 0, again.stdout + again.stderr
        assert Counter(handler.recipients()) == Counter(readers)
    assert set(statuses(pg_url).values()) == {"sent"}
    assert not (tmp_path / "state" / "digest.sqlite3").exists()  # nothing went to a file
    assert list((tmp_path / "public").glob("*.xml")), "the feeds were published"
    shown = digest("state", "--config", str(config), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert shown.stdout.startswith(pg_url.split("@")[0]) and "1 days stored" in shown.stdout, shown.stdout
    compacted = digest("state", "--config", str(config), "--compact", cwd=tmp_path)
    assert compacted.returncode == 0, compacted.stderr


def test_three_runners_share_the_readers_and_send_each_digest_once(
    tmp_path: Path, httpserver: HTTPServer, pg_url: str
) -> None:
    readers = [f"reader{i:03d}@example.org" for i in range(240)]
    with three_runners(tmp_path, httpserver, pg_url, readers) as (handler, _config, procs):
        outs = [p.communicate(timeout=100)[0] + "" for p in procs]
        codes = [p.returncode for p in procs]
    assert codes == [0, 0, 0], outs
    assert Counter(handler.recipients()) == Counter(readers), "every reader exactly once"
    assert sum("joined the run another runner planned" in out for out in outs) == 2, outs
    shares = sent_counts(outs)  # each runner's "emails sent"
    assert sum(shares) == len(readers) and all(n > 0 for n in shares), shares
    assert set(statuses(pg_url).values()) == {"sent"}


def test_a_runner_killed_mid_send_leaves_no_reader_with_two_copies(
    tmp_path: Path, httpserver: HTTPServer, pg_url: str
) -> None:
    readers = [f"reader{i:03d}@example.org" for i in range(240)]
    with three_runners(tmp_path, httpserver, pg_url, readers) as (handler, config, procs):
        assert handler.wait_for(60, timeout=60), "the runners never got going"
        procs[0].send_signal(signal.SIGKILL)
        outs = [p.communicate(timeout=100)[0] for p in procs]
        assert procs[0].returncode == -signal.SIGKILL
        assert [p.returncode for p in procs[1:]] != [None, None]
        # what the killed runner had claimed and not started, the others took before they ended
        assert "pending" not in statuses(pg_url).values(), Counter(statuses(pg_url).values())
        # a plain re-run afterwards: what the killed runner left pending goes out now
        rerun = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    received = Counter(handler.recipients())
    assert max(received.values()) == 1, "a reader got two copies"
    rows = statuses(pg_url)
    assert set(rows) == set(readers)
    unknown = {email for email, status in rows.items() if status == "unknown"}
    assert len(unknown) <= 1, rows  # at most the one message the killed runner had on the wire
    assert {email for email, status in rows.items() if status == "sent"} | unknown == set(readers)
    assert set(readers) - unknown <= set(received), "every reader not unknown got their digest"
    assert rerun.returncode == (4 if unknown else 0), rerun.stdout + rerun.stderr + "\n".join(outs)


@pytest.mark.sqlite_only
def test_the_sqlite_file_still_refuses_a_second_run_at_once(tmp_path: Path) -> None:
    """The file's run lock is unchanged: waiting and joining are PostgreSQL's."""
    with Store.open(tmp_path / "d.sqlite3") as store, store.run_lock(DAY) as joined:
        assert not joined
        assert store.claim([(DAY, "a@example.org")], DAY) == {(DAY, "a@example.org")}
        with pytest.raises(LockedError), Store.open(tmp_path / "d.sqlite3") as second, second.lock():
            pass
        with sqlite3.connect(tmp_path / "d.sqlite3") as db:
            assert db.execute("SELECT COUNT(*) FROM deliveries").fetchone()[0] == 0
    time.sleep(0)


# -- claims, at the store ---------------------------------------------------------------------------
def test_a_claim_held_by_a_live_runner_is_skipped_and_freed_the_moment_its_connection_drops(
    pg_url: str,
) -> None:
    keys = [(DAY, f"r{i}@example.org") for i in range(4)]
    with PgStore.connect(pg_url) as store:
        for _, email in keys:
            store.mark_pending(DAY, email, ["2406.00001"], NOW)
        store.queue(keys, DAY)
    first, second = PgStore.connect(pg_url), PgStore.connect(pg_url)
    try:
        assert first.claim(keys[:2], DAY) == set(keys[:2])
        assert second.claim(keys, DAY) == set(keys[2:])  # the first runner's two are skipped
        assert first.claim(keys, DAY) == set(keys[:2])  # its own stay its own; the rest are taken
        with pytest.raises(StoreError, match="claimed by another runner"):
            second.mark_sending(DAY, keys[0][1], "<m@example.org>", NOW)
        first.close()  # the runner dies: its advisory lock goes with its connection
        assert second.claim(keys[:2], DAY) == set(keys[:2])
        second.mark_sending(DAY, keys[0][1], "<m@example.org>", NOW)
    finally:
        second.close()


def test_an_unknown_digest_the_plan_does_not_resend_is_never_claimed(pg_url: str) -> None:
    a, b = (DAY, "a@example.org"), (DAY, "b@example.org")
    with PgStore.connect(pg_url) as store:
        for _, email in (a, b):
            store.mark_pending(DAY, email, ["2406.00001"], NOW)
        store.queue([a, b], DAY)
        store.mark_status(DAY, a[1], DeliveryStatus.UNKNOWN, "timed out after the data", NOW)
        assert store.claim([a, b], DAY) == {b}  # a runner's last pass does not take it up again
        assert [row.email for row in store.queued(DAY)] == [b[1]]
        store.queue([b], DAY)  # the date planned again, without it: still off the queue
        assert store.claim([a], DAY) == set()
        store.queue([a, b], DAY)  # planned to resend it (`--retry-unknown`): claimable once more
        assert store.claim([a], DAY) == {a}


# -- the run locks ---------------------------------------------------------------------------------
def _enter_in_thread(store: Any, date: dt.date, stop: threading.Event) -> tuple[threading.Thread, list[Any]]:
    """`store.run_lock(date)` entered in a thread; `got` gets whether it joined, or the error."""
    got: list[Any] = []
    release = threading.Event()

    def go() -> None:
        try:
            with store.run_lock(date, stop=stop) as joined:
                got.append(joined)
                release.wait(30)
        except Exception as exc:
            got.append(exc)

    thread = threading.Thread(target=go, daemon=True)
    thread.start()
    thread.release = release  # type: ignore[attr-defined]
    return thread, got


def test_runs_of_two_dates_never_overlap_and_a_runner_joins_only_a_recorded_plan(pg_url: str) -> None:
    later = DAY + dt.timedelta(days=1)
    planner, other, same, third = (PgStore.connect(pg_url) for _ in range(4))
    try:
        with planner.run_lock(DAY) as joined:
            assert joined is False
            # the next date's run waits for this one to end (it would see its digests in flight)
            stop = threading.Event()
            waiting, got = _enter_in_thread(other, later, stop)
            # a runner of the same date waits while the plan is not recorded yet
            joiner, joined_got = _enter_in_thread(same, DAY, threading.Event())
            time.sleep(1.0)
            assert got == [] and joined_got == []
            planner.planned(DAY)
            joiner.join(0)
            deadline = time.monotonic() + 10
            while not joined_got and time.monotonic() < deadline:
                time.sleep(0.05)
            assert joined_got == [True], "joins the recorded plan of the live planner"
            assert got == [], "the other date still waits"
            stop.set()  # SIGTERM, or `digest serve` stopping: the wait ends
            waiting.join(10)
            assert len(got) == 1 and isinstance(got[0], LockedError), got
            assert planner.wait_for_runners(DAY, 0.5) is False  # the joiner still sends
        # the planner is gone, the joiner still sends: the day is not planned again under it
        assert third._enter(epoch_day(DAY)) is None
        joiner.release.set()  # type: ignore[attr-defined]
        joiner.join(10)
        assert third._enter(epoch_day(DAY)) is False  # now it may plan the date again
    finally:
        for store in (planner, other, same, third):
            store.close()


def test_a_stop_ends_the_planners_wait_for_the_runners_that_joined(pg_url: str) -> None:
    planner, joiner = PgStore.connect(pg_url), PgStore.connect(pg_url)
    try:
        with planner.run_lock(DAY):
            planner.planned(DAY)
            thread, got = _enter_in_thread(joiner, DAY, threading.Event())
            deadline = time.monotonic() + 10
            while not got and time.monotonic() < deadline:
                time.sleep(0.05)
            assert got == [True]
            stop = threading.Event()
            threading.Timer(0.5, stop.set).start()
            started = time.monotonic()
            assert planner.wait_for_runners(DAY, 600, stop=stop) is False
            assert time.monotonic() - started < 5
            thread.release.set()  # type: ignore[attr-defined]
            thread.join(10)
    finally:
        planner.close()
        joiner.close()


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://digest:hunter/2@127.0.0.1:9/x",
        "postgresql://digest:hunter#2@127.0.0.1:9/x",
        "postgresql://digest:hunter?2@127.0.0.1:9/x",
        "postgresql://digest@127.0.0.1:9/x?password=hunter2&sslmode=disable",
        "postgresql://digest:hunter@Pw2@127.0.0.1:9/x",  # an unencoded "@": libpq reads "Pw2@127..." as the host
        "postgresql://digest:hunter pa ss@127.0.0.1:9/x",  # a space: the URL cannot be parsed at all
        "postgresql://digest:hunter%zz@127.0.0.1:9/x",  # a bad percent-encoding
        "postgresql://digest:p@ss:w/rd#%1 xhunter@127.0.0.1:9/x",
    ],
)
def test_a_password_is_never_shown_however_it_is_written(url: str) -> None:
    with pytest.raises(StoreError) as caught:
        Store.from_config(StateConfig(url=url))  # type: ignore[arg-type]
    message = str(caught.value)
    assert "hunter" not in message and "Pw2" not in message and "\n" not in message, message
    assert "127.0.0.1:9/x" in message, message


def test_an_empty_url_is_refused_rather_than_falling_back_to_a_file(tmp_path: Path) -> None:
    """An unset CI secret expands to "": each runner would plan on its own file and send again."""
    (tmp_path / "digest.toml").write_text("")
    (tmp_path / "subscribers.toml").write_text('[[subscribers]]\nemail = "a@example.org"\nall = true\n')
    result = digest("run", "--config", "digest.toml", cwd=tmp_path, env={"DIGEST_STATE__URL": ""})
    assert result.returncode != 0
    assert "is set but empty" in result.stderr, result.stderr
    assert not (tmp_path / "state").exists()


def test_digest_web_with_a_state_it_cannot_open_fails_at_start_in_one_line(tmp_path: Path) -> None:
    (tmp_path / "digest.toml").write_text(
        '[state]\nurl = "postgresql://digest:hunter2@127.0.0.1:9/x"\n[web]\nlisten = "127.0.0.1:8089"\n'
        'base_url = "https://digest.example.org/"\n'
    )
    result = digest("web", "--config", "digest.toml", cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "cannot open the state database" in result.stderr and "hunter2" not in result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr


def test_what_a_dead_runner_left_unsent_is_counted_pending_by_the_planner(pg_url: str) -> None:
    """A joiner that died after the others' last look: its digests are pending (exit 4), not served."""
    from digest.config import Settings
    from digest.pipeline.joining import wait_for_joiners
    from digest.pipeline.summary import RunSummary

    settings = Settings(state=StateConfig(url=pg_url), secret="s" * 32)  # type: ignore[arg-type]
    with PgStore.connect(pg_url) as store, store.run_lock(DAY):
        for email in ("a@example.org", "b@example.org"):
            store.mark_pending(DAY, email, ["2406.00001"], NOW)
        store.queue([(DAY, "a@example.org"), (DAY, "b@example.org")], DAY)
        store.mark_sending(DAY, "b@example.org", "<m@example.org>", NOW)
        store.mark_sent(DAY, "b@example.org", "250 ok", NOW)
        store.planned(DAY)
        summary = RunSummary(date=DAY)
        summary.sent = 1
        wait_for_joiners(settings, store, summary, None)
    assert summary.pending == ["a@example.org"] and summary.exit_code == 4
