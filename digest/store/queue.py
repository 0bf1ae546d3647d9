"""The queue of a run: which digests its plan sends, so that runners joining the run on a shared
PostgreSQL state (`digest.pipeline.joining`) find them (`deliveries.queued`). Mixed into `Store`;
`store/postgres.py` adds the claims."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable

from digest.core.models import Delivery
from digest.core.status import DeliveryStatus
from digest.store.ledger import _DELIVERY, _delivery
from digest.store.sqlite import SqliteState


class QueueStore(SqliteState):
    """`deliveries.queued` (mixed into `Store`)."""

    def queue(self, keys: Iterable[tuple[dt.date, str]], run: dt.date) -> None:
        """The digests the run of `run` sends (its plan's), marked so that a runner joining that run
        finds them (`queued`): only these (`unqueue`, then `enqueue`)."""
        with self.transaction():
            self.unqueue(run)
            self.enqueue(keys, run)

    def unqueue(self, run: dt.date) -> None:
        """A run of the same date planned again: only the new plan's digests are to send (an
        unknown one it does not resend must not be taken by a runner joining it)."""
        with self.transaction() as db:
            db.execute("UPDATE deliveries SET queued = NULL WHERE queued = ?", (run.isoformat(),))

    def enqueue(self, keys: Iterable[tuple[dt.date, str]], run: dt.date) -> None:
        """`keys` join the queue of the run of `run` (a slice of its plan, `pipeline.recording`)."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE deliveries SET queued = ? WHERE date = ? AND email = ?",
                [(run.isoformat(), date.isoformat(), email) for date, email in keys],
            )

    def queued(self, run: dt.date) -> list[Delivery]:
        """The digests the run of `run` queued that are still to send (pending, or unknown ones
        its plan resends), by date and address."""
        rows = self.conn.execute(
            f"{_DELIVERY} WHERE queued = ? AND status IN (?, ?) ORDER BY date, email",
            (run.isoformat(), DeliveryStatus.PENDING, DeliveryStatus.UNKNOWN),
        )
        return [_delivery(row) for row in rows]
