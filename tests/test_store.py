"""The state file: migrations, snapshots with their validators in one transaction, the lock."""

from __future__ import annotations

import datetime as dt
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from digest.core.errors import LockedError, StoreError
from digest.core.models import Paper
from digest.core.status import DeliveryStatus, RunStatus, SuppressionKind
from digest.sources.fetch import FetchResult
from digest.store import MIGRATIONS, Store

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 11, 21, 7, 0, tzinfo=dt.UTC)
D1, D2, D3 = dt.date(2026, 11, 19), dt.date(2026, 11, 20), dt.date(2026, 11, 21)


def paper(pid: str, version: int | None = 1, **kw: object) -> Paper:
    return Paper(id=pid, title=f"Paper {pid}", version=version, sources=("arxiv",), **kw)  # type: ignore[arg-type]


def result(url: str, etag: str | None = '"v1"', body: bytes = b"<rss/>") -> FetchResult:
    return FetchResult(url=url, body=body, status=200, etag=etag, last_modified=None, not_modified=False)


@pytest.mark.sqlite_only
def test_fresh_state_is_migrated_and_reopens(tmp_path: Path) -> None:
    path = tmp_path / "state" / "d.sqlite3"
    Store.open(path).close()
    with Store.open(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


@pytest.mark.sqlite_only
def test_state_from_a_newer_digest_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {len(MIGRATIONS) + 5}")
    conn.close()
    with pytest.raises(StoreError, match="newer digest"):
        Store.open(path)


@pytest.mark.sqlite_only
def test_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match=r"not a digest state database|cannot open"):
        Store.open(path)


@pytest.mark.sqlite_only
def test_statements_leave_nothing_behind_on_the_connection(tmp_path: Path) -> None:
    """sqlite3 keeps a weak reference to each cursor made on a connection and drops the dead ones
    only inside `Connection.cursor()`: a cursor made any other way left one behind per
    statement, for as long as the connection lived (650,000 at 100,000 readers)."""
    import gc

    with Store.open(tmp_path / "d.sqlite3") as store:
        for n in range(3_000):
            store.delivery(D1, f"r{n}@example.org")
            store.conn.execute("SELECT 1").fetchone()
        held = [len(x) for x in gc.get_referents(store.conn) if isinstance(x, list)]
        assert held and max(held) < 1_000, held  # CPython's list of the cursors' references


