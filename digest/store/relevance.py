"""Papers like these (schema 17, `digest.relevance`): the liked and disliked papers profiles name,
resolved once and kept, and readers' "more / fewer like this" feedback. SQL only: what is
resolved where, and how feedback ranks, is `digest.pipeline.relevance`'s business.

Both are kept past `[state] keep_days`: a profile names a liked paper for years, and feedback is
what the reader taught the ranking. They are small: one row per distinct liked paper, one per
(reader, paper) they gave feedback on.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import NamedTuple

from digest.core.models import Paper
from digest.store.codec import chunked, iso, pack_papers, unpack_papers
from digest.store.retention import epoch_day
from digest.store.sqlite import SqliteState


class Feedback(NamedTuple):
    paper_id: str
    direction: str  # "more" | "fewer"
    at: str
    paper: Paper | None  # as it was when the reader gave it; None when no stored listing had it


class RelevanceStore(SqliteState):
    """Resolved liked papers and reader feedback (mixed into `Store`)."""

    def liked_papers(self, keys: Iterable[str]) -> dict[str, Paper]:
        """key -> the paper resolved for it, of `keys` resolved before."""
        out: dict[str, Paper] = {}
        for chunk, marks in chunked(set(keys)):
            rows = self.conn.execute(f"SELECT key, data FROM liked_papers WHERE key IN ({marks})", chunk)
            out.update({key: unpack_papers(data)[0] for key, data in rows})
        return out

    def save_liked(self, papers: Mapping[str, Paper], now: dt.datetime) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO liked_papers (key, data, resolved) VALUES (?, ?, ?)",
                [(key, pack_papers([paper]), iso(now)) for key, paper in papers.items()],
            )

    def add_feedback(
        self, email: str, paper_id: str, direction: str, paper: Paper | None, now: dt.datetime
    ) -> None:
        """The reader's newest word on the paper ("more" or "fewer"), replacing an earlier one."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO feedback (email, paper_id, direction, at, data) VALUES (?, ?, ?, ?, ?)",
                (
                    email.lower(),
                    paper_id,
                    direction,
                    iso(now),
                    None if paper is None else pack_papers([paper]),
                ),
            )

    def feedback(self, emails: Iterable[str]) -> dict[str, list[Feedback]]:
        """lower-cased email -> the reader's feedback, oldest first (readers with none left out)."""
        out: dict[str, list[Feedback]] = {}
        for chunk, marks in chunked({e.lower() for e in emails}):
            rows = self.conn.execute(
                f"SELECT email, paper_id, direction, at, data FROM feedback WHERE email IN ({marks}) "
                "ORDER BY at, paper_id",
                chunk,
            )
            for email, pid, direction, at, data in rows:
                paper = unpack_papers(data)[0] if data is not None else None
                out.setdefault(email, []).append(Feedback(pid, direction, at, paper))
        return out

    def reset_feedback(self, email: str) -> int:
        """Forget what the reader said; returns how many papers it was about."""
        with self.transaction() as db:
            return int(db.execute("DELETE FROM feedback WHERE email = ?", (email.lower(),)).rowcount)

    # -- embedding vectors ([relevance] engine other than tfidf) ---------------------------------
    def paper_vectors(self, paper_ids: Iterable[str], engine: str) -> dict[str, bytes]:
        out: dict[str, bytes] = {}
        for chunk, marks in chunked(set(paper_ids)):
            rows = self.conn.execute(
                f"SELECT paper_id, data FROM paper_vectors WHERE engine = ? AND paper_id IN ({marks})",
                (engine, *chunk),
            )
            out.update({pid: bytes(data) for pid, data in rows})
        return out

    def save_vectors(self, vectors: Mapping[str, bytes], engine: str, date: dt.date) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO paper_vectors (paper_id, engine, day, data) VALUES (?, ?, ?, ?)",
                [(pid, engine, epoch_day(date), data) for pid, data in vectors.items()],
            )
