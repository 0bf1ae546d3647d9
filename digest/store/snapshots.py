"""The fetch side of the state: each day's listing snapshot, the HTTP validators it came with, the
run records, and which days' digests were recorded (and which unknown ones were resent once). The
diff reads its past from here."""

from __future__ import annotations

import datetime as dt
import json
import zlib
from collections.abc import Iterable, Mapping, Sequence

from digest.core.models import CachedResponse, FetchResult, Paper, Seen
from digest.core.status import RunStatus
from digest.store.codec import chunked, iso, pack_body, pack_papers, paper_id, unpack_body, unpack_papers
from digest.store.retention import EPOCH, epoch_day
from digest.store.sqlite import SqliteState


class SnapshotStore(SqliteState):
    """Snapshots, the HTTP cache and runs (mixed into `Store`)."""

    # -- snapshots and the HTTP cache ------------------------------------------------------------
    def http_cache(self) -> dict[str, CachedResponse]:
        rows = self.conn.execute("SELECT url, etag, last_modified, body, packed FROM http_cache")
        return {
            url: CachedResponse(url, etag, lm, unpack_body(bytes(body), bool(packed)))
            for url, etag, lm, body, packed in rows
        }

    def record_snapshot(
        self,
        date: dt.date,
        papers: Sequence[Paper],
        responses: Iterable[FetchResult],
        *,
        sources: Sequence[str],
        now: dt.datetime,
        days: Mapping[str, Iterable[dt.date]] | None = None,
    ) -> None:
        """Replace the snapshot of `date` and store the validators, in one transaction.

        `sources` are the sources the snapshot covers (a source that failed is left out, so a
        re-run can fetch it); `days` the announcement days each of them listed (`source_days`).
        """
        day = date.isoformat()
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO source_days (source, day, date) VALUES (?, ?, ?)",
                [(name, d.isoformat(), day) for name, listed in (days or {}).items() for d in listed],
            )
            # the day's papers in one block, and which ids it listed for the diff (`listed`)
            db.execute("DELETE FROM snapshot_rows_v8 WHERE date = ?", (day,))
            db.execute("DELETE FROM listed WHERE day = ?", (epoch_day(date),))
            db.executemany(
                "INSERT OR REPLACE INTO listed (paper_id, day, version) VALUES (?, ?, ?)",
                [(p.id, epoch_day(date), p.version) for p in papers],
            )
            db.execute(
                "INSERT OR REPLACE INTO snapshot_papers (date, data) VALUES (?, ?)",
                (day, pack_papers(papers)),
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
                    "INSERT OR REPLACE INTO http_cache (url, etag, last_modified, body, fetched_at, packed) "
                    "VALUES (?, ?, ?, ?, ?, 1)",
                    (r.url, r.etag, r.last_modified, pack_body(r.body), iso(now)),
                )

    def snapshot(self, date: dt.date) -> list[Paper] | None:
        """The papers stored for `date`, or None when no snapshot was taken that day."""
        day = date.isoformat()
        if self.conn.execute("SELECT 1 FROM snapshots WHERE date = ?", (day,)).fetchone() is None:
            return None
        row = self.conn.execute("SELECT data FROM snapshot_papers WHERE date = ?", (day,)).fetchone()
        if row is not None:
            return unpack_papers(row[0])
        # a day stored by digest before schema 9 (until retention compacts it), or compacted: []
        rows = self.conn.execute("SELECT data FROM snapshot_rows_v8 WHERE date = ? ORDER BY rowid", (day,))
        return [Paper.from_json(zlib.decompress(d).decode() if isinstance(d, bytes) else d) for (d,) in rows]

    def listing_days(self, ids: Iterable[str]) -> list[dt.date]:
        """The days inside the window whose snapshots list any of `ids`, newest first."""
        days: set[int] = set()
        for chunk, marks in chunked(set(ids)):
            rows = self.conn.execute(f"SELECT DISTINCT day FROM listed WHERE paper_id IN ({marks})", chunk)
            days.update(day for (day,) in rows)
        return [EPOCH + dt.timedelta(days=day) for day in sorted(days, reverse=True)]

    def papers(self, ids: Iterable[str]) -> dict[str, Paper]:
        """The stored papers of `ids` (from the days inside the window that listed them), by id:
        a week's digest holds papers of several days; a trending one, papers of a week's or a
        month's list (`trending_lists`), which no day need have listed."""
        wanted = set(ids)
        out: dict[str, Paper] = {}
        for day in self.listing_days(wanted):  # the newest listing of a paper wins
            for paper in self.snapshot(day) or ():
                if paper.id in wanted and paper.id not in out:
                    out[paper.id] = paper
        if len(out) < len(wanted):
            rows = self.conn.execute("SELECT data FROM trending_lists ORDER BY date DESC")
            for (data,) in rows:
                for paper in unpack_papers(data):
                    if paper.id in wanted and paper.id not in out:
                        out[paper.id] = paper
        return out

    # -- Hugging Face's week and month lists (`digest.trending`) ----------------------------------
    def record_trending(self, source: str, period: str, date: dt.date, papers: Sequence[Paper]) -> None:
        """Keep the list of `period` as the run of `date` fetched it (replacing an older fetch)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO trending_lists (source, period, date, data) VALUES (?, ?, ?, ?)",
                (source, period, date.isoformat(), pack_papers(papers)),
            )

    def planned_periods(self, emails: Iterable[str]) -> dict[tuple[str, str], str]:
        """(lower-cased email, "week" | "month") -> the newest period planned for that trending reader."""
        out: dict[tuple[str, str], str] = {}
        for chunk, marks in chunked({e.lower() for e in emails}):  # an address's case may change
            rows = self.conn.execute(
                f"SELECT email, kind, period FROM trending_periods WHERE email IN ({marks})", chunk
            )
            out.update({(email, kind): period for email, kind, period in rows})
        return out

    def mark_period(self, email: str, kind: str, period: str) -> None:
        """The reader's digest of `period` is planned (in the transaction that records it)."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO trending_periods (email, kind, period) VALUES (?, ?, ?)",
                (email.lower(), kind, period),
            )

    def trending_list(self, source: str, period: str) -> list[Paper] | None:
        """The newest stored list of `period` from `source`, or None."""
        row = self.conn.execute(
            "SELECT data FROM trending_lists WHERE source = ? AND period = ?", (source, period)
        ).fetchone()
        return None if row is None else unpack_papers(row[0])

    def last_recorded(self, *, before: dt.date) -> dt.date | None:
        """The latest day whose digests were recorded, before `before`."""
        row = self.conn.execute(
            "SELECT MAX(date) FROM recorded_days WHERE date < ?", (before.isoformat(),)
        ).fetchone()
        return dt.date.fromisoformat(row[0]) if row and row[0] else None

    def snapshot_sources(self, date: dt.date) -> list[str] | None:
        """The sources the snapshot of `date` covers, or None when no snapshot was taken that day."""
        row = self.conn.execute(
            "SELECT sources FROM snapshots WHERE date = ?", (date.isoformat(),)
        ).fetchone()
        return None if row is None else list(json.loads(row[0]))

    def last_days(self, *, before: dt.date | None = None) -> dict[str, dt.date]:
        """Per source, the newest announcement day stored (under a run date before `before`)."""
        sql, args = "SELECT source, MAX(day) FROM source_days", []
        if before is not None:
            sql, args = sql + " WHERE date < ?", [before.isoformat()]
        rows = self.conn.execute(sql + " GROUP BY source", args)
        return {name: dt.date.fromisoformat(day) for name, day in rows}

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

        Only dates strictly before `date` count, so re-running a date sees the same past. Days
        past `[state] keep_days` count through `seen_papers`, what retention kept of them.
        """
        out: dict[str, Seen] = {}
        before = epoch_day(date)
        for chunk, marks in chunked(ids):
            rows = self.conn.execute(
                f"SELECT paper_id, MIN(day), MAX(version) FROM listed "
                f"WHERE day < ? AND paper_id IN ({marks}) GROUP BY paper_id",
                [before, *chunk],
            )
            for pid, first, version in rows:
                out[pid] = Seen(EPOCH + dt.timedelta(days=first), version)
            keys = [self.paper_key(pid) for pid in chunk]
            rows = self.conn.execute(
                f"SELECT paper_id, first_day, version FROM seen_papers WHERE first_day < ? AND paper_id IN ({marks})",
                [before, *keys],
            )
            for key, first, version in rows:
                pid = paper_id(key)
                out[pid] = _earlier(out.get(pid), Seen(EPOCH + dt.timedelta(days=first), version))
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

    # -- which stored days had their digests recorded ----------------------------------------------
    def mark_recorded(self, date: dt.date, now: dt.datetime, *, by: dt.date) -> None:
        """The digests of `date` are in the ledger (by the run of `by`): call it inside the
        transaction that records them, so a day is either recorded with its digests or not at all."""
        with self.transaction() as db:
            db.execute(
                "INSERT OR REPLACE INTO recorded_days (date, recorded_at, by_run) VALUES (?, ?, ?)",
                (date.isoformat(), iso(now), by.isoformat()),
            )

    def is_recorded(self, date: dt.date) -> bool:
        """Whether the digests of `date` are in the ledger (`mark_recorded`)."""
        row = self.conn.execute("SELECT 1 FROM recorded_days WHERE date = ?", (date.isoformat(),)).fetchone()
        return row is not None

    def unrecorded_days(self, before: dt.date, *, since: dt.date) -> list[dt.date]:
        """Stored days from `since` up to `before` (excluded) whose digests were never recorded,
        oldest first: the run died between storing the listing and recording the digests, or only
        `digest fetch` ran that day. Only days from the first date a run started on: listings
        fetched before digest ever ran are the history it starts from, nobody's digest."""
        rows = self.conn.execute(
            "SELECT date FROM snapshots WHERE date < ? AND date >= ? "
            "AND date >= (SELECT MIN(date) FROM runs) "
            "AND date NOT IN (SELECT date FROM recorded_days) ORDER BY date",
            (before.isoformat(), since.isoformat()),
        )
        return [dt.date.fromisoformat(d) for (d,) in rows]

    def resent_unknown(self, *, since: dt.date) -> set[tuple[dt.date, str]]:
        """The (date, email) digests of unknown fate from `since` on that went out again (noted by
        `mark_sending`)."""
        rows = self.conn.execute("SELECT date, email FROM resends WHERE date >= ?", (since.isoformat(),))
        return {(dt.date.fromisoformat(d), email) for d, email in rows}


def _earlier(a: Seen | None, b: Seen) -> Seen:
    """What two records of a paper say together: the first day of either, the higher version."""
    if a is None:
        return b
    versions = [v for v in (a.version, b.version) if v is not None]
    return Seen(min(a.first_seen, b.first_seen), max(versions) if versions else None)