def test_snapshot_round_trip_and_replacement(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d.sqlite3") as store:
        published = dt.datetime(2026, 11, 20, tzinfo=dt.UTC)
        p = paper("2411.00001", authors=("A. B.", "C. D."), published=published, upvotes=3)
        store.record_snapshot(
            D1, [p, paper("2411.00002")], [result("https://x/feed")], sources=["arxiv"], now=NOW
        )
        assert store.snapshot(D1) == [p, paper("2411.00002")]
        store.record_snapshot(D1, [paper("2411.00003")], [], sources=["arxiv"], now=NOW)
        assert [x.id for x in store.snapshot(D1) or []] == ["2411.00003"]
        assert store.snapshot(D2) is None
        assert store.http_cache()["https://x/feed"].etag == '"v1"'


def test_seen_before_looks_only_at_earlier_dates(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d.sqlite3") as store:
        store.record_snapshot(D1, [paper("a", 1)], [], sources=["s"], now=NOW)
        store.record_snapshot(D2, [paper("a", 2), paper("b", 1)], [], sources=["s"], now=NOW)
        assert store.seen_before(D1, ["a", "b"]) == {}
        seen = store.seen_before(D3, ["a", "b", "c"])
        assert seen["a"].first_seen == D1 and seen["a"].version == 2
        assert seen["b"].first_seen == D2 and "c" not in seen
        assert set(store.seen_before(D2, ["a", "b"])) == {"a"}


@pytest.mark.sqlite_only
def test_failed_snapshot_write_changes_nothing(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    with Store.open(path) as store:
        store.record_snapshot(D1, [paper("a")], [result("https://x/feed")], sources=["s"], now=NOW)
    before = path.read_bytes() if not Path(str(path) + "-wal").exists() else None
    with Store.open(path) as store:
        bad = FetchResult(
            url="https://x/feed", body=None, status=200, etag='"v2"', last_modified=None, not_modified=False
        )  # type: ignore[arg-type]
        with pytest.raises(sqlite3.IntegrityError):
            store.record_snapshot(D1, [paper("b")], [bad], sources=["s"], now=NOW)
        assert [p.id for p in store.snapshot(D1) or []] == ["a"]
        assert store.http_cache()["https://x/feed"].etag == '"v1"'
    if before is not None:
        assert path.read_bytes() == before


@pytest.mark.sqlite_only
def test_second_lock_fails_at_once(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    with (
        Store.open(path) as one,
        Store.open(path) as two,
        one.lock(),
        pytest.raises(LockedError, match="another digest run is in progress"),
        two.lock(),
    ):
        pass
    with Store.open(path) as three, three.lock():
        pass  # released


def test_ledger_sent_records_papers_atomically(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d.sqlite3") as store:
        store.mark_pending(D1, "ada@example.org", ["a", "b"], NOW)
        why = {"a": {"score": 2.0, "hits": [["LLM", "title", 0, 3]]}}
        store.mark_pending(
            D1, "ada@example.org", ["a", "b", "c"], NOW, explanations=why
        )  # still pending: new list
        store.mark_sending(D1, "ada@example.org", "<m1@example.org>", NOW)
        row = store.delivery(D1, "ada@example.org")
        assert (
            row is not None
            and row.status == "sending"
            and row.attempts == 1
            and row.papers == ("a", "b", "c")
        )
        store.mark_sent(D1, "ada@example.org", "250 ok", NOW)
        assert store.sent_paper_ids("ada@example.org") == {"a", "b", "c"}
        assert store.sent_paper_ids("ada@example.org", ["a", "z"]) == {"a"}
        store.mark_pending(D1, "ada@example.org", ["x"], NOW)  # already sent: untouched
        row = store.delivery(D1, "ada@example.org")
        assert row is not None and row.status == "sent" and row.papers == ("a", "b", "c")
        assert store.matched_history("ada@example.org", [D1, D2]) == {
            D1: [("a", why["a"]), ("b", {}), ("c", {})]
        }


def _status_seen_by_another_process(path: Path, email: str) -> str:
    """What a second connection (another process, the next run) reads: committed rows only."""
    conn = sqlite3.connect(path)
    try:
        return conn.execute("SELECT status FROM deliveries WHERE email = ?", (email,)).fetchone()[0]
    finally:
        conn.close()


@pytest.mark.sqlite_only
def test_nested_transactions_undo_only_the_inner_block(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    with Store.open(path) as store:
        with store.transaction():
            store.mark_pending(D1, "ada@example.org", ["a"], NOW)
            with pytest.raises(RuntimeError), store.transaction():
                store.mark_pending(D1, "bob@example.org", ["b"], NOW)
                raise RuntimeError("boom")
            store.mark_pending(D1, "cy@example.org", ["c"], NOW)
            with pytest.raises(TypeError):  # nothing committed until the outermost block ends
                _status_seen_by_another_process(path, "ada@example.org")
        assert set(store.deliveries(D1)) == {"ada@example.org", "cy@example.org"}
        assert _status_seen_by_another_process(path, "cy@example.org") == "pending"


@pytest.mark.sqlite_only
def test_grouped_commits_let_sent_marks_ride_on_the_next_sending_mark(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    with Store.open(path) as store:
        for who in ("ada", "bob"):
            store.mark_pending(D1, f"{who}@example.org", ["a"], NOW)
        with store.grouped_commits():
            store.mark_sending(D1, "ada@example.org", "<m1@example.org>", NOW)
            assert _status_seen_by_another_process(path, "ada@example.org") == "sending"  # before it goes out
            store.mark_sent(D1, "ada@example.org", "250 ok", NOW)
            assert store.delivery(D1, "ada@example.org").status == "sent"  # type: ignore[union-attr]
            assert _status_seen_by_another_process(path, "ada@example.org") == "sending"  # not yet committed
            store.mark_sending(D1, "bob@example.org", "<m2@example.org>", NOW)
            assert _status_seen_by_another_process(path, "ada@example.org") == "sent"  # committed with bob's
            store.mark_sent(D1, "bob@example.org", "250 ok", NOW)
            with pytest.raises(RuntimeError), store.transaction():  # a failing write keeps bob's sent
                store.mark_status(D1, "ada@example.org", "failed", "x", NOW)
                raise RuntimeError("boom")
            assert _status_seen_by_another_process(path, "bob@example.org") == "sent"
        store.mark_pending(D2, "ada@example.org", ["b"], NOW)
        with store.grouped_commits():
            store.mark_sending(D2, "ada@example.org", "<m3@example.org>", NOW)
            store.mark_sent(D2, "ada@example.org", "250 ok", NOW)
        assert not store.conn.in_transaction  # the end of the group commits what was left
        assert store.sent_paper_ids("ada@example.org") == {"a", "b"}


@pytest.mark.sqlite_only
def test_a_process_killed_before_the_grouped_commit_leaves_sending_never_pending(tmp_path: Path) -> None:
    """The worst a deferred 'sent' can do: the message is reported unknown, never sent twice."""
    path = tmp_path / "d.sqlite3"
    with Store.open(path) as store:
        store.mark_pending(D1, "ada@example.org", ["a"], NOW)
    script = (
        "import datetime as dt, os, sys\n"
        "from digest.store import Store\n"
        f"now = dt.datetime.fromisoformat({NOW.isoformat()!r}); day = dt.date.fromisoformat({D1.isoformat()!r})\n"
        f"store = Store.open(sys.argv[1])\n"
        "with store.grouped_commits():\n"
        "    store.mark_sending(day, 'ada@example.org', '<m1@example.org>', now)\n"
        "    store.mark_sent(day, 'ada@example.org', '250 ok', now)\n"
        "    os._exit(9)  # killed: no finally, no commit\n"
    )
    done = subprocess.run([sys.executable, "-c", script, str(path)], cwd=ROOT, check=False)
    assert done.returncode == 9
    with Store.open(path) as store:
        row = store.delivery(D1, "ada@example.org")
        assert row is not None and row.status == "sending" and row.attempts == 1
        assert store.sent_paper_ids("ada@example.org") == set()


def test_suppressions(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d.sqlite3") as store:
        store.suppress("bob@example.org", "550 no such user", "fp1", NOW)
        assert store.suppressions()["bob@example.org"].fingerprint == "fp1"
        store.lift_suppression("bob@example.org")
        assert store.suppressions() == {}


def test_suppressions_have_a_kind(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d.sqlite3") as store:
        store.suppress("bob@example.org", "550 no such user", "fp1", NOW)  # positional, as before
        store.suppress("cy@example.org", "asked", "fp2", NOW, kind=SuppressionKind.UNSUBSCRIBED)
        held = store.suppressions()
        assert held["bob@example.org"].kind is SuppressionKind.REFUSED
        assert held["cy@example.org"].kind is SuppressionKind.UNSUBSCRIBED
        assert held["cy@example.org"].reason == "asked"


@pytest.mark.sqlite_only
def test_migration_5_sorts_the_suppressions_of_an_older_state_into_kinds(tmp_path: Path) -> None:
    path = tmp_path / "d.sqlite3"
    conn = sqlite3.connect(path, isolation_level=None)
    for migration in MIGRATIONS[:4]:  # a state file as digest left it before suppressions had kinds
        for statement in migration.split(";"):
            if statement.strip():
                conn.execute(statement)
    conn.execute("PRAGMA user_version = 4")
    conn.executemany(
        "INSERT INTO suppressions (email, reason, fingerprint, at) VALUES (?, ?, 'fp', '2026-01-01')",
        [
            ("ada@example.org", "unsubscribed by the reader"),
            ("bob@example.org", "550 5.1.1 no such user"),
            ("cy@example.org", "Unsubscribed by the reader, sort of"),  # not exactly the reason
        ],
    )
    conn.close()
    with Store.open(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        kinds = {email: held.kind for email, held in store.suppressions().items()}
    assert kinds == {
        "ada@example.org": SuppressionKind.UNSUBSCRIBED,
        "bob@example.org": SuppressionKind.REFUSED,
        "cy@example.org": SuppressionKind.REFUSED,
    }


def test_statuses_read_back_as_members(tmp_path: Path) -> None:
    with Store.open(tmp_path / "d.sqlite3") as store:
        store.mark_pending(D1, "ada@example.org", ["a"], NOW)
        store.mark_pending(D1, "bob@example.org", ["a"], NOW)
        store.mark_status(D1, "bob@example.org", DeliveryStatus.UNKNOWN, "lost", NOW)
        rows = store.deliveries(D1)
        assert rows["ada@example.org"].status is DeliveryStatus.PENDING
        assert rows["bob@example.org"].status is DeliveryStatus.UNKNOWN
        assert [d.status for d in store.unfinished_before(D2)] == [
            DeliveryStatus.PENDING,
            DeliveryStatus.UNKNOWN,
        ]
        store.start_run(D1, NOW)
        assert store.run_status(D1) is RunStatus.RUNNING
        store.finish_run(D1, RunStatus.OK, {}, NOW)
        assert store.run_status(D1) is RunStatus.OK


def test_a_resend_is_spent_only_when_the_unknown_digest_really_goes_out(tmp_path: Path) -> None:
    # `[delivery] unknown = "resend"` resends once on its own: the once is counted when the
    # message leaves (mark_sending), not when a run plans it and then stops before sending
    day = NOW.date()
    with Store.open(tmp_path / "s.sqlite3") as store:
        for email in ("ada@example.org", "bob@example.org"):
            store.mark_pending(day, email, ["2411.00001"], NOW)
            store.mark_sending(day, email, f"<{email}>", NOW)
        assert store.resent_unknown(since=day) == set()  # a first send is no resend
        store.mark_status(day, "ada@example.org", DeliveryStatus.UNKNOWN, "stopped while sending", NOW)
        store.mark_status(day, "bob@example.org", DeliveryStatus.UNKNOWN, "stopped while sending", NOW)
        assert store.resent_unknown(since=day) == set()  # planned or not, nothing left yet
        store.mark_sending(day, "ada@example.org", "<ada@example.org>", NOW)
        assert store.resent_unknown(since=day) == {(day, "ada@example.org")}
