"""The state: one embedded SQLite file (WAL) holding snapshots, HTTP validators and the send ledger.

Everything that changes the state is one transaction, so a run that fails half-way leaves the
file as it was: a snapshot and the validators of the responses it came from are written
together or not at all; a digest is marked sent (and its papers recorded as sent to that reader)
in the same transaction, right after the SMTP server accepted it.

The schema is versioned (`PRAGMA user_version`) with numbered migrations; a state file written by
a newer digest is refused rather than misread.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import os
import sqlite3
from collections.abc import Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from digest.core.errors import LockedError, StoreError
from digest.core.models import CachedResponse, Delivery, FetchResult, Paper, Seen, Suppression
from digest.core.status import DeliveryStatus

MIGRATIONS: list[str] = [
    # 1: snapshots, validators, runs, the send ledger
    """
    CREATE TABLE snapshot_papers (
        date TEXT NOT NULL,             -- the run date (YYYY-MM-DD) whose listing held the paper
        paper_id TEXT NOT NULL,
        version INTEGER,
        data TEXT NOT NULL,             -- Paper.to_json()
        PRIMARY KEY (date, paper_id)
    );
    CREATE INDEX snapshot_papers_by_id ON snapshot_papers (paper_id, date);
    CREATE TABLE snapshots (
        date TEXT PRIMARY KEY,
        fetched_at TEXT NOT NULL,
        sources TEXT NOT NULL           -- JSON list of source names
    );
    CREATE TABLE http_cache (
        url TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        body BLOB NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        date TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,           -- running | ok | partial | failed
        summary TEXT                    -- JSON
    );
    CREATE TABLE deliveries (
        date TEXT NOT NULL,
        email TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
        attempts INTEGER NOT NULL DEFAULT 0,
        reply TEXT,                     -- the server's last reply
        message_id TEXT,
        papers TEXT NOT NULL DEFAULT '[]',  -- JSON list of the paper ids in this digest
        updated_at TEXT NOT NULL,
        PRIMARY KEY (date, email)
    );
    CREATE TABLE sent_papers (
        email TEXT NOT NULL,
        paper_id TEXT NOT NULL,
        date TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (email, paper_id)
    );
    CREATE TABLE suppressions (
        email TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        fingerprint TEXT NOT NULL,      -- the profile as it was: editing the profile lifts it
        at TEXT NOT NULL
    );
    """,
    # 2: why each paper of a digest matched, so private feeds can explain and highlight later
    """
    ALTER TABLE deliveries ADD COLUMN explanations TEXT NOT NULL DEFAULT '{}'
    """,
    # 3: which readers already got one of today's papers, in one query per run (sent_for_papers)
    """
    CREATE INDEX sent_papers_by_paper ON sent_papers (paper_id)
    """,
    # 4: how many papers matched in all, so a digest sent late still says "N more in the archive"
    # (NULL in rows written before: as many as their papers)
    """
    ALTER TABLE deliveries ADD COLUMN total INTEGER
    """,
]

def _iso(now: dt.datetime) -> str:
    return now.astimezone(dt.UTC).isoformat(timespec="seconds")


class Store:
    """The state file. Open with `Store.open(path)`; use as a context manager to close it."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.conn = conn
        self._lock_fd: int | None = None
        self._depth = 0  # transaction() blocks open, outermost first
        self._grouping = False  # inside grouped_commits()

    # -- opening, migrations, locking ---------------------------------------------------------
    @classmethod
    def open(cls, path: Path, *, create: bool = True) -> Store:
        path = Path(path)
        if not path.exists() and not create:
            raise StoreError(f"{path}: no state yet; run `digest fetch` or `digest run` first")
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=30)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
        except (OSError, sqlite3.Error) as exc:
            raise StoreError(f"{path}: cannot open the state database: {exc}") from None
        store = cls(path, conn)
        store._migrate()
        return store

    def _migrate(self) -> None:
        try:
            current = self.conn.execute("PRAGMA user_version").fetchone()[0]
        except sqlite3.DatabaseError as exc:
            raise StoreError(f"{self.path}: not a digest state database ({exc})") from None
        if current > len(MIGRATIONS):
            raise StoreError(
                f"{self.path}: written by a newer digest (schema {current}, this one knows "
                f"{len(MIGRATIONS)}); upgrade digest"
            )
        for number in range(current, len(MIGRATIONS)):
            with self.transaction():
                # executescript would COMMIT on its own, so run statement by statement (no ";" in comments)
                for statement in MIGRATIONS[number].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")

    @contextlib.contextmanager
    def transaction(self, *, defer_commit: bool = False) -> Iterator[sqlite3.Connection]:
        """BEGIN IMMEDIATE … COMMIT, or ROLLBACK on any exception.

        Blocks nest: an inner one is a SAVEPOINT, undone alone on an exception, committed with
        the outermost. Inside `grouped_commits()`, `defer_commit=True` leaves the COMMIT to the
        next block that does not defer (or the end of the group); see there.
        """
        outermost = self._depth == 0
        # A deferred write still open (grouped_commits) is kept whatever happens to this block.
        savepoint = not outermost or self.conn.in_transaction
        if not self.conn.in_transaction:
            try:
                self.conn.execute("BEGIN IMMEDIATE")
            except sqlite3.OperationalError as exc:
                raise StoreError(f"{self.path}: database is busy ({exc})") from None
        if savepoint:
            self.conn.execute("SAVEPOINT block")
        self._depth += 1
        try:
            yield self.conn
        except BaseException:
            if savepoint:
                self.conn.execute("ROLLBACK TO block")
                self.conn.execute("RELEASE block")
                if outermost:
                    self.conn.execute("COMMIT")  # the deferred writes before this block stand
            else:
                self.conn.execute("ROLLBACK")
            raise
        else:
            if savepoint:
                self.conn.execute("RELEASE block")
            if outermost and not (defer_commit and self._grouping):
                self.conn.execute("COMMIT")
        finally:
            self._depth -= 1

    @contextlib.contextmanager
    def grouped_commits(self) -> Iterator[None]:
        """Let ledger writes that may wait (`defer_commit=True`) share the next commit.

        While sending, each message costs a 'sending' mark that must be committed before the
        message goes out, and a 'sent' mark after the server accepts. Committing the 'sent' mark
        together with the next message's 'sending' mark writes the WAL once per message instead
        of twice (the run's 'pending' rows are one commit before sending starts); with those,
        ledger commits were a tenth of a run's CPU. It loses nothing a crash could need: a process killed before that commit
        leaves the accepted message 'sending', which the next run reports as unknown and never
        sends again; it only reports less precisely. Everything left open is committed when the
        group ends, whatever ended it.
        """
        self._grouping = True
        try:
            yield
        finally:
            self._grouping = False
            if self._depth == 0 and self.conn.in_transaction:
                self.conn.execute("COMMIT")

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One run at a time: a second one fails at once with LockedError, never waits or doubles."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            holder = ""
            with contextlib.suppress(OSError):
                holder = lock_path.read_text().strip()
            raise LockedError(
                f"another digest run is in progress (lock {lock_path}{', pid ' + holder if holder else ''}); "
                "it will finish on its own: wait and run again"
            ) from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        try:
            yield
        finally:
            self._lock_fd = None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- snapshots and the HTTP cache ------------------------------------------------------------
    def http_cache(self) -> dict[str, CachedResponse]:
        rows = self.conn.execute("SELECT url, etag, last_modified, body FROM http_cache")
        return {url: CachedResponse(url, etag, lm, bytes(body)) for url, etag, lm, body in rows}

    def record_snapshot(
        self,
        date: dt.date,
        papers: Sequence[Paper],
        responses: Iterable[FetchResult],
        *,
        sources: Sequence[str],
        now: dt.datetime,
    ) -> None:
        """Replace the snapshot of `date` and store the validators, in one transaction."""
        day = date.isoformat()
        with self.transaction() as db:
            db.execute("DELETE FROM snapshot_papers WHERE date = ?", (day,))
            db.executemany(
                "INSERT INTO snapshot_papers (date, paper_id, version, data) VALUES (?, ?, ?, ?)",
                [(day, p.id, p.version, p.to_json()) for p in papers],
            )
            db.execute(
                "INSERT OR REPLACE INTO snapshots (date, fetched_at, sources) VALUES (?, ?, ?)",
                (day, _iso(now), json.dumps(list(sources))),
            )
            for r in responses:
                if r.etag is None and r.last_modified is None:
                    db.execute("DELETE FROM http_cache WHERE url = ?", (r.url,))
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO http_cache (url, etag, last_modified, body, fetched_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (r.url, r.etag, r.last_modified, r.body, _iso(now)),
                )

    def snapshot(self, date: dt.date) -> list[Paper] | None:
        """The papers stored for `date`, or None when no snapshot was taken that day."""
        day = date.isoformat()
        if self.conn.execute("SELECT 1 FROM snapshots WHERE date = ?", (day,)).fetchone() is None:
            return None
        rows = self.conn.execute("SELECT data FROM snapshot_papers WHERE date = ? ORDER BY rowid", (day,))
        return [Paper.from_json(data) for (data,) in rows]

    def snapshot_dates(self, *, until: dt.date | None = None, limit: int | None = None) -> list[dt.date]:
        """Dates with a snapshot, newest first."""
        sql = "SELECT date FROM snapshots"
        args: list[object] = []
        if until is not None:
            sql += " WHERE date <= ?"
            args.append(until.isoformat())
        sql += " ORDER BY date DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [dt.date.fromisoformat(d) for (d,) in self.conn.execute(sql, args)]

    def seen_before(self, date: dt.date, ids: Iterable[str]) -> dict[str, Seen]:
        """For each id listed on some date before `date`: when first, and its highest version then.

        Only dates strictly before `date` count, so re-running a date sees the same past.
        """
        out: dict[str, Seen] = {}
        ids = list(ids)
        day = date.isoformat()
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT paper_id, MIN(date), MAX(version) FROM snapshot_papers "
                f"WHERE date < ? AND paper_id IN ({marks}) GROUP BY paper_id",
                [day, *chunk],
            )
            for paper_id, first, version in rows:
                out[paper_id] = Seen(dt.date.fromisoformat(first), version)
        return out

    # -- runs ---------------------------------------------------------------------------------------
    def start_run(self, date: dt.date, now: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (date, started_at, status) VALUES (?, ?, 'running') "
                "ON CONFLICT(date) DO UPDATE SET started_at = excluded.started_at, status = 'running', "
                "finished_at = NULL",
                (date.isoformat(), _iso(now)),
            )

    def finish_run(self, date: dt.date, status: str, summary: dict[str, object], now: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE date = ?",
                (_iso(now), status, json.dumps(summary, default=str), date.isoformat()),
            )

    def run_status(self, date: dt.date) -> str | None:
        row = self.conn.execute("SELECT status FROM runs WHERE date = ?", (date.isoformat(),)).fetchone()
        return row[0] if row else None

    # -- the send ledger ---------------------------------------------------------------------------
    def deliveries(self, date: dt.date) -> dict[str, Delivery]:
        rows = self.conn.execute(
            "SELECT date, email, status, attempts, reply, message_id, papers FROM deliveries WHERE date = ?",
            (date.isoformat(),),
        )
        return {row[1]: _delivery(row) for row in rows}

    def unfinished_before(self, date: dt.date, *, since: dt.date | None = None) -> list[Delivery]:
        """Digests of earlier dates (from `since` on, when given) not sent yet: pending, caught
        mid-send by a crash, or of unknown fate."""
        rows = self.conn.execute(
            "SELECT date, email, status, attempts, reply, message_id, papers FROM deliveries "
            "WHERE date < ? AND date >= ? AND status IN ('pending', 'sending', 'unknown') "
            "ORDER BY date, email",
            (date.isoformat(), (since or dt.date.min).isoformat()),
        )
        return [_delivery(row) for row in rows]

    def delivery_total(self, date: dt.date, email: str) -> int | None:
        """How many papers matched in all for the digest of (date, email), when recorded."""
        row = self.conn.execute(
            "SELECT total FROM deliveries WHERE date = ? AND email = ?", (date.isoformat(), email)
        ).fetchone()
        return row[0] if row else None

    def explanations(self, date: dt.date, email: str) -> dict[str, Any]:
        row = self.conn.execute(
            "SELECT explanations FROM deliveries WHERE date = ? AND email = ?", (date.isoformat(), email)
        ).fetchone()
        return json.loads(row[0]) if row else {}

    def delivery(self, date: dt.date, email: str) -> Delivery | None:
        row = self.conn.execute(
            "SELECT date, email, status, attempts, reply, message_id, papers FROM deliveries "
            "WHERE date = ? AND email = ?",
            (date.isoformat(), email),
        ).fetchone()
        return _delivery(row) if row else None

    def mark_pending(
        self,
        date: dt.date,
        email: str,
        paper_ids: Sequence[str],
        now: dt.datetime,
        *,
        explanations: Mapping[str, Any] | None = None,
        total: int | None = None,
    ) -> None:
        """Record that `email` is due a digest of `paper_ids` for `date` (of `total` matched).

        A row already past 'pending' is left alone; a pending one takes the new paper list (the
        profile may have been edited between two runs of the same date)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO deliveries (date, email, status, papers, explanations, total, updated_at) "
                "VALUES (?, ?, 'pending', ?, ?, ?, ?) "
                "ON CONFLICT(date, email) DO UPDATE SET papers = excluded.papers, "
                "explanations = excluded.explanations, total = excluded.total, "
                "updated_at = excluded.updated_at WHERE status = 'pending'",
                (
                    date.isoformat(),
                    email,
                    json.dumps(list(paper_ids)),
                    json.dumps(explanations or {}),
                    total,
                    _iso(now),
                ),
            )

    def mark_sending(self, date: dt.date, email: str, message_id: str, now: dt.datetime) -> None:
        """Committed before the message goes out: a crash after this point leaves 'sending',
        which the next run reports as 'unknown' instead of sending a second copy."""
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = 'sending', attempts = attempts + 1, message_id = ?, "
                "updated_at = ? WHERE date = ? AND email = ?",
                (message_id, _iso(now), date.isoformat(), email),
            )

    def mark_sent(self, date: dt.date, email: str, reply: str, now: dt.datetime) -> None:
        """The server accepted the message: the digest and each of its papers are sent, atomically.

        The commit may wait for the next message's (see `grouped_commits`)."""
        day = date.isoformat()
        with self.transaction(defer_commit=True) as db:
            row = db.execute(
                "SELECT papers FROM deliveries WHERE date = ? AND email = ?", (day, email)
            ).fetchone()
            db.execute(
                "UPDATE deliveries SET status = 'sent', reply = ?, updated_at = ? WHERE date = ? AND email = ?",
                (reply, _iso(now), day, email),
            )
            ids = json.loads(row[0]) if row else []
            db.executemany(
                "INSERT OR IGNORE INTO sent_papers (email, paper_id, date, sent_at) VALUES (?, ?, ?, ?)",
                [(email, pid, day, _iso(now)) for pid in ids],
            )

    def mark_status(
        self, date: dt.date, email: str, status: DeliveryStatus, reply: str | None, now: dt.datetime
    ) -> None:
        """'failed' (permanent), 'unknown' (maybe delivered), or back to 'pending' (retry next run)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = ?, reply = ?, updated_at = ? WHERE date = ? AND email = ?",
                (status, reply, _iso(now), date.isoformat(), email),
            )

    def sent_paper_ids(self, email: str, ids: Iterable[str] | None = None) -> set[str]:
        """Papers already emailed to `email` (restricted to `ids` when given)."""
        if ids is None:
            rows = self.conn.execute("SELECT paper_id FROM sent_papers WHERE email = ?", (email,))
            return {r[0] for r in rows}
        out: set[str] = set()
        ids = list(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT paper_id FROM sent_papers WHERE email = ? AND paper_id IN ({marks})", [email, *chunk]
            )
            out.update(r[0] for r in rows)
        return out

    def sent_for_papers(self, ids: Iterable[str]) -> dict[str, set[str]]:
        """email -> which of `ids` were already emailed to that reader (readers with none are
        left out): one query per 500 ids for every reader at once."""
        out: dict[str, set[str]] = {}
        ids = list(ids)
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            marks = ",".join("?" * len(chunk))
            rows = self.conn.execute(
                f"SELECT email, paper_id FROM sent_papers WHERE paper_id IN ({marks})", chunk
            )
            for email, paper_id in rows:
                out.setdefault(email, set()).add(paper_id)
        return out

    def matched_history(
        self, email: str, dates: Sequence[dt.date]
    ) -> dict[dt.date, list[tuple[str, dict[str, Any]]]]:
        """The papers of `email`'s sent digests on `dates`, each with its stored explanation
        (for the private feed)."""
        out: dict[dt.date, list[tuple[str, dict[str, Any]]]] = {}
        for d in dates:
            row = self.conn.execute(
                "SELECT papers, explanations FROM deliveries WHERE date = ? AND email = ? AND status = 'sent'",
                (d.isoformat(), email),
            ).fetchone()
            if row:
                why = json.loads(row[1])
                out[d] = [(pid, why.get(pid, {})) for pid in json.loads(row[0])]
        return out

    # -- suppressions ------------------------------------------------------------------------------
    def suppress(self, email: str, reason: str, fingerprint: str, now: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO suppressions (email, reason, fingerprint, at) VALUES (?, ?, ?, ?)",
                (email, reason, fingerprint, _iso(now)),
            )

    def suppressions(self) -> dict[str, Suppression]:
        rows = self.conn.execute("SELECT email, reason, fingerprint, at FROM suppressions ORDER BY email")
        return {r[0]: Suppression(*r) for r in rows}

    def lift_suppression(self, email: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM suppressions WHERE email = ?", (email,))


def _delivery(row: tuple[object, ...]) -> Delivery:
    date, email, status, attempts, reply, message_id, papers = row
    return Delivery(
        date=dt.date.fromisoformat(str(date)),
        email=str(email),
        status=status,  # type: ignore[arg-type]
        attempts=int(attempts),  # type: ignore[call-overload]
        reply=reply,  # type: ignore[arg-type]
        message_id=message_id,  # type: ignore[arg-type]
        papers=tuple(json.loads(str(papers))),
    )
