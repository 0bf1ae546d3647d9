"""The state file when the machine says no: a full disk, a read-only folder, another process's lock,
a corrupt file. Each ends in one `StoreError` line naming the state file, and the state is as it
was. Real failures, no mocks: a small tmpfs that fills up, a read-only remount of it, a second
SQLite connection holding the lock. Mounting needs root; without it these tests skip and say so."""

from __future__ import annotations

import datetime as dt
import errno
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ARXIV_TRIMMED
from pytest_httpserver import HTTPServer
from typer.testing import CliRunner

from digest.cli import app
from digest.core.errors import StoreError
from digest.core.models import Paper
from digest.store import Store

NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.UTC)
D1, D2 = dt.date(2026, 11, 19), dt.date(2026, 11, 20)
ADA = "ada@example.org"


def _mount(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["mount", *args], capture_output=True, text=True, check=False)


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A 2 MB tmpfs of its own, so that filling it harms nothing else."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = _mount("-t", "tmpfs", "-o", "size=2m", "tmpfs", str(mnt))
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {done.stderr.strip()}")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def fill(disk: Path) -> Path:
    """Write a file until the disk is full; delete it to free the space."""
    filler = disk / "filler"
    with filler.open("wb", buffering=0) as out:
        try:
            while True:
                out.write(b"\0" * 16384)
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
        try:  # the last partial page
            while True:
                out.write(b"\0" * 512)
        except OSError:
            pass
    return filler


def papers(n: int, tag: str) -> list[Paper]:
    """Papers big enough that storing them needs fresh pages, not ones the WAL already holds."""
    return [Paper(id=f"{tag}.{i:05d}", title=f"Paper {i}", abstract="x" * 2000, version=1) for i in range(n)]


def dump(path: Path) -> list[str]:
    conn = sqlite3.connect(path)
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def assert_one_line_naming(exc: pytest.ExceptionInfo[StoreError], path: Path, cause: str) -> None:
    message = str(exc.value)
    assert "\n" not in message
    assert message.startswith(f"{path}: "), message
    assert cause in message, message


def seed(store: Store) -> None:
    store.record_snapshot(D1, papers(3, "a"), [], sources=["arxiv"], now=NOW)
    store.mark_pending(D1, ADA, ["a.00000", "a.00001"], NOW)


# -- a full disk -------------------------------------------------------------------------------------
def test_a_full_disk_during_a_snapshot_is_one_line_and_changes_nothing(small_disk: Path) -> None:
    path = small_disk / "state.sqlite3"
    with Store.open(path) as store:
        seed(store)
        before = store.snapshot(D1)
        filler = fill(small_disk)
        with pytest.raises(StoreError) as exc:
            store.record_snapshot(D1, papers(400, "b"), [], sources=["arxiv"], now=NOW)
        assert_one_line_naming(exc, path, "the disk is full")
        assert "rollback" not in str(exc.value)
        assert not store.conn.in_transaction
        filler.unlink()
        assert store.snapshot(D1) == before  # the same connection reads the old snapshot, and writes again
        store.record_snapshot(D2, papers(2, "c"), [], sources=["arxiv"], now=NOW)
    with Store.open(path) as store:
        assert store.snapshot(D1) == before and store.snapshot_dates() == [D2, D1]


def test_a_full_disk_during_ledger_writes_is_the_real_error_not_a_failed_rollback(small_disk: Path) -> None:
    """Before: SQLite had rolled back by itself, and the store's own ROLLBACK then failed with
    "cannot rollback - no transaction is active", which hid the full disk."""
    path = small_disk / "state.sqlite3"
    with Store.open(path) as store:
        seed(store)
        before = dump(path)
        filler = fill(small_disk)
        many = [f"2411.{i:05d}" for i in range(60000)]
        with pytest.raises(StoreError) as exc:
            store.mark_pending(D2, ADA, many, NOW, explanations={pid: {"score": 1.0} for pid in many})
        assert_one_line_naming(exc, path, "the disk is full")
        assert "rollback" not in str(exc.value)
        with pytest.raises(StoreError) as exc, store.grouped_commits():
            store.mark_sending(D1, ADA, "<m1@example.org>", NOW)
            store.mark_sent(D1, ADA, "250 ok " + "x" * 100_000, NOW)
            store.mark_pending(D2, ADA, many, NOW)
        assert_one_line_naming(exc, path, "the disk is full")
        assert "rollback" not in str(exc.value)
        assert not store.conn.in_transaction
        filler.unlink()
    after = dump(path)
    # At most what a crash could leave: the 'sending' mark, committed before a message goes out.
    assert after == before or _only_ada_is_sending(before, after)


