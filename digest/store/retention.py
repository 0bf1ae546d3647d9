"""Bounded state: what a day keeps once it is older than `[state] keep_days`, and the file shrinking.

Every run stores the day's whole listing (some 0.7 MB compressed for all of arXiv) and, per
reader, the digest's papers and why each matched (some 0.5 KB compressed). Kept for ever, a
deployment following all of arXiv would pass GitHub's 100 MB per-file limit within months.
Past the window, a day keeps only what later runs read:

- its snapshot: each paper's id, the first day it was listed and its highest version, in
  `seen_papers`: what `seen_before` (the diff) needs, so a paper listed once is never new again,
  which is what keeps it out of every later digest ("never twice");
- its digests: who got one and how it ended, in `ledger_days`: per day, a bitmap of the readers
  (by number, `readers`) sent one and one of those whose digest failed for good. The papers of
  each digest, why they matched and the server's reply go: a digest only ever holds papers new
  on its own day, so no later run's `sent_for_papers` can ask about them, and late digests,
  private feeds and the archive only read days inside the window. Rows not finished (pending,
  sending, unknown) are kept whole until a run settles them;
- the HTTP cache: rows not refreshed inside the window (yesterday's Hugging Face day URL) go;
  a URL fetched every day keeps its one body.

`compact` does all of it in one transaction, so a process killed half-way leaves the state as it
was; `shrink` then checkpoints the WAL and, when a good share of the file is free pages (the first
compaction of a long history), VACUUMs, which SQLite also does in one transaction. In the steady
state, the pages a day's compaction frees are reused by the next day's snapshot: no VACUUM.

SQL and packing only, no policy beyond the window: the pipeline and `digest state`
(`commands.state`) call it. How things are packed: `codec`.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from dataclasses import dataclass

from digest.core.errors import StoreError
from digest.core.status import DeliveryStatus
from digest.store.codec import bitmap, chunked, iso, members, unpack_json
from digest.store.sqlite import SqliteState

EPOCH = dt.date(1970, 1, 1)
_FINISHED = (DeliveryStatus.SENT, DeliveryStatus.FAILED)
_UNFINISHED = (DeliveryStatus.PENDING, DeliveryStatus.SENDING, DeliveryStatus.UNKNOWN)
# VACUUM when at least this share of the file, and this many bytes, are free pages
VACUUM_SHARE = 0.25
VACUUM_BYTES = 4 * 1024 * 1024


def epoch_day(date: dt.date) -> int:
    """`date` as days since 1970-01-01, as `listed`, `seen_papers` and `ledger_days` store it."""
    return (date - EPOCH).days


@dataclass(frozen=True)
class Drop:
    """What compacting the days before `cutoff` reduces (or would)."""

    cutoff: dt.date | None  # days before it are compacted; None: nothing is old enough
    days: int = 0  # snapshot days reduced to seen_papers
    snapshot_rows: int = 0  # papers listed on those days, folded into seen_papers
    digests: int = 0  # finished deliveries rows moved to ledger_days
    sent_rows: int = 0  # papers of those digests (who got which paper) dropped
    cache_rows: int = 0  # HTTP cache rows not refreshed inside the window
    bytes: int = 0  # about how many bytes of table pages that frees


@dataclass(frozen=True)
class Shrink:
    before: int  # bytes of the file and its WAL
    after: int
    vacuumed: bool


class RetentionStore(SqliteState):
    """The window, compaction and shrinking (mixed into `Store`)."""

    def retention_cutoff(self, today: dt.date, keep_days: int) -> dt.date | None:
        """The first day kept whole: the older of the `keep_days`-th newest snapshot day and
        `keep_days` - 1 days before `today`. None while fewer days are stored."""
        rows = self.conn.execute(
            "SELECT date FROM snapshots WHERE date <= ? ORDER BY date DESC LIMIT 1 OFFSET ?",
            (today.isoformat(), keep_days - 1),
        ).fetchone()
        if rows is None:
            return None
        return min(dt.date.fromisoformat(rows[0]), today - dt.timedelta(days=keep_days - 1))

    def oldest_full_day(self) -> dt.date | None:
        row = self.conn.execute("SELECT MIN(date) FROM snapshots WHERE compacted_at IS NULL").fetchone()
        return dt.date.fromisoformat(row[0]) if row and row[0] else None

    def history(self) -> dict[tuple[dt.date, str], str]:
        """(date, email) → sent | failed, of the digests compacted (`ledger_days`, and the
        `ledger_history` rows of schema 8)."""
        emails = dict(self.conn.execute("SELECT id, email FROM readers").fetchall())
        out = {
            (EPOCH + dt.timedelta(days=day), emails[reader]): status
            for day, reader, status in self.conn.execute("SELECT day, reader, status FROM ledger_history")
        }
        for day, sent, failed in self.conn.execute("SELECT day, sent, failed FROM ledger_days"):
            date = EPOCH + dt.timedelta(days=day)
            for status, block in ((DeliveryStatus.FAILED, failed), (DeliveryStatus.SENT, sent)):
                out.update({(date, emails[reader]): str(status) for reader in members(block)})
        return out

    def compacted_days(self) -> int:
        return int(
            self.conn.execute("SELECT COUNT(*) FROM snapshots WHERE compacted_at IS NOT NULL").fetchone()[0]
        )

    def preview_compaction(self, cutoff: dt.date | None, *, estimate: bool = True) -> Drop:
        """What `compact(cutoff)` would reduce, without changing anything (`estimate`: with the
        bytes that frees, which reads every page of the file: for `digest state`, not each run)."""
        if cutoff is None:
            return Drop(None)
        day = cutoff.isoformat()

        def count(sql: str, *args: object) -> int:
            return int(self.conn.execute(sql, args).fetchone()[0])

        finished = self.conn.execute(
            "SELECT papers FROM deliveries WHERE date < ? AND status IN (?, ?)", (day, *_FINISHED)
        ).fetchall()
        listings = self.listings_cutoff(cutoff)
        drop = Drop(
            cutoff,
            days=count(
                "SELECT COUNT(*) FROM snapshots WHERE date < ? AND compacted_at IS NULL", listings.isoformat()
            ),
            snapshot_rows=count("SELECT COUNT(*) FROM listed WHERE day < ?", epoch_day(listings)),
            digests=len(finished),
            sent_rows=sum(len(unpack_json(papers)) for (papers,) in finished),
            cache_rows=count("SELECT COUNT(*) FROM http_cache WHERE fetched_at < ?", day),
        )
        return dataclasses.replace(drop, bytes=self._freed_estimate(drop)) if estimate else drop

    def _freed_estimate(self, drop: Drop) -> int:
        """Each table's bytes times the share of its rows that go (an estimate: rows differ)."""
        sizes = self.table_sizes()
        total = 0
        days = int(
            self.conn.execute("SELECT COUNT(*) FROM snapshots WHERE compacted_at IS NULL").fetchone()[0]
        )
        for table, gone in (
            ("snapshot_papers", drop.days * self._rows("snapshot_papers") // max(days, 1)),
            ("listed", drop.snapshot_rows),
            ("deliveries", drop.digests),
            ("http_cache", drop.cache_rows),
        ):
            rows = self._rows(table)
            share = min(gone / rows, 1.0) if rows else 0.0
            total += int(sum(b for name, b in sizes.items() if _owner(name) == table) * share)
        return total

    def _rows(self, table: str) -> int:
        return int(self.conn.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0])

    def compact(self, cutoff: dt.date | None, now: dt.datetime) -> Drop:
        """Reduce every day before `cutoff` to what later runs need, in one transaction."""
        drop = self.preview_compaction(cutoff, estimate=False)
        if cutoff is None:
            return drop
        day = cutoff.isoformat()
        with self.transaction() as db:
            listings = self.listings_cutoff(cutoff)
            self._fold_listings(listings, now)
            # a trending list goes with the listings: a late digest of its papers keeps it
            db.execute("DELETE FROM trending_lists WHERE date < ?", (listings.isoformat(),))
            # embedding vectors go with their papers, but for the liked ones a profile still names
            db.execute(
                "DELETE FROM paper_vectors WHERE day < ? AND paper_id NOT IN (SELECT paper_id FROM feedback) "
                "AND 'arxiv:' || paper_id NOT IN (SELECT key FROM liked_papers)",
                (epoch_day(listings),),
            )
            self._fold_digests(cutoff)
            db.execute("DELETE FROM http_cache WHERE fetched_at < ?", (day,))
            db.execute("DELETE FROM summaries WHERE day < ?", (epoch_day(cutoff),))  # with their papers
            db.execute(
                "DELETE FROM resends WHERE date < ? AND NOT EXISTS (SELECT 1 FROM deliveries d "
                "WHERE d.date = resends.date AND d.email = resends.email)",
                (day,),
            )
        return drop

    def listings_cutoff(self, cutoff: dt.date) -> dt.date:
        """The first listing day kept whole: `cutoff`, or earlier when a digest that can still go
        out needs an older day's papers (a week's digest sent late holds papers of up to two
        weeks before its date). Digests dated before `cutoff` cannot: the plan gives up what is
        LATE_DAYS old, and the window is longer than that."""
        first = epoch_day(cutoff)
        waiting = self.conn.execute(
            "SELECT papers FROM deliveries WHERE date >= ? AND status IN (?, ?, ?)",
            (cutoff.isoformat(), *_UNFINISHED),
        )
        ids = {pid for (papers,) in waiting for pid in unpack_json(papers)}
        for chunk, marks in chunked(ids):
            found = self.conn.execute(
                f"SELECT MIN(day) FROM listed WHERE paper_id IN ({marks})", chunk
            ).fetchone()
            if found and found[0] is not None:
                first = min(first, int(found[0]))
        return EPOCH + dt.timedelta(days=first)

    def _fold_listings(self, cutoff: dt.date, now: dt.datetime) -> None:
        """Days before `cutoff`: their papers' ids into `seen_papers`, the papers themselves go."""
        day, first_kept = cutoff.isoformat(), epoch_day(cutoff)
        folded = self.conn.execute(
            "SELECT paper_id, MIN(day), MAX(version) FROM listed WHERE day < ? GROUP BY paper_id",
            (first_kept,),
        ).fetchall()
        self.conn.executemany(
            "INSERT INTO seen_papers (paper_id, first_day, version) VALUES (?, ?, ?) "
            # MIN/MAX of two values: LEAST/GREATEST on PostgreSQL
            f"ON CONFLICT (paper_id) DO UPDATE SET first_day = {self.LEAST}(seen_papers.first_day, "
            "excluded.first_day), version = CASE WHEN seen_papers.version IS NULL THEN excluded.version "
            "WHEN excluded.version IS NULL THEN seen_papers.version "
            f"ELSE {self.GREATEST}(seen_papers.version, excluded.version) END",
            [(self.paper_key(pid), first, version) for pid, first, version in folded],
        )
        self.conn.execute("DELETE FROM listed WHERE day < ?", (first_kept,))
        self.conn.execute("DELETE FROM snapshot_papers WHERE date < ?", (day,))
        self.conn.execute("DELETE FROM snapshot_rows_v8 WHERE date < ?", (day,))
        # which announcement days a source listed: later runs read only the newest before a run
        # date (`last_days`), so of the compacted days each source keeps its newest
        self.conn.execute(
            "DELETE FROM source_days WHERE date < ? AND day < (SELECT MAX(s.day) FROM source_days s "
            "WHERE s.source = source_days.source AND s.date < ?)",
            (day, day),
        )
        self.conn.execute(
            "UPDATE snapshots SET compacted_at = ? WHERE date < ? AND compacted_at IS NULL", (iso(now), day)
        )

    def _fold_digests(self, cutoff: dt.date) -> None:
        """Finished digests before `cutoff`: who got one, and who failed, into `ledger_days`."""
        day = cutoff.isoformat()
        self.conn.execute(
            # only the new ones: a PostgreSQL identity would spend a number on each conflict
            "INSERT INTO readers (email) SELECT DISTINCT email FROM deliveries "
            "WHERE date < ? AND status IN (?, ?) AND email NOT IN (SELECT email FROM readers)",
            (day, *_FINISHED),
        )
        rows = self.conn.execute(
            "SELECT d.date, r.id, d.status FROM deliveries d JOIN readers r ON r.email = d.email "
            "WHERE d.date < ? AND d.status IN (?, ?)",
            (day, *_FINISHED),
        ).fetchall()
        by_day: dict[int, tuple[set[int], set[int]]] = {}
        for date, reader, status in rows:
            sent, failed = by_day.setdefault(epoch_day(dt.date.fromisoformat(date)), (set(), set()))
            (sent if status == DeliveryStatus.SENT else failed).add(reader)
        for number, (sent, failed) in by_day.items():
            old = self.conn.execute(
                "SELECT sent, failed FROM ledger_days WHERE day = ?", (number,)
            ).fetchone()
            if old is not None:  # digests of the day settled after the day was first compacted
                sent |= set(members(old[0])) - failed
                failed |= set(members(old[1])) - sent
            self.conn.execute(
                "INSERT OR REPLACE INTO ledger_days (day, sent, failed) VALUES (?, ?, ?)",
                (number, bitmap(sent), bitmap(failed)),
            )
        self.conn.execute("DELETE FROM deliveries WHERE date < ? AND status IN (?, ?)", (day, *_FINISHED))
        self.conn.execute("DELETE FROM held WHERE date < ?", (day,))  # a weekly reader who left
        self.conn.execute(
            "DELETE FROM unsent_explanations WHERE date < ? AND NOT EXISTS (SELECT 1 FROM deliveries d "
            "WHERE d.date = unsent_explanations.date AND d.email = unsent_explanations.email)",
            (day,),
        )

    def shrink(self, *, force: bool = False) -> Shrink:
        """Checkpoint the WAL into the file and, when worth it (or `force`), VACUUM."""
        before = self.file_bytes()
        self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = int(self.conn.execute("PRAGMA page_size").fetchone()[0])
        free = int(self.conn.execute("PRAGMA freelist_count").fetchone()[0]) * page_size
        size = int(self.conn.execute("PRAGMA page_count").fetchone()[0]) * page_size
        vacuum = force or (free >= VACUUM_BYTES and free >= VACUUM_SHARE * size)
        if vacuum and free:
            self.conn.execute("VACUUM")
            self.conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        return Shrink(before, self.file_bytes(), vacuum and bool(free))

    def file_bytes(self) -> int:
        """The state file and its WAL, in bytes."""
        total = 0
        for suffix in ("", "-wal"):
            path = self.path.with_name(self.path.name + suffix)
            total += path.stat().st_size if path.exists() else 0
        return total

    def table_sizes(self) -> dict[str, int]:
        """Bytes of pages per table and index (SQLite's dbstat), largest first; {} without dbstat."""
        try:
            rows = self.conn.execute(
                "SELECT name, SUM(pgsize) FROM dbstat GROUP BY name ORDER BY 2 DESC"
            ).fetchall()
        except StoreError:  # a SQLite built without dbstat: sizes are a nicety
            return {}
        return {name: int(size) for name, size in rows}


def _owner(name: str) -> str:
    """The table an index or table page belongs to, by name (enough for the tables above)."""
    for table in ("snapshot_papers", "listed", "deliveries", "http_cache"):
        if table in name:
            return table
    return name
