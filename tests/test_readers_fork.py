"""A big subscribers.toml is read by a forked child beside the run's checks and fetch
(`digest.pipeline.readers_fork`, issue 20): the same readers, the same errors first, nothing
stored before they are read, and a child that dies costs only time.

Real files (a seeded draw of `bench/scenario.py` over the real listings), real processes (the
child is killed with a real SIGKILL), `digest run` through the CLI against the local HTTP server
of tests/test_run.py, and the real SQLite state.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_runner import ROOT, base_env, digest
from pytest_httpserver import HTTPServer
from test_bench_scenario import papers  # noqa: F401 - the fixture
from test_run import DATE, serve_listings, state_bytes, write_config
from werkzeug import Request, Response

from bench import scenario
from digest.config import Settings, load_settings
from digest.core.errors import ConfigError
from digest.core.models import Paper, Subscriber
from digest.pipeline.readers import load_readers
from digest.pipeline.readers_fork import FORK_AT, ReadersFork
from digest.store import Store


def big_profiles(listing: list[Paper], count: int = 2_500) -> str:
    text = scenario.to_toml(scenario.generate(listing, count, seed=3))
    assert len(text.encode()) >= FORK_AT, "the file must be big enough to be read by a child"
    return text


def big_settings(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch, listing: list[Paper]
) -> Settings:
    """tests/test_run.py's digest.toml with a big subscribers.toml, in `tmp_path`, made the
    current folder ([state] path and the subscribers file are relative to it)."""
    config = write_config(tmp_path, httpserver, None)
    (tmp_path / "subscribers.toml").write_text(big_profiles(listing))
    monkeypatch.chdir(tmp_path)
    return load_settings(config)


def test_a_big_file_is_read_by_a_child_into_the_same_readers(
    tmp_path: Path,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    papers: list[Paper],  # noqa: F811
) -> None:
    settings = big_settings(tmp_path, httpserver, monkeypatch, papers)
    here = load_readers(settings, None)
    with ReadersFork(settings, None) as reading:
        assert reading.process is not None  # forked: the file is big
        child = reading.process.pid
        readers = reading.readers()
    assert readers.toml == here.toml and readers.web == here.web and readers.path == here.path
    assert len(readers.toml) == 2_500
    with pytest.raises(ProcessLookupError):
        os.kill(child, 0)  # waited for, not left behind
    # Values the readers share are one object in the run (the memory the child saves it); read
    # in the run's process, the same keyword of two readers is two objects
    shared = _same_keywords(readers.toml)
    assert shared and all(all(k is same[0] for k in same) for same in shared)
    assert not any(all(k is same[0] for k in same) for same in _same_keywords(here.toml))


def _same_keywords(subscribers: list[Subscriber]) -> list[list[str]]:
    """Each keyword more than one reader has, as each of them holds it."""
    by_keyword: dict[str, list[str]] = {}
    for sub in subscribers:
        for keyword in sub.keywords:
            by_keyword.setdefault(keyword, []).append(keyword)
    return [same for same in by_keyword.values() if len(same) > 1]


def test_a_child_killed_before_it_answers_costs_only_time(
    tmp_path: Path,
    httpserver: HTTPServer,
    monkeypatch: pytest.MonkeyPatch,
    papers: list[Paper],  # noqa: F811
) -> None:
    settings = big_settings(tmp_path, httpserver, monkeypatch, papers)
    with ReadersFork(settings, None) as reading:
        assert reading.process is not None
        os.kill(reading.process.pid, signal.SIGKILL)
        readers = reading.readers()
    assert readers.toml == load_readers(settings, None).toml


def test_a_big_bad_file_fails_the_run_with_its_own_error_and_stores_nothing(
    tmp_path: Path,
    httpserver: HTTPServer,
    papers: list[Paper],  # noqa: F811
) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    assert digest("fetch", "--config", str(config), "--date", "2026-06-11", cwd=tmp_path).returncode == 0
    before = state_bytes(tmp_path)
    text = big_profiles(papers)
    cut = text.index("[[subscribers]]", len(text) // 2)  # a typo in a profile halfway down
    typo = '[[subscribers]]\nemail = "typo@example.org"\nkeywords = ["graph"]\nkeyowrds = ["x"]\n\n'
    bad = text[:cut] + typo + text[cut:]
    (tmp_path / "subscribers.toml").write_text(bad)
    line = bad[:cut].count("\n") + 4

    failed = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert failed.returncode == 1
    errors = [row for row in failed.stderr.splitlines() if row.startswith("error:")]
    assert len(errors) == 1, failed.stderr
    assert f"subscribers.toml:{line}: subscriber typo@example.org: keyowrds: unknown key" in errors[0]
    assert "Traceback" not in failed.stderr
    assert state_bytes(tmp_path) == before  # the day's snapshot was not stored
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert store.snapshot(dt.date.fromisoformat(DATE)) is None
    # the same words as reading the file in the run's process
    with pytest.raises(ConfigError) as here:
        load_readers(load_settings(config), tmp_path / "subscribers.toml")
    assert str(here.value) in errors[0]

    # Every source down too: the profiles' error is the one reported, as when they were read first
    httpserver.clear()
    serve_listings(httpserver, arxiv_status=500, hf_status=500)
    down = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert down.returncode == 1
    assert [row for row in down.stderr.splitlines() if row.startswith("error:")] == errors
    assert state_bytes(tmp_path) == before


def test_a_big_good_file_runs_and_sends_as_a_small_one_would(
    tmp_path: Path,
    httpserver: HTTPServer,
    papers: list[Paper],  # noqa: F811
) -> None:
    """The same digests whether the file is read by a child or by the run: a comment makes the
    file big without changing a profile."""
    serve_listings(httpserver)
    outboxes = []
    for name, padding in (("small", ""), ("big", "#" * 100 + "\n")):
        home = tmp_path / name
        home.mkdir()
        config = write_config(home, httpserver, None)
        profiles = scenario.to_toml(scenario.generate(papers, 40, seed=5))
        (home / "subscribers.toml").write_text(padding * (FORK_AT // 100 if padding else 0) + profiles)
        done = digest("run", "--config", str(config), "--date", DATE, cwd=home)
        assert done.returncode == 0, done.stderr
        outboxes.append(sorted(_mail(p) for p in (home / "outbox").glob("*.eml")))
    assert len(outboxes[0]) > 10 and outboxes[0] == outboxes[1]


def _mail(path: Path) -> tuple[str, str, str]:
    """Who a message went to, its subject and its text part: what a reader gets."""
    message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
    text = message.get_body(("plain",))
    assert text is not None
    return str(message["To"]), str(message["Subject"]), text.get_content()


def _open_store(path: str, go: Any, ready: Any, results: Any) -> None:
    go.wait(10)
    ready.set()
    try:
        with Store.open(Path(path)):
            results.put("ok")
    except Exception as exc:  # reported to the test
        results.put(f"{type(exc).__name__}: {exc}")


def test_two_processes_opening_a_new_state_at_once_both_open_it(tmp_path: Path) -> None:
    """Two processes may open the state at the same moment (a new one, or one an upgrade must
    migrate: `digest serve` and a `digest run` from cron): both read its schema version, and the
    second to get the write lock must find the migrations run, not run them again."""
    path = tmp_path / "digest.sqlite3"
    context = multiprocessing.get_context("fork")
    results, go = context.Queue(), context.Event()
    openers = []
    for _ in range(2):  # forked before this process opens the file: SQLite's locks do not cross a fork
        ready = context.Event()
        opener = context.Process(target=_open_store, args=(str(path), go, ready, results))
        opener.start()
        openers.append((opener, ready))
    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("BEGIN IMMEDIATE")  # both openers read the version (0), then wait for the lock
    go.set()
    assert all(ready.wait(10) for _, ready in openers)
    time.sleep(1.0)  # both past reading the version, waiting for BEGIN IMMEDIATE
    conn.execute("COMMIT")
    conn.close()
    outcomes = [results.get(timeout=60) for _ in openers]
    for opener, _ in openers:
        opener.join(10)
    assert outcomes == ["ok", "ok"]
    check = sqlite3.connect(path)
    assert check.execute("PRAGMA user_version").fetchone()[0] == len(Store.migrations)
    check.close()


@pytest.mark.e2e
@pytest.mark.parametrize(
    ("signum", "group"),
    [(signal.SIGINT, True), (signal.SIGKILL, False), (signal.SIGTERM, False)],
    ids=["Ctrl-C", "SIGKILL to the run", "SIGTERM to the run"],
)
def test_a_run_stopped_while_its_child_reads_leaves_no_process_and_stores_nothing(
    tmp_path: Path,
    httpserver: HTTPServer,
    papers: list[Paper],  # noqa: F811
    signum: int,
    group: bool,
) -> None:
    """The run stopped as it fetches, its profiles' child still reading 6,000 readers: Ctrl-C to
    the process group ends both, quietly (as Ctrl-C before sending always ended a run); a run
    killed alone leaves its child no reader for its answer, and the child ends too, instead of
    waiting forever (holding the run's stdout, a cron job's pipe) for it. Nothing is stored."""
    config = write_config(tmp_path, httpserver, None)
    (tmp_path / "subscribers.toml").write_text(big_profiles(papers, 6_000))
    Store.open(tmp_path / "state" / "digest.sqlite3").close()  # a state to open: the fetch goes ahead
    proc: list[subprocess.Popen[str]] = []

    def interrupt(request: Request) -> Response:  # the run is fetching: stop it
        (os.killpg if group else os.kill)(proc[0].pid, signum)
        time.sleep(0.5)
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/api/daily_papers").respond_with_handler(interrupt)
    env = base_env() | {"PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "digest", "run", "--config", str(config), "--date", DATE]
    pipes: dict[str, Any] = {"stdout": subprocess.PIPE, "stderr": subprocess.PIPE, "text": True}
    proc.append(subprocess.Popen(command, cwd=tmp_path, env=env, start_new_session=True, **pipes))
    try:
        proc[0].wait(timeout=120)
        # no copy of the run left reading (a forked child has the run's command line)
        deadline = time.monotonic() + 30
        while _processes_of(config) and time.monotonic() < deadline:
            time.sleep(0.1)
        left = _processes_of(config)
    finally:
        for pid in _processes_of(config):
            os.kill(pid, signal.SIGKILL)
    assert left == []
    _, err = proc[0].communicate(timeout=30)  # its stdout and stderr closed: no child holds them
    if signum == signal.SIGINT:
        assert proc[0].returncode == 130, err
        assert "Traceback" not in err and "digest-readers" not in err, err
    else:
        assert proc[0].returncode == -signum
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert store.snapshot_dates(limit=1) == []


def test_bad_profiles_create_no_state_and_a_small_file_fetches_nothing(
    tmp_path: Path,
    httpserver: HTTPServer,
    papers: list[Paper],  # noqa: F811
) -> None:
    """With no state yet, a bad profile creates none, big file or small; a small file is read
    before the run touches the network, as it always was (a big one beside the fetch)."""
    serve_listings(httpserver)
    text = big_profiles(papers)
    cut = text.index("[[subscribers]]", len(text) // 2)
    bad = (
        text[:cut] + '[[subscribers]]\nemail = "typo@example.org"\nkeywords = ["graph"]\nkeyowrds = ["x"]\n\n'
    )
    for name, profiles in (("big", bad + text[cut:]), ("small", bad[cut:])):
        home = tmp_path / name
        home.mkdir()
        config = write_config(home, httpserver, None)
        (home / "subscribers.toml").write_text(profiles)
        failed = digest("run", "--config", str(config), "--date", DATE, cwd=home)
        assert failed.returncode == 1 and "keyowrds: unknown key" in failed.stderr, failed.stderr
        assert not (home / "state").exists() or not any((home / "state").iterdir()), name
        # With a state to open, the small file is read before the fetch all the same
        Store.open(home / "state" / "digest.sqlite3").close()
        httpserver.clear_log()
        again = digest("run", "--config", str(config), "--date", DATE, cwd=home)
        assert again.returncode == 1 and "keyowrds: unknown key" in again.stderr, again.stderr
        if name == "small":
            assert httpserver.log == []  # nothing fetched


def test_a_state_at_this_schema_is_told_from_one_to_create_or_migrate(tmp_path: Path) -> None:
    """`Store.is_current` reads the schema version from the file's header, without opening it."""
    path = tmp_path / "digest.sqlite3"
    assert not Store.is_current(path)  # none yet
    Store.open(path).close()
    assert Store.is_current(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(Store.migrations) - 1}")  # one migration behind
    conn.commit()
    conn.close()
    assert not Store.is_current(path)
    (tmp_path / "text.sqlite3").write_text("not a database, but long enough to have a header. " * 3)
    assert not Store.is_current(tmp_path / "text.sqlite3")


def _processes_of(config: Path) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if str(config).encode() in cmdline:
                found.append(int(entry.name))
    return found


@pytest.mark.parametrize("size", ["small", "big"])
def test_values_nested_too_deeply_are_one_line_whichever_process_reads_them(
    tmp_path: Path, httpserver: HTTPServer, size: str
) -> None:
    """tomllib recurses into nested arrays: thousands deep, a RecursionError, which was a
    traceback (two, with the child's) and is now a one-line error naming the file."""
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    padding = ("# padding\n" * (FORK_AT // 10 + 1)) if size == "big" else ""
    profiles = (
        "deep = " + "[" * 5_000 + "]" * 5_000 + '\n[[subscribers]]\nemail = "a@example.org"\nall = true\n'
    )
    (tmp_path / "subscribers.toml").write_text(padding + profiles)
    failed = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr and "digest-readers" not in failed.stderr, failed.stderr[-3000:]
    errors = [row for row in failed.stderr.splitlines() if row.startswith("error:")]
    assert errors == [f"error: {tmp_path / 'subscribers.toml'}: invalid TOML: values nested too deeply"]