def _only_ada_is_sending(before: list[str], after: list[str]) -> bool:
    changed = set(before) ^ set(after)
    return (
        len(changed) == 2
        and all('INSERT INTO "deliveries"' in line and ADA in line for line in changed)
        and any("'sending'" in line for line in set(after) - set(before))
    )


# -- a read-only folder ------------------------------------------------------------------------------
def test_a_read_only_folder_is_named_as_such_and_the_state_is_untouched(small_disk: Path) -> None:
    path = small_disk / "state.sqlite3"
    with Store.open(path) as store:
        seed(store)
    before = dump(path)
    remounted = _mount("-o", "remount,ro", str(small_disk))
    assert remounted.returncode == 0, remounted.stderr
    try:
        for create in (True, False):
            with pytest.raises(StoreError) as exc:
                Store.open(path, create=create)
            assert_one_line_naming(exc, path, "read-only file or folder")
        with pytest.raises(StoreError) as exc:
            Store.open(small_disk / "sub" / "new.sqlite3")  # its folder cannot even be made
        assert_one_line_naming(exc, small_disk / "sub" / "new.sqlite3", "read-only file or folder")
    finally:
        assert _mount("-o", "remount,rw", str(small_disk)).returncode == 0
    assert dump(path) == before
    with Store.open(path) as store:
        assert store.delivery(D1, ADA) is not None


