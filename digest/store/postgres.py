"""The PostgreSQL plumbing under the store (`[state] url`): the connection, the store's SQL spoken
to PostgreSQL, migrations, and the locks that let several runners share one state. No business
logic: the tables' methods are the same mixins as on SQLite (`digest.store.Store`).

The store's statements are written for SQLite; `pg_connection.PgConnection` turns each into
PostgreSQL once. Transactions and savepoints are `SqliteState`'s, on a connection in autocommit
mode.

Runners (`digest run` on several hosts, or a GitHub Actions matrix) coordinate through
PostgreSQL's advisory locks, which die with the session that holds them, so a runner killed
anywhere leaves no lock behind:

- the plan lock, held by a run to its end as SQLite's file lock (`lock`, `run_lock`): one run at
  a time fetches, plans, sends and publishes; a run of another date waits for it;
- the day lock of a run date: its planner holds it alone while planning, then shared
  (`planned`); a runner of the same date that gets it shared while another holds it joins that
  live plan instead of planning again, and the planner waits for it alone before publishing
  (`wait_for_runners`), so that no day is planned again under a runner still sending;
- a runner lock per runner: `deliveries.claimed_by` names it, so a digest claimed by a runner
  that died is free again at once (`claim`).

A failure of the server or the connection is a one-line `StoreError` naming the database (its
URL without the password); a bug (a statement PostgreSQL rejects) keeps its traceback.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import logging
import random
import re
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

import psycopg

from digest.config import StateConfig
from digest.config.urls import redacted
from digest.core.errors import LockedError, StoreError
from digest.core.status import DeliveryStatus
from digest.store import pg_schema
from digest.store.codec import iso
from digest.store.ledger import LedgerStore
from digest.store.pg_connection import PgConnection
from digest.store.queue import QueueStore
from digest.store.retention import Shrink, epoch_day

# Advisory lock spaces (the first of the two int4 keys); the second is 0, a day, or a runner.
_PLAN, _DAY, _RUNNER, _MIGRATE = 0x64670001, 0x64670002, 0x64670003, 0x64670004
_log = logging.getLogger("digest")
_POLL = 0.2  # seconds between two tries of a lock held by another runner
_CLAIMABLE = (DeliveryStatus.PENDING, DeliveryStatus.UNKNOWN)  # an unknown one goes out when resent


def _text_key(paper_id: str) -> int | str:
    """How `seen_papers` keys a paper id here: as itself (a TEXT column: pg_schema)."""
    return paper_id


_ENCODE = 'percent-encode "@", ":", "/", "?", "#", "%" and spaces in the user and password (%40, %3A, %2F, %3F, %23, %25, %20)'


def _connect_failure(exc: psycopg.Error, url: str) -> str:
    """Why connecting failed, in one line, with nothing of the password in it."""
    if not isinstance(exc, psycopg.OperationalError):  # the URL itself could not be read
        return f"[state] url cannot be read as a PostgreSQL URL; {_ENCODE}"
    text = " ".join(str(exc).split())
    userinfo = url.partition("://")[2].rpartition("@")[0]
    secret = userinfo.partition(":")[2]
    for piece in {secret, *re.split(r"[@:/?#%\s]+", secret)}:
        if len(piece) >= 2:
            text = text.replace(piece, "***")
    hint = f"; {_ENCODE}" if any(c in secret for c in "@/?# ") else ""
    return f"cannot connect ({text}); check [state] url and that the server is running{hint}"


class PgState(LedgerStore, QueueStore):
    """An open PostgreSQL state: `SqliteState`'s interface (transactions, `lock`) on a server,
    with the locks and claims that let several runners share it. `digest.store.postgres_store`
    mixes it in front of `Store` (the tables' methods); it derives from `LedgerStore` only to
    guard `mark_sending`."""

    LEAST, GREATEST = "LEAST", "GREATEST"
    paper_key = staticmethod(_text_key)
    conn: PgConnection  # type: ignore[assignment]  # sqlite3.Connection's interface, as the mixins use it

    def __init__(self, where: str, conn: Any) -> None:
        super().__init__(Path(where), conn)
        self.where = where
        self._runner: int | None = None  # this runner's number, once it claims
        self._plan_held = False
        self._days: dict[int, str] = {}  # day lock -> "shared" | "exclusive", as held
        self._analyzed = 0  # rows queued when the ledger's statistics were last refreshed
        self._queued = 0  # and since

    # -- opening and migrations -----------------------------------------------------------------
    @classmethod
    def from_config(cls, state: StateConfig, *, create: bool = True) -> Self:
        assert state.url is not None
        return cls.connect(state.url.get_secret_value(), create=create, busy_timeout=state.busy_timeout)

    @classmethod
    def connect(cls, url: str, *, create: bool = True, busy_timeout: float = 30.0) -> Self:
        where = redacted(url)
        try:
            raw = psycopg.connect(url, autocommit=True, connect_timeout=max(2, int(busy_timeout)))
        except psycopg.Error as exc:
            # libpq's words may quote any part of the URL, the password included (an unencoded
            # "@" or "/" in it is read as part of the host): shown only without it
            raise StoreError(
                f"{where}: cannot open the state database: {_connect_failure(exc, url)}"
            ) from None
        conn = PgConnection(raw, where)
        store = cls(where, conn)
        try:
            # a statement waiting on another's row lock fails after busy_timeout, as on SQLite
            conn.execute(f"SET lock_timeout = {int(busy_timeout * 1000)}")
            # `create` is the file's: a database named by [state] url is there to be used, and an
            # empty one gets the tables (an empty state) whatever the command
            store._migrate_pg()
            store._read_tables()
            conn.opening = False
        except BaseException:
            with contextlib.suppress(StoreError):
                conn.close()
            raise
        return store

    def _migrate_pg(self) -> None:
        known = pg_schema.BASE_VERSION + len(pg_schema.MIGRATIONS)
        with self.transaction() as db:
            db.execute(f"SELECT pg_advisory_xact_lock({_MIGRATE}, 0)")  # two runners opening a new database
            exists = db.execute("SELECT to_regclass('digest_schema')").fetchone()[0] is not None
            current = db.execute("SELECT version FROM digest_schema").fetchone()[0] if exists else 0
            if current > known:
                raise StoreError(
                    f"{self.where}: written by a newer digest (schema {current}, this one knows {known}); upgrade digest"
                )
            scripts = ([pg_schema.BASE] if current == 0 else []) + pg_schema.MIGRATIONS[
                max(0, current - pg_schema.BASE_VERSION) :
            ]
            for script in scripts:
                for statement in script.split(";"):
                    if statement.strip():
                        db.execute(statement)
            if not exists:
                db.execute("CREATE TABLE digest_schema (version INTEGER NOT NULL)")
                db.execute("INSERT INTO digest_schema (version) VALUES (0)")
            if current != known:  # a state already current is only read (a read-only role can use it)
                db.execute("UPDATE digest_schema SET version = ?", (known,))

    def _read_tables(self) -> None:
        """Each table's columns and primary key, for `INSERT OR REPLACE`."""
        conn = self.conn
        for table, column in conn.execute(
            "SELECT table_name, column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position"
        ):
            conn.columns.setdefault(table, []).append(column)
        for table, column in conn.execute(
            "SELECT c.relname, a.attname FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid "
            "JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = ANY(i.indkey) "
            "WHERE i.indisprimary AND c.relnamespace = current_schema()::regnamespace "
            "ORDER BY c.relname, array_position(i.indkey, a.attnum)"
        ):
            conn.keys.setdefault(table, []).append(column)

    # -- the runners' locks ---------------------------------------------------------------------
    def _try(self, space: int, key: int, *, shared: bool = False) -> bool:
        kind = "pg_try_advisory_lock_shared" if shared else "pg_try_advisory_lock"
        return bool(self.conn.execute(f"SELECT {kind}(?, ?)", (space, key)).fetchone()[0])

    def _unlock(self, space: int, key: int, *, shared: bool = False) -> None:
        kind = "pg_advisory_unlock_shared" if shared else "pg_advisory_unlock"
        self.conn.execute(f"SELECT {kind}(?, ?)", (space, key))

    def _others_hold(self, space: int, key: int) -> bool:
        """Whether another session holds the advisory lock (`space`, `key`)."""
        row = self.conn.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND classid = ? AND objid = ? "
            "AND objsubid = 2 AND granted AND pid <> pg_backend_pid() AND database = "
            "(SELECT oid FROM pg_database WHERE datname = current_database())",
            (space, key),
        ).fetchone()
        return bool(row[0])

    def _wait(self, take: Callable[[], bool], *, timeout: float | None = None, stop: Any = None) -> bool:
        """Try `take` every _POLL seconds until it works (True), or `timeout` passes or `stop`
        (a threading.Event: SIGTERM while sending, `digest serve` stopping) is set (False)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while not take():
            if (deadline is not None and time.monotonic() >= deadline) or (
                stop is not None and stop.is_set()
            ):
                return False
            time.sleep(_POLL)
        return True

    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """The plan lock, which a run holds to its end as SQLite's file lock: one run at a time
        (`digest fetch` and `digest state --compact` take it too). A second one waits for it
        rather than failing at once, unless it joins the run (`run_lock`)."""
        if not self._try(_PLAN, 0):
            _log.warning("%s: another digest run holds the state (the plan lock): waiting for it", self.where)
            self._wait(lambda: self._try(_PLAN, 0))
        self._plan_held = True
        try:
            yield
        finally:
            self._release()

    @contextlib.contextmanager
    def run_lock(self, date: dt.date, *, stop: Any = None) -> Iterator[bool]:
        """`digest run`'s locks: yields False to the runner that plans `date` (it holds the plan
        lock to the end, and the day lock alone until `planned`), True to a runner that joins the
        live planner of the same date once its plan is recorded. A run of another date, or a
        runner of this date while another is still planning or publishing, waits; `stop` ends
        the wait with LockedError."""
        key, told = epoch_day(date), False
        while (joined := self._enter(key)) is None:
            if not told:
                _log.warning("%s: waiting for another digest run to finish or to record its plan", self.where)
                told = True
            if stop is not None and stop.is_set():
                raise LockedError("stopped while waiting for another digest run to finish (the plan lock)")
            time.sleep(_POLL)
        try:
            yield joined
        finally:
            self._release()

    def _enter(self, key: int) -> bool | None:
        """One try of `run_lock`: False (plan), True (join) or None (wait)."""
        if self._try(_PLAN, 0):
            if self._try(_DAY, key):  # nobody works on this date: plan it
                self._plan_held, self._days[key] = True, "exclusive"
                return False
            self._unlock(_PLAN, 0)  # a runner that joined an earlier run of this date still sends
            return None
        # the planner holds the day alone until its plan is recorded, then shared
        if self._try(_DAY, key, shared=True):
            if self._others_hold(_DAY, key):
                self._days[key] = "shared"
                return True
            self._unlock(_DAY, key, shared=True)  # nobody on this date: a run of another date
        return None

    def _release(self) -> None:
        with contextlib.suppress(StoreError):  # a lost connection has let go of them already
            if self._plan_held:
                self._plan_held = False
                self._unlock(_PLAN, 0)
            for key, kind in list(self._days.items()):
                self._unlock(_DAY, key, shared=kind == "shared")
            self._days.clear()

    def planned(self, date: dt.date) -> None:
        """The plan of `date` is recorded (and its TL;DRs made): runners of the date may join."""
        key = epoch_day(date)
        if self._days.get(key) == "exclusive":
            self._try(_DAY, key, shared=True)
            self._unlock(_DAY, key)
            self._days[key] = "shared"

    def wait_for_runners(self, date: dt.date, timeout: float, *, stop: Any = None) -> bool:
        """The planner, before publishing: wait (up to `timeout` seconds, or until `stop`) until
        the runners that joined `date` are done. False when some still work on it (the next run
        publishes what they sent)."""
        key = epoch_day(date)
        if self._days.pop(key, None) == "shared":
            self._unlock(_DAY, key, shared=True)
        if self._wait(lambda: self._try(_DAY, key), timeout=timeout, stop=stop):
            self._days[key] = "exclusive"
            return True
        return False

    # -- claims ---------------------------------------------------------------------------------
    def _runner_number(self) -> int:
        """This runner's number, whose advisory lock it holds while it lives (taken on first use)."""
        while self._runner is None:
            number = random.randrange(1, 2**31)
            if self._try(_RUNNER, number):
                self._runner = number
        return self._runner

    def enqueue(self, keys: Iterable[tuple[dt.date, str]], run: dt.date) -> None:
        """As on SQLite, then the ledger's statistics brought up to date whenever the rows queued
        since they last were outnumber those before: a run's thousands of new rows, unseen by the
        planner until autovacuum's next look, would have each claim scan the whole table instead
        of its index. A plan recorded in slices (`pipeline.recording`) analyzes a few times (at
        64, 128, 256 … rows), not once a slice."""
        keys = list(keys)
        super().enqueue(keys, run)
        self._queued += len(keys)
        if self._queued >= max(self._analyzed, 1):
            self.conn.execute("ANALYZE deliveries")
            self._analyzed, self._queued = self._analyzed + self._queued, 0

    def claim(self, keys: Sequence[tuple[dt.date, str]], run: dt.date) -> set[tuple[dt.date, str]]:
        """Which of the digests `keys` (queued by the run of `run`) this runner takes: those still
        to send and taken by no live runner. Rows another runner is claiming at this instant are
        skipped (SKIP LOCKED), never waited for, so runners split the digests with no other
        coordination."""
        if not keys:
            return set()
        me = self._runner_number()
        with self.transaction(), self.conn.errors():
            rows = self.conn.raw.execute(
                # the keys joined to the primary key's index: a scan of the whole ledger per
                # batch would make a run's claims grow with the square of its readers
                "UPDATE deliveries d SET claimed_by = %(me)s FROM ("
                " SELECT r.date, r.email FROM unnest(%(dates)s::text[], %(emails)s::text[]) AS k(date, email)"
                " JOIN deliveries r ON r.date = k.date AND r.email = k.email"
                " WHERE r.status = ANY(%(claimable)s) AND r.queued = %(run)s"
                " AND (r.claimed_by IS NULL OR r.claimed_by = %(me)s OR r.claimed_by NOT IN ("
                "  SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND classid = %(space)s"
                "  AND objsubid = 2 AND granted AND database = (SELECT oid FROM pg_database"
                "  WHERE datname = current_database())))"
                " FOR UPDATE OF r SKIP LOCKED) c WHERE d.date = c.date AND d.email = c.email"
                " RETURNING d.date, d.email",
                {
                    "me": me,
                    "dates": [d.isoformat() for d, _ in keys],
                    "emails": [e for _, e in keys],
                    "claimable": [str(s) for s in _CLAIMABLE],
                    "run": run.isoformat(),
                    "space": _RUNNER,
                },
            ).fetchall()
        return {(dt.date.fromisoformat(d), e) for d, e in rows}

    def mark_sending(self, date: dt.date, email: str, message_id: str, now: dt.datetime) -> None:
        """As on SQLite (a resend of an unknown digest noted in `resends`), in one statement, and
        only for a digest no other runner claimed: a second line of defence behind `claim`, so
        that two runners can never both hand the same digest over."""
        day, mine = date.isoformat(), self._runner
        with self.transaction() as db:
            done = db.execute(
                "WITH target AS (SELECT status FROM deliveries WHERE date = ? AND email = ? "
                # the status before this statement (its snapshot; FOR UPDATE would read the
                # row this very UPDATE writes)
                " AND (claimed_by IS NULL OR claimed_by = ?)), "
                "noted AS (INSERT INTO resends (date, email, at) SELECT ?, ?, ? FROM target "
                " WHERE status = ? ON CONFLICT DO NOTHING) "
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, message_id = ?, updated_at = ? "
                "WHERE date = ? AND email = ? AND (claimed_by IS NULL OR claimed_by = ?) RETURNING 1",
                (day, email, mine, day, email, iso(now), DeliveryStatus.UNKNOWN,
                 DeliveryStatus.SENDING, message_id, iso(now), day, email, mine),
            ).fetchone()  # fmt: skip
            if (
                done is None
                and db.execute(
                    "SELECT 1 FROM deliveries WHERE date = ? AND email = ?", (day, email)
                ).fetchone()
            ):
                raise StoreError(
                    f"{self.where}: the digest of {date} for {email} was claimed by another runner"
                )

    # -- size and upkeep ------------------------------------------------------------------------
    def shrink(self, *, force: bool = False) -> Shrink:
        """Nothing to do by hand: PostgreSQL's autovacuum reuses the space compaction frees."""
        size = self.file_bytes()
        return Shrink(size, size, False)

    def file_bytes(self) -> int:
        return int(self.conn.execute("SELECT pg_database_size(current_database())").fetchone()[0])

    def table_sizes(self) -> dict[str, int]:
        rows = self.conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "WHERE c.relkind = 'r' AND c.relnamespace = current_schema()::regnamespace ORDER BY 2 DESC"
        )
        return {name: int(size) for name, size in rows}


__all__ = ["PgState", "iso"]
