"""The send side of the state: the ledger of digests (one row per reader and date), the papers each
reader was sent (the papers of their sent digests), and the suppressed addresses.

A digest goes pending → sending → sent | failed | unknown (see `DeliveryStatus`); 'sending' is
committed before the message goes out and 'sent', with its papers, only after the server accepted
it, so a crash in between is reported as unknown and never sent twice.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from digest.core.models import Delivery, Suppression
from digest.core.status import DeliveryStatus, SuppressionKind
from digest.store.codec import CHUNK, chunked, iso, pack_json, unpack_json
from digest.store.retention import EPOCH as _EPOCH
from digest.store.sqlite import SqliteState

_DELIVERY = "SELECT date, email, status, attempts, reply, message_id, papers FROM deliveries"
# not finished, and not given up on: sent again by a later run (unknown ones only when asked)
_UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)


_PENDING = DeliveryStatus.PENDING
_History = dict[dt.date, list[tuple[str, dict[str, Any]]]]  # a reader's papers by day, with why


class PendingDigest(NamedTuple):
    """A digest to record as due (`LedgerStore.mark_pending_many`)."""

    date: dt.date
    email: str
    paper_ids: tuple[str, ...]
    explanations: Mapping[str, Any]  # why each paper matched, by paper id
    total: int | None  # how many matched in all
    keep_explanations: bool  # the reader has a private feed: kept once sent


def _by_paper(papers: str | bytes, explanations: str | bytes) -> dict[str, Any]:
    """A row's explanations by paper id: stored as a list in the papers' order, or (rows written
    before schema 9) as a mapping."""
    why = unpack_json(explanations)
    if isinstance(why, dict):
        return why
    return {pid: w for pid, w in zip(unpack_json(papers), why, strict=False) if w is not None}


def _delivery(row: tuple[Any, ...]) -> Delivery:
    date, email, status, attempts, reply, message_id, papers = row
    return Delivery(
        date=dt.date.fromisoformat(date),
        email=email,
        status=DeliveryStatus(status),
        attempts=int(attempts),
        reply=reply,
        message_id=message_id,
        papers=tuple(unpack_json(papers)),
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
        return self.recorded_digest(date, email)[1]

    def recorded_digests(
        self, keys: Sequence[tuple[dt.date, str]]
    ) -> dict[tuple[dt.date, str], tuple[dict[str, Any], int | None]]:
        """`recorded_digest` of each of `keys` at once (a few statements for thousands: a runner
        joining a run rebuilds every digest it queued)."""
        out: dict[tuple[dt.date, str], tuple[dict[str, Any], int | None]] = {}
        for start in range(0, len(keys), CHUNK // 2):
            chunk = keys[start : start + CHUNK // 2]
            pairs = ",".join("(?, ?)" for _ in chunk)
            rows = self.conn.execute(
                "SELECT date, email, papers, explanations, total FROM deliveries "
                f"WHERE (date, email) IN (VALUES {pairs})",
                [v for d, e in chunk for v in (d.isoformat(), e)],
            ).fetchall()
            for date, email, papers, why, total in rows:
                day = dt.date.fromisoformat(date)
                out[(day, email)] = (self._why(day, email, papers, why), total)
        return out

    def sent_papers_of(self, emails: Iterable[str]) -> dict[str, set[str]]:
        """`sent_paper_ids` of each of `emails` (those with any), at once."""
        out: dict[str, set[str]] = {}
        for chunk, marks in chunked(set(emails)):
            rows = self.conn.execute(
                f"SELECT email, papers FROM deliveries WHERE status = ? AND email IN ({marks})",
                [DeliveryStatus.SENT, *chunk],
            )
            for email, papers in rows:
                out.setdefault(email, set()).update(unpack_json(papers))
        return out

    def recorded_digest(self, date: dt.date, email: str) -> tuple[dict[str, Any], int | None]:
        """Why each paper of the digest of (date, email) matched (`explanations`) and how many
        matched in all (`delivery_total`), in one query: what a late digest is rebuilt from."""
        row = self.conn.execute(
            "SELECT papers, explanations, total FROM deliveries WHERE date = ? AND email = ?",
            (date.isoformat(), email),
        ).fetchone()
        return (self._why(date, email, row[0], row[1]), row[2]) if row else ({}, None)

    def explanations(self, date: dt.date, email: str) -> dict[str, Any]:
        """Why each paper of the digest of (date, email) matched, by paper id, as recorded (none
        for a sent digest of a reader without a private feed: see `mark_pending`)."""
        row = self.conn.execute(
            "SELECT papers, explanations FROM deliveries WHERE date = ? AND email = ?",
            (date.isoformat(), email),
        ).fetchone()
        return self._why(date, email, row[0], row[1]) if row else {}

    def _why(
        self, date: dt.date, email: str, papers: str | bytes, explanations: str | bytes
    ) -> dict[str, Any]:
        why = _by_paper(papers, explanations)
        if why:
            return why
        kept = self.conn.execute(
            "SELECT data FROM unsent_explanations WHERE date = ? AND email = ?", (date.isoformat(), email)
        ).fetchone()
        return _by_paper(papers, kept[0]) if kept else {}

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
        keep_explanations: bool = True,
    ) -> None:
        """Record that `email` is due a digest of `paper_ids` for `date` (of `total` matched): one
        `mark_pending_many` row."""
        row = PendingDigest(date, email, tuple(paper_ids), explanations or {}, total, keep_explanations)
        self.mark_pending_many([row], now)

    def mark_pending_many(self, digests: Iterable[PendingDigest], now: dt.datetime) -> None:
        """Record each of `digests` as due, in one transaction and three statements for all.

        A row already past 'pending' is left alone; a pending one takes the new paper list (the
        profile may have been edited between two runs of the same date). `keep_explanations`
        (the reader has a private feed): why each paper matched stays with the row once sent;
        otherwise it is kept only until then (`forget_sent_explanations`)."""
        rows, at = [], iso(now)
        for d in digests:  # explanations in the papers' order, without their ids (`_by_paper`)
            why = pack_json([d.explanations.get(pid) for pid in d.paper_ids])
            rows.append(
                (d.date.isoformat(), d.email, pack_json(list(d.paper_ids)), why, d.total, d.keep_explanations)
            )
        still_pending = (
            "EXISTS (SELECT 1 FROM deliveries d WHERE d.date = ? AND d.email = ? AND d.status = ?)"
        )
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO deliveries (date, email, status, papers, explanations, total, updated_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT(date, email) DO UPDATE SET papers = excluded.papers, "
                "explanations = excluded.explanations, total = excluded.total, "
                "updated_at = excluded.updated_at WHERE deliveries.status = ?",
                [(day, email, _PENDING, papers, why if keep else "[]", total, at, _PENDING)
                 for day, email, papers, why, total, keep in rows],
            )  # fmt: skip
            db.executemany(
                f"DELETE FROM unsent_explanations WHERE date = ? AND email = ? AND {still_pending}",
                [(day, email, day, email, _PENDING) for day, email, _, _, _, keep in rows if keep],
            )
            db.executemany(
                "INSERT OR REPLACE INTO unsent_explanations (date, email, data) "
                f"SELECT ?, ?, ? WHERE {still_pending}",
                [(day, email, why, day, email, _PENDING) for day, email, _, why, _, keep in rows if not keep],
            )

    def forget_sent_explanations(self) -> int:
        """Drop the explanations kept only until a digest is sent (or compacted): one DELETE
        of whole runs of rows, so their pages are freed for reuse. Returns how many went."""
        with self.transaction() as db:
            return int(
                db.execute(
                    "DELETE FROM unsent_explanations WHERE NOT EXISTS (SELECT 1 FROM deliveries d "
                    "WHERE d.date = unsent_explanations.date AND d.email = unsent_explanations.email "
                    "AND d.status != ?)",
                    (DeliveryStatus.SENT,),
                ).rowcount
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
        """The server accepted the message: the digest, and so each of its papers, is sent.

        The commit may wait for the next message's (see `grouped_commits`)."""
        with self.transaction(defer_commit=True) as db:
            db.execute(
                "UPDATE deliveries SET status = ?, reply = ?, updated_at = ? WHERE date = ? AND email = ?",
                (DeliveryStatus.SENT, reply, iso(now), date.isoformat(), email),
            )

    def parts_done(self, date: dt.date, email: str) -> int:
        """How many parts of a channel's post of `date` went out (`mark_status(parts_done=)`)."""
        row = self.conn.execute(
            "SELECT parts_done FROM deliveries WHERE date = ? AND email = ?", (date.isoformat(), email)
        ).fetchone()
        return int(row[0]) if row else 0

    def mark_status(
        self,
        date: dt.date,
        email: str,
        status: DeliveryStatus,
        reply: str | None,
        now: dt.datetime,
        *,
        parts_done: int | None = None,
    ) -> None:
        """'failed' (permanent), 'unknown' (maybe delivered), or back to 'pending' (retry next run);
        `parts_done`: how many parts of a channel's split post went out."""
        status = DeliveryStatus(status)
        # unknown or failed now: off the run's queue, so that no runner takes it again (`claim`)
        settled = status in (DeliveryStatus.UNKNOWN, DeliveryStatus.FAILED)
        with self.transaction() as db:
            db.execute(
                "UPDATE deliveries SET status = ?, reply = ?, updated_at = ?, "
                "parts_done = COALESCE(?, parts_done), queued = CASE WHEN ? = 1 THEN NULL ELSE queued END "
                "WHERE date = ? AND email = ?",
                (status, reply, iso(now), parts_done, int(settled), date.isoformat(), email),
            )

    # -- runners sharing a run: store/queue.py -----------------------------------------------------

    # -- papers sent -------------------------------------------------------------------------------
    # A digest of date D holds papers new on D (or, a weekly one, on the days of its week), so the
    # readers sent a paper are among the sent digests dated on or after the first day that listed
    # it (`listed`): for a paper new today, today's digests; usually none at all. Past the window,
    # `seen_papers` keeps a paper from ever being new again, so nothing asks about it.
    def sent_for_papers(self, ids: Iterable[str]) -> dict[str, set[str]]:
        """email -> which of `ids` were already emailed to that reader (readers with none are
        left out), for every reader at once: the sent digests of the days that listed them."""
        wanted = set(ids)
        days: set[int] = set()
        for chunk, marks in chunked(wanted):
            rows = self.conn.execute(f"SELECT DISTINCT day FROM listed WHERE paper_id IN ({marks})", chunk)
            days.update(day for (day,) in rows)
        out: dict[str, set[str]] = {}
        if not days:
            return out
        # on or after the first of those days: a week's digest holds papers of the days before it
        first = (_EPOCH + dt.timedelta(days=min(days))).isoformat()
        rows = self.conn.execute(
            "SELECT email, papers FROM deliveries WHERE date >= ? AND status = ?",
            (first, DeliveryStatus.SENT),
        )
        for reader, papers in rows:
            held = wanted.intersection(unpack_json(papers))
            if held:
                out.setdefault(reader, set()).update(held)
        return out

    def sent_paper_ids(
        self, email: str, ids: Iterable[str] | None = None, *, before: dt.date | None = None
    ) -> set[str]:
        """Papers already emailed to `email` (restricted to `ids` when given; by digests dated
        before `before`, when given): the papers of the reader's sent digests (a few dozen rows in
        the window, found by `deliveries_by_email`)."""
        rows = self.conn.execute(
            "SELECT papers FROM deliveries WHERE email = ? AND status = ? AND date < ?",
            (email, DeliveryStatus.SENT, (before or dt.date.max).isoformat()),
        )
        sent = {pid for (papers,) in rows for pid in unpack_json(papers)}
        return sent if ids is None else sent.intersection(ids)

    def matched_counts(self, date: dt.date) -> dict[str, int]:
        """How many readers' digests of `date` hold each paper (for the archive page)."""
        counts: dict[str, int] = {}
        for (papers,) in self.conn.execute(
            "SELECT papers FROM deliveries WHERE date = ?", (date.isoformat(),)
        ):
            for pid in unpack_json(papers):
                counts[pid] = counts.get(pid, 0) + 1
        return counts

    def matched_history(self, email: str, dates: Sequence[dt.date]) -> _History:
        """The papers of `email`'s sent digests on `dates`, each with its stored explanation (for
        the private feed)."""
        return self.matched_histories([email], dates).get(email, {})

    def matched_histories(self, emails: Sequence[str], dates: Sequence[dt.date]) -> dict[str, _History]:
        """`matched_history` of each of `emails` (those with any), in two statements a day per
        CHUNK readers (not two per reader and day): their sent digests, then their held days."""
        out: dict[str, _History] = {}
        for d, (chunk, marks) in [(d, c) for d in dates for c in chunked(emails)]:
            of = f"SELECT email, papers, explanations FROM {{}} WHERE date = ? AND email IN ({marks}) AND "
            sent = self.conn.execute(
                of.format("deliveries") + "status = ?", (d.isoformat(), *chunk, DeliveryStatus.SENT)
            )
            found = {email: (ids, self._why(d, email, ids, why)) for email, ids, why in sent.fetchall()}
            held = self.conn.execute(of.format("held") + "taken IS NULL", (d.isoformat(), *chunk))
            for email, ids, why in held:  # a weekly reader's day, held for the week's digest
                found.setdefault(email, (ids, _by_paper(ids, why)))  # but a sent digest comes first
            for email, (ids, why) in found.items():
                out.setdefault(email, {})[d] = [(pid, why.get(pid, {})) for pid in unpack_json(ids)]
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
