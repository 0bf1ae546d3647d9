"""Weekly readers' held days (`digest.cadence`): on the days between two weekly digests, a weekly
reader's matches of the day wait here, for their private feed and for the week's digest, which
takes them in the transaction that records it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, NamedTuple

from digest.store.codec import pack_json, unpack_json
from digest.store.sqlite import SqliteState


class HeldDay(NamedTuple):
    date: dt.date
    papers: tuple[str, ...]  # the day's matches, best first
    explanations: dict[str, Any]  # why each matched, by paper id (`digest.explain`)
    total: int  # how many matched that day in all


class HeldStore(SqliteState):
    """The `held` table (mixed into `Store`)."""

    def hold(
        self,
        date: dt.date,
        email: str,
        paper_ids: Sequence[str],
        *,
        explanations: Mapping[str, Any],
        total: int,
    ) -> None:
        """Hold `email`'s matches of `date` (a re-run of the date replaces them, unless a week's
        digest took the day already)."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO held (date, email, papers, explanations, total) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (email, date) DO UPDATE SET papers = excluded.papers, "
                "explanations = excluded.explanations, total = excluded.total WHERE held.taken IS NULL",
                (
                    date.isoformat(),
                    email,
                    pack_json(list(paper_ids)),
                    pack_json([explanations.get(pid) for pid in paper_ids]),
                    total,
                ),
            )

    def held(self, *, before: dt.date) -> dict[str, list[HeldDay]]:
        """Every reader's held days before `before`, oldest first."""
        out: dict[str, list[HeldDay]] = {}
        rows = self.conn.execute(
            "SELECT email, date, papers, explanations, total FROM held WHERE date < ? AND taken IS NULL "
            "ORDER BY email, date",
            (before.isoformat(),),
        )
        for email, date, papers, why, total in rows:
            ids = tuple(unpack_json(papers))
            by_paper = {pid: w for pid, w in zip(ids, unpack_json(why), strict=False) if w is not None}
            out.setdefault(email, []).append(HeldDay(dt.date.fromisoformat(date), ids, by_paper, int(total)))
        return out

    def held_on(self, email: str, date: dt.date) -> HeldDay | None:
        """`email`'s held day `date`, if any (for the private feed)."""
        row = self.conn.execute(
            "SELECT papers, explanations, total FROM held WHERE email = ? AND date = ? AND taken IS NULL",
            (email, date.isoformat()),
        ).fetchone()
        if row is None:
            return None
        ids = tuple(unpack_json(row[0]))
        by_paper = {pid: w for pid, w in zip(ids, unpack_json(row[1]), strict=False) if w is not None}
        return HeldDay(date, ids, by_paper, int(row[2]))

    def take_held(self, emails: Iterable[str], *, up_to: dt.date) -> None:
        """The week's digests of `emails` (dated `up_to`) are recorded: their held days up to it
        are taken, marked rather than deleted until compaction, so that a re-run of an earlier
        date does not hold them again."""
        with self.transaction() as db:
            db.executemany(
                "UPDATE held SET taken = ? WHERE email = ? AND date <= ? AND taken IS NULL",
                [(up_to.isoformat(), email, up_to.isoformat()) for email in emails],
            )
