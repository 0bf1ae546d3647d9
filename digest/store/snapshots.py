"""The fetch side of the state: each day's listing snapshot, the HTTP validators it came with, and
the run records. The diff reads its past from here."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence

from digest.core.models import CachedResponse, FetchResult, Paper, Seen
from digest.core.status import RunStatus
from digest.store.sqlite import SqliteState, chunked, iso


class SnapshotStore(SqliteState):
    """Snapshots, the HTTP cache and runs (mixed into `Store`)."""

    # -- snapshots and the HTTP cache ------------------------------------------------------------
    def http_cache(self) -> dict[str, CachedResponse]:
        rows = self.conn.execute("SELECT url, etag, last_modified, body FROM http_cache")
        return {url: CachedResponse(url, etag, lm, bytes(body)) for url, etag, lm, body in rows}

    def record_snapshot(
        self,
        date: dt.date,
        papers: Sequence[Paper],
        responses: Iterable[FetchResult],
        *,
        sources: Sequence[str],
        now: dt.datetime,
    ) -> None:
        """Replace the snapshot of `date` and store the validators, in one transaction."""
        day = date.isoformat()
        with self.transaction() as db:
            db.execute("DELETE FROM snapshot_papers WHERE date = ?", (day,))
            db.executemany(
                "INSERT INTO snapshot_papers (date, paper_id, version, data) VALUES (?, ?, ?, ?)",
                [(day, p.id, p.version, p.to_json()) for p in papers],
            )
            db.execute(
                "INSERT OR REPLACE INTO snapshots (date, fetched_at, sources) VALUES (?, ?, ?)",
                (day, iso(now), json.dumps(list(sources))),
            )
            for r in responses:
                if r.etag is None and r.last_modified is None:
                    db.execute("DELETE FROM http_cache WHERE url = ?", (r.url,))
                    continue
                db.execute(
                    "INSERT OR REPLACE INTO http_cache (url, etag, last_modified, body, fetched_at) "
                    "VALUES (?, ?, ?, ?, ?)",
                    (r.url, r.etag, r.last_modified, r.body, iso(now)),
                )

    def snapshot(self, date: dt.date) -> list[Paper] | None:
        """The papers stored for `date`, or None when no snapshot was taken that day."""
        day = date.isoformat()
        if self.conn.execute("SELECT 1 FROM snapshots WHERE date = ?", (day,)).fetchone() is None:
            return None
        rows = self.conn.execute("SELECT data FROM snapshot_papers WHERE date = ? ORDER BY rowid", (day,))
        return [Paper.from_json(data) for (data,) in rows]

    def snapshot_dates(self, *, until: dt.date | None = None, limit: int | None = None) -> list[dt.date]:
        """Dates with a snapshot, newest first."""
        sql = "SELECT date FROM snapshots"
        args: list[object] = []
        if until is not None:
            sql += " WHERE date <= ?"
            args.append(until.isoformat())
        sql += " ORDER BY date DESC"
        if limit is not None:
            sql += " LIMIT ?"
            args.append(limit)
        return [dt.date.fromisoformat(d) for (d,) in self.conn.execute(sql, args)]

    def seen_before(self, date: dt.date, ids: Iterable[str]) -> dict[str, Seen]:
        """For each id listed on some date before `date`: when first, and its highest version then.

        Only dates strictly before `date` count, so re-running a date sees the same past.
        """
        out: dict[str, Seen] = {}
        day = date.isoformat()
        for chunk, marks in chunked(ids):
            rows = self.conn.execute(
                f"SELECT paper_id, MIN(date), MAX(version) FROM snapshot_papers "
                f"WHERE date < ? AND paper_id IN ({marks}) GROUP BY paper_id",
                [day, *chunk],
            )
            for paper_id, first, version in rows:
                out[paper_id] = Seen(dt.date.fromisoformat(first), version)
        return out

    # -- runs ---------------------------------------------------------------------------------------
    def start_run(self, date: dt.date, now: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT INTO runs (date, started_at, status) VALUES (?, ?, ?) "
                "ON CONFLICT(date) DO UPDATE SET started_at = excluded.started_at, "
                "status = excluded.status, finished_at = NULL",
                (date.isoformat(), iso(now), RunStatus.RUNNING),
            )

    def finish_run(self, date: dt.date, status: str, summary: dict[str, object], now: dt.datetime) -> None:
        with self.transaction() as db:
            db.execute(
                "UPDATE runs SET finished_at = ?, status = ?, summary = ? WHERE date = ?",
                (iso(now), status, json.dumps(summary, default=str), date.isoformat()),
            )

    def run_status(self, date: dt.date) -> RunStatus | None:
        """How the run of `date` ended ('running' while it runs, or when it died); None if never run."""
        row = self.conn.execute("SELECT status FROM runs WHERE date = ?", (date.isoformat(),)).fetchone()
        return RunStatus(row[0]) if row else None
