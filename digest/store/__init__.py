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
- `snapshots.SnapshotStore`: snapshots, the HTTP cache, run records.
- `ledger.LedgerStore`: deliveries, papers sent, suppressions.
- `held.HeldStore`: weekly readers' held days (`digest.cadence`).
- `retention.RetentionStore`: what a day keeps past `[state] keep_days`, and shrinking the file.
- `summaries.SummaryStore`: the cache of generated TL;DRs (`[summaries]`).
- `web_readers.WebReaderStore`: readers who subscribed on the web (`digest.web`).
- `relevance.RelevanceStore`: resolved liked papers and readers' feedback (`digest.relevance`).
"""

from __future__ import annotations

from digest.core.models import Seen
from digest.store.held import HeldDay, HeldStore
from digest.store.ledger import LedgerStore
from digest.store.relevance import Feedback, RelevanceStore
from digest.store.retention import Drop, RetentionStore, Shrink
from digest.store.schema import MIGRATIONS
from digest.store.snapshots import SnapshotStore
from digest.store.summaries import SummaryRow, SummaryStore
from digest.store.web_readers import WebReader, WebReaderStore


class Store(
    SnapshotStore, LedgerStore, RetentionStore, SummaryStore, HeldStore, WebReaderStore, RelevanceStore
):
    """The state file. Open with `Store.open(path)`; use as a context manager to close it."""

    migrations = MIGRATIONS


__all__ = ["MIGRATIONS", "Drop", "Feedback", "HeldDay", "Seen", "Shrink", "Store", "SummaryRow", "WebReader"]
