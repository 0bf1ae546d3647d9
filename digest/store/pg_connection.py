"""The PostgreSQL connection under `postgres.PgState`: the store's SQLite statements spoken to
PostgreSQL, and psycopg's failures as one-line `StoreError`s. Helper module, no business logic.

Each statement is turned into PostgreSQL once (and cached): `?` placeholders, `INSERT OR IGNORE`
(ON CONFLICT DO NOTHING) and `INSERT OR REPLACE` (ON CONFLICT on the table's primary key DO
UPDATE, the other columns reset to their defaults as SQLite's REPLACE does), `BEGIN IMMEDIATE`.
The rest of the store's SQL is the common subset.
"""

from __future__ import annotations

import contextlib
import re
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import psycopg
from psycopg import errors as pg_errors
from psycopg import pq

from digest.core.errors import StoreError

_BUGS = (pg_errors.ProgrammingError, pg_errors.IntegrityError, pg_errors.DataError)
_INSERT_OR = re.compile(r"\s*INSERT OR (REPLACE|IGNORE) INTO (\w+)\s*\(([^)]*)\)", re.IGNORECASE)


def describe(exc: BaseException, where: str, *, opening: bool = False) -> str:
    """`exc` (a psycopg error) as one line naming the database, in plain words."""
    text = " ".join(str(exc).split()) or type(exc).__name__
    if isinstance(exc, pg_errors.DiskFull):
        cause = f"the database server's disk is full ({text}); free space there and run again"
    elif isinstance(exc, pg_errors.LockNotAvailable | pg_errors.QueryCanceled | pg_errors.DeadlockDetected):
        cause = f"another process holds a lock on the state ({text}); wait for it to finish and run again"
    elif isinstance(exc, pg_errors.InsufficientPrivilege):
        cause = f"no permission ({text}); grant the [state] url's user the rights to create and write tables"
    elif isinstance(exc, psycopg.OperationalError) and opening:
        cause = f"cannot connect ({text}); check [state] url and that the server is running"
    else:
        cause = f"the state database failed: {text}"
    return f"{where}: cannot open the state database: {cause}" if opening else f"{where}: {cause}"


@contextlib.contextmanager
def pg_failures(where: str, *, opening: bool = False) -> Iterator[None]:
    try:
        yield
    except _BUGS:
        raise
    except psycopg.Error as exc:
        raise StoreError(describe(exc, where, opening=opening)) from exc


def _param(value: Any) -> Any:
    return int(value) if isinstance(value, bool) else value  # 0/1 columns, as SQLite stores them


class PgConnection:
    """The store's connection (`SqliteState.conn`) on a psycopg connection in autocommit mode."""

    def __init__(self, raw: psycopg.Connection[Any], where: str) -> None:
        self.raw = raw
        self.where = where
        self.opening = True
        self.keys: dict[str, list[str]] = {}  # table -> primary key columns (for REPLACE)
        self.columns: dict[str, list[str]] = {}
        self._sql: dict[tuple[str, bool], str] = {}

    def errors(self) -> contextlib.AbstractContextManager[None]:
        return pg_failures(self.where, opening=self.opening)

    @property
    def in_transaction(self) -> bool:
        return self.raw.info.transaction_status != pq.TransactionStatus.IDLE

    def execute(self, sql: str, parameters: Sequence[Any] = (), /) -> Any:  # a psycopg cursor
        params = [_param(p) for p in parameters] or None
        with self.errors():
            return self.raw.execute(self.translate(sql, params is not None), params)

    def executemany(self, sql: str, seq_of_parameters: Iterable[Sequence[Any]], /) -> psycopg.Cursor[Any]:
        rows = [[_param(p) for p in row] for row in seq_of_parameters]
        with self.errors():
            cursor = self.raw.cursor()
            if rows:
                cursor.executemany(self.translate(sql, True), rows)
            return cursor

    def close(self) -> None:
        with self.errors():
            self.raw.close()

    def translate(self, sql: str, with_params: bool) -> str:
        """`sql` (the store's SQLite text) as PostgreSQL runs it; cached."""
        done = self._sql.get((sql, with_params))
        if done is None:
            done = self._sql[(sql, with_params)] = self._translate(sql, with_params)
        return done

    def _translate(self, sql: str, with_params: bool) -> str:
        out = sql.replace("BEGIN IMMEDIATE", "BEGIN")
        if with_params:  # psycopg reads %s; a literal % is written %%
            out = out.replace("%", "%%").replace("?", "%s")
        found = _INSERT_OR.match(out)
        if found is None:
            return out
        verb, table = found.group(1).upper(), found.group(2)
        out = "INSERT INTO " + out[found.start(2) :]
        if verb == "IGNORE":
            return out + " ON CONFLICT DO NOTHING"
        keys = self.keys[table]
        given = [c.strip() for c in found.group(3).split(",")]
        sets = [f"{c} = EXCLUDED.{c}" for c in given if c not in keys]
        # SQLite's REPLACE deletes the old row: a column the statement leaves out takes its default
        sets += [f"{c} = DEFAULT" for c in self.columns[table] if c not in given and c not in keys]
        return (
            out
            + f" ON CONFLICT ({', '.join(keys)}) DO "
            + (f"UPDATE SET {', '.join(sets)}" if sets else "NOTHING")
        )
