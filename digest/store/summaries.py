"""The cache of generated TL;DRs (schema 10): one row per (paper, version, model, language,
prompt), with the run date that made it and the tokens it cost. SQL only: which papers are
summarised, and when a cached one is reused, is `digest.pipeline.summarizing`'s business.

Rows of days before `[state] keep_days` go with the papers they summarise (`retention.compact`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import NamedTuple

from digest.core.tldr import Tldr
from digest.store.codec import chunked
from digest.store.retention import epoch_day
from digest.store.sqlite import SqliteState


class SummaryRow(NamedTuple):
    paper_id: str
    version: int  # 0: the paper has none
    model: str
    language: str
    prompt: str
    text: str
    tokens_in: int
    tokens_out: int


class SummaryStore(SqliteState):
    """Generated summaries (mixed into `Store`)."""

    def cached_summaries(
        self, paper_ids: Iterable[str], *, model: str, language: str, prompt: str
    ) -> dict[tuple[str, int], str]:
        """(paper id, version) -> text, of the summaries this model made with this prompt."""
        out: dict[tuple[str, int], str] = {}
        for chunk, marks in chunked(dict.fromkeys(paper_ids)):
            rows = self.conn.execute(
                f"SELECT paper_id, version, text FROM summaries WHERE paper_id IN ({marks}) "
                "AND language = ? AND model = ? AND prompt = ?",
                (*chunk, language, model, prompt),
            )
            out.update({(pid, version): text for pid, version, text in rows})
        return out

    def summaries_for(self, paper_ids: Iterable[str], language: str) -> dict[str, Tldr]:
        """paper id -> the newest summary in `language`, whichever model or prompt made it: what a
        late digest, a private feed, the archive and `digest preview` show."""
        out: dict[str, Tldr] = {}
        for chunk, marks in chunked(dict.fromkeys(paper_ids)):
            rows = self.conn.execute(
                f"SELECT paper_id, text, model FROM summaries WHERE paper_id IN ({marks}) "
                "AND language = ? ORDER BY day, version",
                (*chunk, language),
            )
            out.update({pid: Tldr(text, model) for pid, text, model in rows})  # the newest last
        return out

    def save_summaries(self, rows: Sequence[SummaryRow], date: dt.date) -> None:
        """Keep `rows`, made by the run of `date`, in one transaction."""
        if not rows:
            return
        day = epoch_day(date)
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO summaries (paper_id, version, model, language, prompt, day, text, "
                "tokens_in, tokens_out) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                [(r.paper_id, r.version, r.model, r.language, r.prompt, day, r.text, r.tokens_in, r.tokens_out)
                 for r in rows],
            )  # fmt: skip

    def summary_usage(self, date: dt.date) -> tuple[int, int]:
        """(papers summarised, tokens spent) by the runs of `date`: what its daily caps count."""
        row = self.conn.execute(
            "SELECT COUNT(*), COALESCE(SUM(tokens_in + tokens_out), 0) FROM summaries WHERE day = ?",
            (epoch_day(date),),
        ).fetchone()
        return int(row[0]), int(row[1])
