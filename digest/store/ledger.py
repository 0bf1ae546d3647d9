"""The send side of the state: the ledger of digests (one row per reader and date), the papers each
reader was sent, and the suppressed addresses.

A digest goes pending → sending → sent | failed | unknown (see `DeliveryStatus`); 'sending' is
committed before the message goes out and 'sent', with its papers, only after the server accepted
it, so a crash in between is reported as unknown and never sent twice.
"""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from digest.core.models import Delivery, Suppression
from digest.core.status import DeliveryStatus, SuppressionKind
from digest.store.sqlite import SqliteState, chunked, iso

_DELIVERY = "SELECT date, email, status, attempts, reply, message_id, papers FROM deliveries"
# not finished, and not given up on: sent again by a later run (unknown ones only when asked)
_UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)


def packed(value: Any) -> bytes:
    """JSON compressed: a digest's explanations are 2.5 KB of JSON, 0.5 KB so ([state] keep_days)."""
    return zlib.compress(json.dumps(value).encode(), 6)


def unpacked(value: str | bytes) -> Any:
    """What `packed` stored, or the plain JSON text of rows written before it."""
    return json.loads(zlib.decompress(value) if isinstance(value, bytes) else value)


def _delivery(row: tuple[Any, ...]) -> Delivery:
    date, email, status, attempts, reply, message_id, papers = row
    return Delivery(
        date=dt.date.fromisoformat(date),
        email=email,
        status=DeliveryStatus(status),
        attempts=int(attempts),
        reply=reply,
        message_id=message_id,
        papers=tuple(json.loads(papers)),
    )