# -- another process's lock ------------------------------------------------------------------------
def test_a_database_locked_by_another_connection_fails_fast_and_keeps_the_state(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with Store.open(path, busy_timeout=0.2) as store:
        seed(store)
        before = dump(path)
        other = sqlite3.connect(path, isolation_level=None)
        try:
            other.execute("BEGIN EXCLUSIVE")
            started = time.monotonic()
            for write in (
                lambda: store.mark_pending(D2, ADA, ["x"], NOW),
                lambda: store.mark_sending(D1, ADA, "<m1@example.org>", NOW),
                lambda: store.record_snapshot(D2, papers(1, "c"), [], sources=["arxiv"], now=NOW),
            ):
                with pytest.raises(StoreError) as exc:
                    write()
                assert_one_line_naming(exc, path, "another process holds the database lock")
            assert time.monotonic() - started < 10
            assert not store.conn.in_transaction
        finally:
            other.execute("ROLLBACK")
            other.close()
        assert dump(path) == before
        store.mark_pending(D2, ADA, ["x"], NOW)  # the lock gone, the same store writes again
        assert set(store.deliveries(D2)) == {ADA}


# -- a corrupt file ----------------------------------------------------------------------------------
def test_a_corrupt_file_is_named_with_the_fix(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    path.write_bytes(b"SQLite format 3\0" + b"\xff" * 8192)
    with pytest.raises(StoreError) as exc:
        Store.open(path)
    assert_one_line_naming(exc, path, "not a digest state database or corrupt")
    assert "move it away" in str(exc.value)


def test_bugs_stay_themselves(tmp_path: Path) -> None:
    """An integrity error is a bug in digest, not a state of the disk: its traceback helps more."""
    with Store.open(tmp_path / "state.sqlite3") as store, pytest.raises(sqlite3.IntegrityError):
        store.mark_status(D1, ADA, "sent", None, NOW)  # fine: no row
        store.conn.execute(
            "INSERT INTO suppressions (email, reason, fingerprint, at) VALUES (?, NULL, '', '')", (ADA,)
        )


# -- through the CLI ---------------------------------------------------------------------------------
def _config(tmp_path: Path, httpserver: HTTPServer, state: Path) -> Path:
    httpserver.expect_request("/rss/cs.CL").respond_with_data(
        ARXIV_TRIMMED.read_bytes(), content_type="application/rss+xml"
    )
    (tmp_path / "subscribers.toml").write_text('[[subscribers]]\nemail = "ada@example.org"\nall = true\n')
    config = tmp_path / "digest.toml"
    config.write_text(
        f'[state]\npath = "{state}"\n\n'
        f'[[sources]]\nname = "arxiv"\nkind = "arxiv_rss"\nurl = "{httpserver.url_for("/rss/cs.CL")}"\n\n'
        '[fetch]\nretries = 0\n\n[output]\ndir = "public"\nbase_url = "https://papers.example.org/digest/"\n'
    )
    return config


def test_digest_run_on_a_full_disk_exits_1_with_one_line(
    tmp_path: Path, small_disk: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in [n for n in os.environ if n.startswith("DIGEST_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    state = small_disk / "state" / "digest.sqlite3"
    config = _config(tmp_path, httpserver, state)
    runner = CliRunner()
    env = {"DIGEST_SECRET": "test-secret"}
    fetched = runner.invoke(app, ["fetch", "--config", str(config), "--date", "2026-06-11"], env=env)
    assert fetched.exit_code == 0, fetched.output
    before = dump(state)

    filler = fill(small_disk)
    result = runner.invoke(app, ["run", "--config", str(config), "--date", "2026-06-12"], env=env)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {state}: ") and "the disk is full" in errors[0], errors[0]
    assert "Traceback" not in result.output + result.stderr
    filler.unlink()
    assert dump(state) == before


def _fetched_state(
    tmp_path: Path, httpserver: HTTPServer, state: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Path, CliRunner, dict[str, str]]:
    """A config whose state holds one fetched day, ready for `digest run` of the next."""
    for name in [n for n in os.environ if n.startswith("DIGEST_")]:
        monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)
    config = _config(tmp_path, httpserver, state)
    runner = CliRunner()
    env = {"DIGEST_SECRET": "test-secret"}
    fetched = runner.invoke(app, ["fetch", "--config", str(config), "--date", "2026-06-11"], env=env)
    assert fetched.exit_code == 0, fetched.output
    return config, runner, env


def _run_fails_in_one_line(
    runner: CliRunner, config: Path, env: dict[str, str], state: Path, cause: str
) -> None:
    result = runner.invoke(app, ["run", "--config", str(config), "--date", "2026-06-12"], env=env)
    assert result.exit_code == 1, result.output
    errors = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"error: {state}") and cause in errors[0], errors[0]
    assert "Traceback" not in result.output + result.stderr


def test_digest_run_on_a_read_only_state_exits_1_with_one_line(
    tmp_path: Path, small_disk: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = small_disk / "state" / "digest.sqlite3"
    config, runner, env = _fetched_state(tmp_path, httpserver, state, monkeypatch)
    before = dump(state)
    assert _mount("-o", "remount,ro", str(small_disk)).returncode == 0
    try:
        _run_fails_in_one_line(runner, config, env, state, "read-only")
    finally:
        assert _mount("-o", "remount,rw", str(small_disk)).returncode == 0
    assert dump(state) == before


def test_digest_run_on_a_locked_state_exits_1_with_one_line(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    state = tmp_path / "state" / "digest.sqlite3"
    config, runner, env = _fetched_state(tmp_path, httpserver, state, monkeypatch)
    config.write_text(config.read_text().replace("[state]\n", "[state]\nbusy_timeout = 0.2\n", 1))
    assert "busy_timeout = 0.2" in config.read_text()
    before = dump(state)
    holder = sqlite3.connect(state, isolation_level=None)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        _run_fails_in_one_line(runner, config, env, state, "another process holds the database lock")
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert dump(state) == before
