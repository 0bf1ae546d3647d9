"""The SQLite plumbing under the store: the connection, transactions, migrations, the run lock and
the translation of SQLite's failures into one-line `StoreError`s. No business logic.

Every statement the store runs goes through `_Connection` (and its `_Cursor`), which turns a
sqlite3 failure into a `StoreError` naming the state file and the cause in plain words, with the
fix where there is one. Doing it there rather than in each method means a new method cannot forget
it, and `transaction()` only ever sees `StoreError`s. Integrity and programming errors are left as
they are: they are bugs in digest, and their traceback is what helps.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import errno
import fcntl
import os
import sqlite3
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from typing import Any, Self

from digest.config import StateConfig
from digest.core.errors import LockedError, StoreError
from digest.store import codec

# The primary result codes (the low byte of the extended code Python reports).
_BUSY, _LOCKED, _READONLY, _IOERR, _CORRUPT, _FULL, _CANTOPEN, _PERM, _NOTADB = 5, 6, 8, 10, 11, 13, 14, 3, 26
_BUGS = (sqlite3.IntegrityError, sqlite3.ProgrammingError, sqlite3.InterfaceError)


def _writable(path: Path) -> bool:
    """The state file (when it exists) and its folder, which must take the -wal and -shm files."""
    folder_ok = os.access(path.parent, os.W_OK)
    return folder_ok and (not path.exists() or os.access(path, os.W_OK))


def _full(path: Path) -> bool:
    """Whether the disk under `path` is (as good as) full. SQLite reports a full disk as an I/O
    error when it cannot size its -shm file, or cannot open at all for want of it."""
    try:
        disk = os.statvfs(path.parent if path.parent.exists() else path.anchor)
    except OSError:
        return False
    return disk.f_bavail * disk.f_frsize < 1024 * 1024


_CAUSES = {
    "full": "the disk is full; free some space and run again",
    "locked": (
        "another process holds the database lock; wait for it to finish and run again "
        "(a `digest` command, or a tool with the file open)"
    ),
    "corrupt": "not a digest state database or corrupt ({exc}); restore a backup, or move it away to start afresh",
    "read-only": (
        "read-only file or folder; digest writes the state file and its -wal and -shm files "
        "beside it: make {folder} writable or point [state] path elsewhere"
    ),
    "io": "disk I/O error ({name}); check the disk, then run again",
    "cannot open": "{exc}; check that its folder exists and is writable",
    "other": "the state database failed: {exc}",
}


def _trouble(exc: BaseException, path: Path) -> str:
    """Which of `_CAUSES` `exc` is."""
    code = getattr(exc, "sqlite_errorcode", 0) & 0xFF
    os_errno = exc.errno if isinstance(exc, OSError) else None
    if code == _FULL or os_errno == errno.ENOSPC:
        return "full"
    if code in (_BUSY, _LOCKED):
        return "locked"
    if code in (_CORRUPT, _NOTADB):
        return "corrupt"
    if code == _READONLY or os_errno in (errno.EROFS, errno.EACCES, errno.EPERM):
        return "read-only"
    if code in (_CANTOPEN, _IOERR, _PERM):
        # SQLite names these after the call that failed (say, sizing the -shm file), not after
        # the reason: ask the file system.
        if not _writable(path):
            return "read-only"
        if _full(path):
            return "full"
    if code == _IOERR:
        return "io"
    return "cannot open" if code == _CANTOPEN or os_errno is not None else "other"


def describe(exc: BaseException, path: Path, *, opening: bool = False) -> str:
    """`exc` (a sqlite3 or OS error) as one line naming the state file, in plain words."""
    name = getattr(exc, "sqlite_errorname", type(exc).__name__)
    cause = _CAUSES[_trouble(exc, path)].format(exc=exc, folder=path.parent, name=name)
    return f"{path}: cannot open the state database: {cause}" if opening else f"{path}: {cause}"


@contextlib.contextmanager
def store_errors(path: Path, *, opening: bool = False) -> Iterator[None]:
    """Re-raise sqlite3 and OS failures as `StoreError(describe(...))`; bugs as themselves."""
    try:
        yield
    except _BUGS:
        raise
    except (sqlite3.Error, OSError) as exc:
        raise StoreError(describe(exc, path, opening=opening)) from exc


class _Cursor(sqlite3.Cursor):
    """Rows are stepped lazily, so fetching can fail too (a page found corrupt mid-table)."""

    connection: _Connection

    def execute(self, sql: str, parameters: Any = (), /) -> Self:
        try:  # store_errors() spelt out, as in __next__: the sender runs seven statements a message
            return super().execute(sql, parameters)
        except _BUGS:
            raise
        except (sqlite3.Error, OSError) as exc:
            raise self._failed(exc) from exc

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> Self:
        with self.connection.errors():
            return super().executemany(sql, seq_of_parameters)

    def __next__(self) -> Any:
        # store_errors() spelt out: a with-block per row would cost several times the row itself
        try:
            return super().__next__()
        except _BUGS:
            raise
        except sqlite3.Error as exc:
            raise self._failed(exc) from exc

    def _failed(self, exc: BaseException) -> StoreError:
        return StoreError(describe(exc, self.connection.path, opening=self.connection.opening))

    def fetchone(self) -> Any:
        with self.connection.errors():
            return super().fetchone()

    def fetchmany(self, size: int | None = 1) -> list[Any]:
        with self.connection.errors():
            return super().fetchmany(size)

    def fetchall(self) -> list[Any]:
        with self.connection.errors():
            return super().fetchall()


class _Connection(sqlite3.Connection):
    """A connection to the state file whose every failure is a `StoreError` naming it."""

    path: Path
    opening = True  # until the store is open and migrated: says so in each message

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return store_errors(self.path, opening=self.opening)

    # Through `cursor()`, never `_Cursor(self)`: the connection keeps a weak reference to each
    # cursor made on it and drops the dead ones every 200 calls of `cursor()`, and only there. A
    # cursor made directly left its reference behind for as long as the connection lived: 650,000
    # of them (~50 MB) on a run's connection by the time it published to 100,000 readers.
    def execute(self, sql: str, parameters: Any = (), /) -> _Cursor:
        return self.cursor(_Cursor).execute(sql, parameters)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Any], /) -> _Cursor:
        return self.cursor(_Cursor).executemany(sql, seq_of_parameters)

    def close(self) -> None:
        with self.errors():
            super().close()


class SqliteState:
    """An open state file: the connection, nested transactions, migrations and the run lock.

    Subclasses add the tables' methods and set `migrations` (see `schema`).
    """

    migrations: Sequence[str] = ()
    # The SQL dialect's few differences the tables' methods spell out (PgState sets its own):
    # MIN and MAX of two values, and how `seen_papers` keys a paper id (an integer for an arXiv
    # id, `codec.paper_key`).
    LEAST, GREATEST = "MIN", "MAX"
    paper_key = staticmethod(codec.paper_key)

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self.where = str(path)  # the state as messages name it
        self.conn = conn
        self._lock_fd: int | None = None
        self._depth = 0  # transaction() blocks open, outermost first
        self._grouping = False  # inside grouped_commits()

    # -- opening and migrations -----------------------------------------------------------------
    @classmethod
    def from_config(cls, state: StateConfig, *, create: bool = True) -> Self:
        """The state file of `[state]`: its path and its busy timeout."""
        return cls.open(state.path, create=create, busy_timeout=state.busy_timeout)

    @classmethod
    def open(cls, path: Path, *, create: bool = True, busy_timeout: float = 30.0) -> Self:
        """Open (creating when `create`) and migrate the state file at `path`.

        A write waits up to `busy_timeout` seconds for another process's write to finish before
        failing with "another process holds the database lock".
        """
        path = Path(path)
        if not path.exists() and not create:
            raise StoreError(f"{path}: no state yet; run `digest fetch` or `digest run` first")
        with store_errors(path, opening=True):
            path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout, factory=_Connection)
        conn.path = path
        try:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            store = cls(path, conn)
            store._migrate()
            conn.opening = False
        except BaseException:
            with contextlib.suppress(StoreError):
                conn.close()
            raise
        return store

    @classmethod
    def is_current(cls, path: Path) -> bool:
        """Whether the file at `path` is a state at this digest's schema, read from its header
        without opening it. The header may lag the write-ahead log (a migration not checkpointed
        yet): then this says no, never yes wrongly, as versions only grow."""
        try:
            with open(path, "rb") as file:
                header = file.read(100)
        except OSError:
            return False
        # SQLite's file format: the magic string, and the user_version at offset 60 (big-endian)
        return header.startswith(b"SQLite format 3\x00") and int.from_bytes(header[60:64], "big") >= len(
            cls.migrations
        )

    def _migrate(self) -> None:
        current = self.conn.execute("PRAGMA user_version").fetchone()[0]
        known = len(self.migrations)
        if current > known:
            raise StoreError(
                f"{self.path}: written by a newer digest (schema {current}, this one knows {known}); upgrade digest"
            )
        for number in range(current, known):
            with self.transaction():
                # Another process opening the state at the same moment (`digest serve` and a run
                # from cron, after an upgrade) may have run this one while this one waited.
                if self.conn.execute("PRAGMA user_version").fetchone()[0] > number:
                    continue
                # executescript would COMMIT on its own, so run statement by statement
                for statement in self.migrations[number].split(";"):
                    if statement.strip():
                        self.conn.execute(statement)
                self.conn.execute(f"PRAGMA user_version = {number + 1}")

    # -- transactions ---------------------------------------------------------------------------
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
            self.conn.execute("BEGIN IMMEDIATE")
        if savepoint:
            self.conn.execute("SAVEPOINT block")
        self._depth += 1
        try:
            yield self.conn
            if savepoint:
                self.conn.execute("RELEASE block")
        except BaseException:
            self._undo(savepoint=savepoint, outermost=outermost)
            raise
        finally:
            self._depth -= 1
        if outermost and not (defer_commit and self._grouping):
            self._commit()

    def _undo(self, *, savepoint: bool, outermost: bool) -> None:
        """Undo a failed block, keeping the deferred writes before it; never hide its error."""
        if not self.conn.in_transaction:
            # SQLite rolled the whole transaction back itself (a full disk, an I/O error): a
            # ROLLBACK now would fail with "no transaction is active" and mask the real cause.
            return
        try:
            if savepoint:
                self.conn.execute("ROLLBACK TO block")
                self.conn.execute("RELEASE block")
                if outermost:
                    self.conn.execute("COMMIT")  # the deferred writes before this block stand
            else:
                self.conn.execute("ROLLBACK")
        except StoreError:
            # The block's own error is the one to report: give up the whole transaction quietly.
            self._abandon()

    def _commit(self) -> None:
        try:
            self.conn.execute("COMMIT")
        except StoreError:
            # A COMMIT that failed may leave the transaction open; a later block would then
            # commit these writes behind the back of a caller who was told they failed.
            self._abandon()
            raise

    def _abandon(self) -> None:
        if self.conn.in_transaction:
            with contextlib.suppress(StoreError):
                self.conn.execute("ROLLBACK")

    @contextlib.contextmanager
    def grouped_commits(self) -> Iterator[None]:
        """Let ledger writes that may wait (`defer_commit=True`) share the next commit.

        While sending, each message costs a 'sending' mark that must be committed before the
        message goes out, and a 'sent' mark after the server accepts. Committing the 'sent' mark
        together with the next message's 'sending' mark writes the WAL once per message instead
        of twice (the run's 'pending' rows are one commit before sending starts); with those,
        ledger commits were a tenth of a run's CPU. It loses nothing a crash could need: a
        process killed before that commit leaves the accepted message 'sending', which the next
        run reports as unknown and never sends again; it only reports less precisely.
        Everything left open is committed when the group ends, whatever ended it.
        """
        self._grouping = True
        try:
            yield
        finally:
            self._grouping = False
            if self._depth == 0 and self.conn.in_transaction:
                self._commit()

    # -- the run lock ---------------------------------------------------------------------------
    @contextlib.contextmanager
    def lock(self) -> Iterator[None]:
        """One run at a time: a second one fails at once with LockedError, never waits or doubles."""
        lock_path = self.path.with_name(self.path.name + ".lock")
        with store_errors(self.path):
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
        with contextlib.suppress(OSError):  # the pid only makes a second run's message clearer
            os.ftruncate(fd, 0)
            os.write(fd, str(os.getpid()).encode())
        self._lock_fd = fd
        try:
            yield
        finally:
            self._lock_fd = None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    # -- runners: one at a time on a file (the run lock); PgState shares a state between several --
    @contextlib.contextmanager
    def run_lock(self, date: dt.date, *, stop: Any = None) -> Iterator[bool]:
        """`digest run`'s lock: the run lock (`lock`); yields whether this runner joins another's
        plan of `date`, never on a file (PgState's can)."""
        with self.lock():
            yield False

    def planned(self, date: dt.date) -> None:
        """The plan of `date` is recorded: PgState lets runners of the date join it."""

    def wait_for_runners(self, date: dt.date, timeout: float, *, stop: Any = None) -> bool:
        """The runners that joined `date` are done (there are none on a file)."""
        return True

    def claim(self, keys: Sequence[tuple[dt.date, str]], run: dt.date) -> set[tuple[dt.date, str]]:
        """The digests `keys` this runner sends: all of them, as the run lock keeps it alone."""
        return set(keys)

    def close(self) -> None:
        self.conn.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
