"""The state file's schema: the numbered migrations, oldest first. Data only, no logic.

Migration N (1-based) brings a file from `PRAGMA user_version` N-1 to N; `sqlite.SqliteState`
applies the missing ones, each in its own transaction. A migration is never edited once released:
a change is a new one at the end. Statements are split on ";", so none may appear in a comment.
"""

from __future__ import annotations

MIGRATIONS: list[str] = [
    # 1: snapshots, validators, runs, the send ledger
    """
    CREATE TABLE snapshot_papers (
        date TEXT NOT NULL,             -- the run date (YYYY-MM-DD) whose listing held the paper
        paper_id TEXT NOT NULL,
        version INTEGER,
        data TEXT NOT NULL,             -- Paper.to_json()
        PRIMARY KEY (date, paper_id)
    );
    CREATE INDEX snapshot_papers_by_id ON snapshot_papers (paper_id, date);
    CREATE TABLE snapshots (
        date TEXT PRIMARY KEY,
        fetched_at TEXT NOT NULL,
        sources TEXT NOT NULL           -- JSON list of source names
    );
    CREATE TABLE http_cache (
        url TEXT PRIMARY KEY,
        etag TEXT,
        last_modified TEXT,
        body BLOB NOT NULL,
        fetched_at TEXT NOT NULL
    );
    CREATE TABLE runs (
        date TEXT PRIMARY KEY,
        started_at TEXT NOT NULL,
        finished_at TEXT,
        status TEXT NOT NULL,           -- running | ok | partial | failed
        summary TEXT                    -- JSON
    );
    CREATE TABLE deliveries (
        date TEXT NOT NULL,
        email TEXT NOT NULL,
        status TEXT NOT NULL CHECK (status IN ('pending', 'sending', 'sent', 'failed', 'unknown')),
        attempts INTEGER NOT NULL DEFAULT 0,
        reply TEXT,                     -- the server's last reply
        message_id TEXT,
        papers TEXT NOT NULL DEFAULT '[]',  -- JSON list of the paper ids in this digest
        updated_at TEXT NOT NULL,
        PRIMARY KEY (date, email)
    );
    CREATE TABLE sent_papers (
        email TEXT NOT NULL,
        paper_id TEXT NOT NULL,
        date TEXT NOT NULL,
        sent_at TEXT NOT NULL,
        PRIMARY KEY (email, paper_id)
    );
    CREATE TABLE suppressions (
        email TEXT PRIMARY KEY,
        reason TEXT NOT NULL,
        fingerprint TEXT NOT NULL,      -- the profile as it was: editing the profile lifts it
        at TEXT NOT NULL
    );
    """,
    # 2: why each paper of a digest matched, so private feeds can explain and highlight later
    """
    ALTER TABLE deliveries ADD COLUMN explanations TEXT NOT NULL DEFAULT '{}'
    """,
    # 3: which readers already got one of today's papers, in one query per run (sent_for_papers)
    """
    CREATE INDEX sent_papers_by_paper ON sent_papers (paper_id)
    """,
    # 4: how many papers matched in all, so a digest sent late still says "N more in the archive"
    # (NULL in rows written before: as many as their papers)
    """
    ALTER TABLE deliveries ADD COLUMN total INTEGER
    """,
    # 5: why an address is suppressed, so readers of the state test a kind instead of comparing
    # reason strings. Before this only `digest unsubscribe` wrote this exact reason; every other
    # row is a server's refusal.
    """
    ALTER TABLE suppressions ADD COLUMN kind TEXT NOT NULL DEFAULT 'refused'
        CHECK (kind IN ('unsubscribed', 'refused'));
    UPDATE suppressions SET kind = 'unsubscribed' WHERE reason = 'unsubscribed by the reader'
    """,
    # 6: which stored days had their digests recorded (written with the plan, in its transaction),
    # so a later run finds a day whose run died before recording them, or that was only fetched.
    # Days before this version count as recorded when their run finished or left ledger rows.
    # And which unknown digests `[delivery] unknown = "resend"` already resent once.
    """
    CREATE TABLE recorded_days (
        date TEXT PRIMARY KEY,          -- the day whose digests (possibly none) were recorded
        recorded_at TEXT NOT NULL,
        by_run TEXT NOT NULL            -- the run date that recorded them (later when healed)
    );
    INSERT INTO recorded_days (date, recorded_at, by_run)
        SELECT date, COALESCE(finished_at, started_at), date FROM runs
        WHERE finished_at IS NOT NULL OR EXISTS (SELECT 1 FROM deliveries d WHERE d.date = runs.date);
    CREATE TABLE resends (
        date TEXT NOT NULL,
        email TEXT NOT NULL,
        at TEXT NOT NULL,
        PRIMARY KEY (date, email)
    )
    """,
    # 7: the announcement days of each source a run stored, so the next run knows which it missed
    # (arXiv's RSS shows only the latest) and fetches them late, and a listing not newer than the
    # last is reported stale. `date` is the run date whose snapshot holds the day's papers.
    """
    CREATE TABLE source_days (
        source TEXT NOT NULL,           -- [[sources]] name
        day TEXT NOT NULL,              -- the announcement day (YYYY-MM-DD)
        date TEXT NOT NULL,             -- the run date it was stored under
        PRIMARY KEY (source, day)
    )
    """,
    # 8: bounded state (`[state] keep_days`, store/retention.py). Past the window, a day's snapshot
    # keeps only what the diff needs forever, one row per paper in `seen_papers` (the first day it
    # was listed, its highest version then), and its digests only who got one and how it ended, in
    # `ledger_history` (the reader by number, from `readers`: 16 bytes a row instead of 40).
    # `compacted_at` marks the snapshot days so reduced. Days are counted from 1970-01-01
    # (date(day * 86400, 'unixepoch') reads one): 3 bytes instead of 10 a row.
    """
    CREATE TABLE seen_papers (
        paper_id TEXT PRIMARY KEY,
        first_day INTEGER NOT NULL,     -- the first day a snapshot listed it, in days since 1970-01-01
        version INTEGER                 -- its highest version on the compacted days
    ) WITHOUT ROWID;
    CREATE TABLE readers (
        id INTEGER PRIMARY KEY,
        email TEXT NOT NULL UNIQUE
    );
    CREATE TABLE ledger_history (
        day INTEGER NOT NULL,           -- the digest's date, in days since 1970-01-01
        reader INTEGER NOT NULL,        -- readers.id
        status TEXT NOT NULL,           -- sent | failed
        PRIMARY KEY (day, reader)
    ) WITHOUT ROWID;
    ALTER TABLE snapshots ADD COLUMN compacted_at TEXT
    """,
    # 9: the window made lean ([state] keep_days; see store/retention.py for the numbers).
    # - A day's papers are one compressed JSON array (`snapshot_papers`, one row a day, 0.45 KB a
    #   paper instead of 1.1 KB); the rows of earlier versions are read from `snapshot_rows_v8`
    #   until retention compacts their days. Which day listed which paper, for the diff, is
    #   `listed` (ids only, no index beside it).
    # - `sent_papers` goes: which papers a reader was sent is the papers of their sent digests
    #   (`deliveries.papers`, compressed from now on), looked up through the days that listed them.
    # - The history keeps one row a day (`ledger_days`: the readers sent and failed, as bitmaps of
    #   `readers.id`) instead of a row per digest; `ledger_history` keeps the rows written before.
    # - `seen_papers` keys an arXiv id of the form 2411.12345 as the integer 241112345 (store/codec.py):
    #   half the bytes of the table that grows for ever.
    # - The HTTP cache stores bodies compressed (`packed` = 1).
    # - Why the papers of a digest matched is read again only by a late digest (not sent yet) and a
    #   private feed: a reader without a feed has it in `unsent_explanations`, deleted once the
    #   digest is sent (in one piece, so the pages come back whole), not in the deliveries row.
    """
    ALTER TABLE snapshot_papers RENAME TO snapshot_rows_v8;
    DROP INDEX snapshot_papers_by_id;
    CREATE TABLE snapshot_papers (
        date TEXT PRIMARY KEY,          -- the run date
        data BLOB NOT NULL              -- lzma(JSON array of Paper.to_json() texts), the listing's order
    );
    CREATE TABLE listed (
        paper_id TEXT NOT NULL,
        day INTEGER NOT NULL,           -- the run date whose snapshot lists it, in days since 1970-01-01
        version INTEGER,
        PRIMARY KEY (paper_id, day)
    ) WITHOUT ROWID;
    INSERT INTO listed (paper_id, day, version)
        SELECT paper_id, CAST(julianday(date) - 2440587.5 AS INTEGER), version FROM snapshot_rows_v8;
    DROP TABLE sent_papers;
    CREATE TABLE ledger_days (
        day INTEGER PRIMARY KEY,        -- the digests' date, in days since 1970-01-01
        sent BLOB NOT NULL,             -- bit n set: reader n (readers.id) was sent that day's digest
        failed BLOB NOT NULL            -- the same for digests that failed for good
    );
    CREATE TABLE seen_papers_v9 (
        paper_id PRIMARY KEY,           -- no type: an integer key stays an integer (store/codec.py)
        first_day INTEGER NOT NULL,
        version INTEGER
    ) WITHOUT ROWID;
    INSERT INTO seen_papers_v9 (paper_id, first_day, version)
        SELECT CASE WHEN paper_id GLOB '[0-9][0-9][0-9][0-9].[0-9][0-9][0-9][0-9][0-9]'
            THEN CAST(substr(paper_id, 1, 4) AS INTEGER) * 100000 + CAST(substr(paper_id, 6) AS INTEGER)
            ELSE paper_id END, first_day, version FROM seen_papers;
    DROP TABLE seen_papers;
    ALTER TABLE seen_papers_v9 RENAME TO seen_papers;
    ALTER TABLE http_cache ADD COLUMN packed INTEGER NOT NULL DEFAULT 0;
    CREATE TABLE unsent_explanations (
        date TEXT NOT NULL,
        email TEXT NOT NULL,
        data BLOB NOT NULL,             -- as deliveries.explanations, until the digest is sent
        PRIMARY KEY (date, email)
    ) WITHOUT ROWID
    """,
    # 10: weekly digests (a reader's `cadence = "weekly"`). On the days between two weekly digests,
    # a weekly reader's matches of the day are held here, in the shape of a deliveries row, for
    # their private feed (updated daily) and for the week's digest, which takes them (deletes
    # them) in the transaction that records it. Held rows never reach `sent`: the week's digest
    # in `deliveries` is what is sent.
    """
    CREATE TABLE held (
        date TEXT NOT NULL,             -- the day matched
        email TEXT NOT NULL,
        papers BLOB NOT NULL,           -- as deliveries.papers
        explanations BLOB NOT NULL,     -- as deliveries.explanations
        total INTEGER NOT NULL,         -- how many matched that day in all
        PRIMARY KEY (email, date)
    ) WITHOUT ROWID
    """,
    # 11: generated TL;DRs ([summaries]), one per (paper, version, model, language, prompt): a
    # paper is summarised once, whoever gets it and however often the run is repeated. `day` is
    # the run date that made it, in days since 1970-01-01: the daily caps count it, and retention
    # drops the rows of days past [state] keep_days with the papers they summarise.
    """
    CREATE TABLE summaries (
        paper_id TEXT NOT NULL,
        version INTEGER NOT NULL,       -- the paper's version, 0 when it has none
        model TEXT NOT NULL,
        language TEXT NOT NULL,
        prompt TEXT NOT NULL,           -- digest.summaries.PROMPT_ID: a new prompt, new summaries
        day INTEGER NOT NULL,
        text TEXT NOT NULL,             -- checked, plain text, one paragraph
        tokens_in INTEGER NOT NULL,
        tokens_out INTEGER NOT NULL,
        PRIMARY KEY (paper_id, language, model, prompt, version)
    ) WITHOUT ROWID;
    CREATE INDEX summaries_by_day ON summaries (day)
    """,
    # 12: how many parts of a channel's post went out (a message split to the service's size limit),
    # so a post refused at part 2 resumes there on the next run instead of posting part 1 again
    """
    ALTER TABLE deliveries ADD COLUMN parts_done INTEGER NOT NULL DEFAULT 0
    """,
    # 13: a weekly reader's held day is marked with the date of the week's digest that took it,
    # rather than deleted, so that running an earlier date again cannot hold it a second time
    # (and put papers the week's digest counted into the next week's); compaction drops them.
    """
    ALTER TABLE held ADD COLUMN taken TEXT
    """,
    # 14: a reader's sent digests by address (`sent_paper_ids`, which a late digest asks): without
    # it each late digest read every row of the window, some 150,000 at 10,000 readers
    """
    CREATE INDEX deliveries_by_email ON deliveries (email, status)
    """,
    # 15: readers who subscribed on the web (digest.web), beside subscribers.toml's: the profile
    # they confirmed, the one waiting for confirmation, and the nonce of the last confirmation
    # link sent (a newer link voids the older). The TOML file is never rewritten.
    """
    CREATE TABLE web_readers (
        email TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
        profile TEXT,                   -- JSON of the confirmed [[subscribers]] table, NULL until confirmed
        pending TEXT,                   -- JSON of a profile waiting for its confirmation link
        nonce TEXT NOT NULL,            -- in the confirmation link (a new subscribe replaces it)
        paused INTEGER NOT NULL DEFAULT 0,
        created TEXT NOT NULL,
        updated TEXT NOT NULL
    ) WITHOUT ROWID
    """,
    # 16: Hugging Face's week and month lists (`trending` profiles), as fetched for a digest: a
    # trending digest's papers need not be in any day's snapshot, and a late or resumed one is
    # rebuilt from here (`SnapshotStore.papers`). One row per (source, period), the newest fetch.
    # `trending_periods`: the newest period planned for each trending reader, kept past the
    # window (one row a reader), so a period is due until planned and never twice.
    """
    CREATE TABLE trending_lists (
        source TEXT NOT NULL,
        period TEXT NOT NULL,           -- "2026-W48" or "2026-11"
        date TEXT NOT NULL,             -- the run date that fetched it (retention drops old ones)
        data BLOB NOT NULL,             -- the papers, as snapshot_papers.data
        PRIMARY KEY (source, period)
    ) WITHOUT ROWID;
    CREATE TABLE trending_periods (
        email TEXT NOT NULL,
        kind TEXT NOT NULL,             -- "week" or "month"
        period TEXT NOT NULL,           -- the newest one planned
        PRIMARY KEY (email, kind)
    ) WITHOUT ROWID
    """,
    # 17: papers like these (digest.relevance). `liked_papers`: each liked or disliked paper a
    # profile names, resolved once (from a stored listing or the arXiv API) and kept past the
    # window, since a profile names it for years. `feedback`: what a reader said of a paper with
    # the "more / fewer like this" links, with the paper itself, joining their like/dislike set.
    """
    CREATE TABLE liked_papers (
        key TEXT NOT NULL PRIMARY KEY,  -- "arxiv:2411.01234", "doi:10.1145/..."
        data BLOB NOT NULL,             -- the paper, as one of snapshot_papers.data
        resolved TEXT NOT NULL          -- when (ISO time)
    ) WITHOUT ROWID;
    CREATE TABLE feedback (
        email TEXT NOT NULL,
        paper_id TEXT NOT NULL,
        direction TEXT NOT NULL,        -- "more" or "fewer": the newest word on a paper counts
        at TEXT NOT NULL,
        data BLOB,                      -- the paper, as one of snapshot_papers.data (NULL: not found)
        PRIMARY KEY (email, paper_id)
    ) WITHOUT ROWID;
    CREATE TABLE paper_vectors (
        paper_id TEXT NOT NULL,
        engine TEXT NOT NULL,           -- the embedding model ([relevance] engine)
        day INTEGER NOT NULL,           -- the run date that made it (days since 1970): retention
        data BLOB NOT NULL,             -- float16, digest.relevance.engine.to_bytes
        PRIMARY KEY (paper_id, engine)
    ) WITHOUT ROWID;
    CREATE INDEX paper_vectors_by_day ON paper_vectors (day)
    """,
    # 18: several runners on one PostgreSQL state (store/postgres.py). `queued`: the run date whose
    # plan sends this digest (the rows a runner that joins that run takes); `claimed_by`: the
    # runner that took it (a number whose advisory lock the runner holds while it lives). On a
    # SQLite file the run lock keeps one runner at a time: `queued` is written, `claimed_by` never.
    """
    ALTER TABLE deliveries ADD COLUMN queued TEXT;
    ALTER TABLE deliveries ADD COLUMN claimed_by INTEGER
    """,
]
