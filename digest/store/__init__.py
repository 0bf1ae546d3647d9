"""The state: one embedded SQLite file (WAL) holding snapshots, HTTP validators and the send ledger.

Everything that changes the state is one transaction, so a run that fails half-way leaves the
file as it was: a snapshot and the validators of the responses it came from are written
together or not at all; a digest is marked sent (and its papers recorded as sent to that reader)
in the same transaction, right after the SMTP server accepted it.

The schema is versioned (`PRAGMA user_version`) with numbered migrations (`schema`); a state file
written by a newer digest is refused rather than misread. Every failure of the file (a full disk,
a read-only folder, another process's lock, corruption) is a one-line `StoreError` naming it
(`sqlite`).

- `sqlite.SqliteState`: the connection, transactions, migrations, the run lock, error messages.
- `postgres.PgStore`: the same on a PostgreSQL server (`[state] url`, schema in `pg_schema`), with
  the locks and claims that let several runners share one state.
- `snapshots.SnapshotStore`: snapshots, the HTTP cache, run records.
- `ledger.LedgerStore`: deliveries, papers sent, suppressions.
- `held.HeldStore`: weekly readers' held days (`digest.cadence`).
- `queue.QueueStore`: which digests a run's plan sends, for runners joining it (PostgreSQL).
- `retention.RetentionStore`: what a day keeps past `[state] keep_days`, and shrinking the file.
- `summaries.SummaryStore`: the cache of generated TL;DRs (`[summaries]`).
- `web_readers.WebReaderStore`: readers who subscribed on the web (`digest.web`).
- `relevance.RelevanceStore`: resolved liked papers and readers' feedback (`digest.relevance`).
"""

from __future__ import annotations

import functools
from typing import Self, cast

from digest.config import StateConfig
from digest.core.errors import ConfigError
from digest.core.models import Seen
from digest.store.held import HeldDay, HeldStore
from digest.store.ledger import LedgerStore, PendingDigest
from digest.store.queue import QueueStore
from digest.store.relevance import Feedback, RelevanceStore
from digest.store.retention import Drop, RetentionStore, Shrink
from digest.store.schema import MIGRATIONS
from digest.store.snapshots import SnapshotStore
from digest.store.summaries import SummaryRow, SummaryStore
from digest.store.web_readers import WebReader, WebReaderStore


class Store(
    SnapshotStore,
    LedgerStore,
    QueueStore,
    RetentionStore,
    SummaryStore,
    HeldStore,
    WebReaderStore,
    RelevanceStore,
):
    """The state. Open with `Store.from_config(settings.state)` (a SQLite file, or a PostgreSQL
    database with `[state] url`) or `Store.open(path)`; use as a context manager to close it."""

    migrations = MIGRATIONS

    @classmethod
    def from_config(cls, state: StateConfig, *, create: bool = True) -> Self:
        if state.url is None:
            return super().from_config(state, create=create)
        return cast(Self, postgres_store().from_config(state, create=create))

    @classmethod
    def opens_unchanged(cls, state: StateConfig) -> bool:
        """Whether opening `state` and taking its run lock change nothing and wait for nobody: a
        SQLite file already at this digest's schema (not a new one, not one to migrate, not a
        PostgreSQL database, whose run lock waits for another runner's plan)."""
        return state.url is None and cls.is_current(state.path)


@functools.cache
def postgres_store() -> type[Store]:
    """`Store` on PostgreSQL (`[state] url`): `postgres.PgState` in front of the same tables'
    methods. Imported only here: psycopg is an extra (digest[postgres]) a SQLite state never needs."""
    try:
        from digest.store.postgres import PgState
    except ImportError as exc:
        raise ConfigError(
            f"[state] url: PostgreSQL needs psycopg ({exc}); install digest's postgres extra: pip install '.[postgres]' in its folder"
        ) from None
    return type("PgStore", (PgState, Store), {"__doc__": postgres_store.__doc__})


__all__ = [
    "MIGRATIONS",
    "Drop",
    "Feedback",
    "HeldDay",
    "PendingDigest",
    "Seen",
    "Shrink",
    "Store",
    "SummaryRow",
    "WebReader",
    "postgres_store",
]