class LedgerStore(SqliteState):
    """Deliveries, sent papers and suppressions (mixed into `Store`)."""

    # -- reading the ledger ----------------------------------------------------------------------
    def deliveries(self, date: dt.date) -> dict[str, Delivery]:
        rows = self.conn.execute(f"{_DELIVERY} WHERE date = ?", (date.isoformat(),))
        return {row[1]: _delivery(row) for row in rows}

    def unfinished_before(self, date: dt.date, *, since: dt.date | None = None) -> list[Delivery]:
        """Digests of earlier dates (from `since` on, when given) not sent yet: pending, caught
        mid-send by a crash, or of unknown fate."""
        rows = self.conn.execute(
            f"{_DELIVERY} WHERE date < ? AND date >= ? AND status IN (?, ?, ?) ORDER BY date, email",
            (date.isoformat(), (since or dt.date.min).isoformat(), *_UNFINISHED),
        )
        return [_delivery(row) for row in rows]

    def delivery(self, date: dt.date, email: str) -> Delivery | None:
        row = self.conn.execute(
            f"{_DELIVERY} WHERE date = ? AND email = ?", (date.isoformat(), email)
        ).fetchone()
        return _delivery(row) if row else None

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
        return unpacked(row[0]) if row else {}

    # -- writing the ledger ----------------------------------------------------------------------
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
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(date, email) DO UPDATE SET papers = excluded.papers, "
                "explanations = excluded.explanations, total = excluded.total, "
                "updated_at = excluded.updated_at WHERE status = ?",
                (
                    date.isoformat(),
                    email,
                    DeliveryStatus.PENDING,
                    json.dumps(list(paper_ids)),
                    packed(explanations or {}),
                    total,
                    iso(now),
                    DeliveryStatus.PENDING,
                ),
            )

    def mark_sending(self, date: dt.date, email: str, message_id: str, now: dt.datetime) -> None:
        """Committed before the message goes out: a crash after this point leaves 'sending',
        which the next run reports as 'unknown' instead of sending a second copy.

        A digest of unknown fate that goes out again is noted as resent here, when it really
        leaves, in the same transaction: `[delivery] unknown = "resend"` resends it once on its
        own, and a resend that was planned but never left (the run stopped first) is not spent."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO resends (date, email, at) SELECT date, email, ? FROM deliveries "
                "WHERE date = ? AND email = ? AND status = ?",
                (iso(now), date.isoformat(), email, DeliveryStatus.UNKNOWN),
            )
            db.execute(
                "UPDATE deliveries SET status = ?, attempts = attempts + 1, message_id = ?, "
                "updated_at = ? WHERE date = ? AND email = ?",
                (DeliveryStatus.SENDING, message_id, iso(now), date.isoformat(), email),
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
                "UPDATE deliveries SET status = ?, reply = ?, updated_at = ? WHERE date = ? AND email = ?",
                (DeliveryStatus.SENT, reply, iso(now), day, email),
            )
            ids = json.loads(row[0]) if row else []
            db.executemany(
                "INSERT OR IGNORE INTO sent_papers (email, paper_id, date, sent_at) VALUES (?, ?, ?, ?)",
                [(email, pid, day, iso(now)) for pid in ids],
            )

    def mark_status(
        self, date: dt.date, email: str, status: DeliveryStatus, reply: str | None, now: dt.datetime
    ) -> None:
        """'failed' (permanent), 'unknown' (maybe delivered), or back to 'pending' (retry next run)."""
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = ?, reply = ?, updated_at = ? WHERE date = ? AND email = ?",
                (DeliveryStatus(status), reply, iso(now), date.isoformat(), email),
            )

    # -- papers sent -------------------------------------------------------------------------------
    def sent_paper_ids(self, email: str, ids: Iterable[str] | None = None) -> set[str]:
        """Papers already emailed to `email` (restricted to `ids` when given)."""
        if ids is None:
            rows = self.conn.execute("SELECT paper_id FROM sent_papers WHERE email = ?", (email,))
            return {r[0] for r in rows}
        out: set[str] = set()
        for chunk, marks in chunked(ids):
            rows = self.conn.execute(
                f"SELECT paper_id FROM sent_papers WHERE email = ? AND paper_id IN ({marks})", [email, *chunk]
            )
            out.update(r[0] for r in rows)
        return out

    def sent_for_papers(self, ids: Iterable[str]) -> dict[str, set[str]]:
        """email -> which of `ids` were already emailed to that reader (readers with none are
        left out): one query per 500 ids for every reader at once."""
        out: dict[str, set[str]] = {}
        for chunk, marks in chunked(ids):
            rows = self.conn.execute(
                f"SELECT email, paper_id FROM sent_papers WHERE paper_id IN ({marks})", chunk
            )
            for email, paper_id in rows:
                out.setdefault(email, set()).add(paper_id)
        return out

    def matched_counts(self, date: dt.date) -> dict[str, int]:
        """How many readers' digests of `date` hold each paper (for the archive page)."""
        counts: dict[str, int] = {}
        for (papers,) in self.conn.execute("SELECT papers FROM deliveries WHERE date = ?", (date.isoformat(),)):
            for pid in json.loads(papers):
                counts[pid] = counts.get(pid, 0) + 1
        return counts

    def matched_history(
        self, email: str, dates: Sequence[dt.date]
    ) -> dict[dt.date, list[tuple[str, dict[str, Any]]]]:
        """The papers of `email`'s sent digests on `dates`, each with its stored explanation
        (for the private feed)."""
        out: dict[dt.date, list[tuple[str, dict[str, Any]]]] = {}
        for d in dates:
            row = self.conn.execute(
                "SELECT papers, explanations FROM deliveries WHERE date = ? AND email = ? AND status = ?",
                (d.isoformat(), email, DeliveryStatus.SENT),
            ).fetchone()
            if row:
                why = unpacked(row[1])
                out[d] = [(pid, why.get(pid, {})) for pid in json.loads(row[0])]
        return out

    # -- suppressions ------------------------------------------------------------------------------
    def suppress(
        self,
        email: str,
        reason: str,
        fingerprint: str,
        now: dt.datetime,
        *,
        kind: SuppressionKind = SuppressionKind.REFUSED,
    ) -> None:
        """Send `email` nothing more: until `digest unsubscribe --undo` when UNSUBSCRIBED, until
        the profile's fingerprint changes when REFUSED. `reason` is for the operator to read."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO suppressions (email, reason, fingerprint, at, kind) VALUES (?, ?, ?, ?, ?)",
                (email, reason, fingerprint, iso(now), SuppressionKind(kind)),
            )

    def suppressions(self) -> dict[str, Suppression]:
        rows = self.conn.execute(
            "SELECT email, reason, fingerprint, at, kind FROM suppressions ORDER BY email"
        )
        return {
            email: Suppression(email, reason, fingerprint, at, SuppressionKind(kind))
            for email, reason, fingerprint, at, kind in rows
        }

    def lift_suppression(self, email: str) -> None:
        with self.transaction() as db:
            db.execute("DELETE FROM suppressions WHERE email = ?", (email,))
