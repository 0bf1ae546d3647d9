"""Bounded state (issue 15): `[state] keep_days`, compaction, `digest state`.

Everything runs on real SQLite files and the real listings of tests/data, with ids rewritten per
day so a month of days can be simulated; the runs are the product's own functions in a run's
order (record_snapshot → new_on → read_ledger → plan_run → record_plan → mark_sending/mark_sent →
retention.apply), the way bench/state_growth.py drives them.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import os
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from cli_runner import digest
from conftest import ARXIV_ALL, ARXIV_TRIMMED, HF_DAY

from digest.config import OutputConfig, Settings, SourceConfig, StateConfig
from digest.config.sections import MIN_KEEP_DAYS
from digest.core.errors import ConfigError
from digest.core.models import Paper, merge_papers
from digest.core.status import DeliveryStatus
from digest.pipeline import retention
from digest.pipeline.daily import read_ledger, record_plan
from digest.pipeline.fetching import new_on
from digest.pipeline.sending import late_digest
from digest.plan import LATE_DAYS, plan_run
from digest.profiles import load_subscribers
from digest.sources.arxiv import parse_arxiv_rss
from digest.sources.hf import parse_hf_daily
from digest.store import Store

START = dt.date(2027, 3, 1)
READERS = """
[[subscribers]]
email = "ada@example.org"
keywords = ["learning", "model", "language"]
feed = true

[[subscribers]]
email = "bob@example.org"
keywords = ["quantum", "graph", "network"]

[[subscribers]]
email = "cy@example.org"
keywords = ["agent", "vision", "data"]
max_papers = 3
"""


def settings(tmp: Path, name: str, keep_days: int) -> Settings:
    return Settings(
        state=StateConfig(path=tmp / name / "state.sqlite3", keep_days=keep_days),
        sources=[SourceConfig(name="arxiv", kind="arxiv_rss", url="https://rss.arxiv.org/rss/cs")],
        output=OutputConfig(dir=tmp / name / "public"),
    )


def base_listing() -> list[Paper]:
    arxiv = parse_arxiv_rss(ARXIV_TRIMMED.read_bytes(), "arxiv")
    hf = parse_hf_daily(HF_DAY.read_bytes(), "arxiv")
    return merge_papers(arxiv + hf)


def listing_of(base: list[Paper], day: int) -> list[Paper]:
    """Day `day`'s listing: a sliding window of ids (each paper listed on ~7 days, as arXiv
    lists cross-lists and replacements), a few ids listed every day for the whole month (so past
    the window only `seen_papers` knows them) and one listed on day 1 and again on day 30, with a
    new version then (an update, never new)."""
    papers = [dataclasses.replace(p, id=f"2503.{day * 7 + i:05d}", version=1) for i, p in enumerate(base[5:])]
    papers += [dataclasses.replace(p, id=f"2412.{i:05d}", version=1) for i, p in enumerate(base[:4])]
    if day in (1, 30):
        papers.append(dataclasses.replace(base[4], id="2411.99999", version=1 if day == 1 else 2))
    return papers


def run_day(
    settings: Settings, store: Store, subs: Any, day: int, *, fail: set[str]
) -> list[tuple[Any, ...]]:
    """One run of START + day; digests to the addresses in `fail` stay pending (their server
    was down), to go out late. Returns what was sent: (date, email, paper ids, explanations)."""
    date = START + dt.timedelta(days=day)
    now = dt.datetime.combine(date, dt.time(7), dt.UTC)
    store.record_snapshot(date, listing_of(base_listing(), day), [], sources=["arxiv"], now=now)
    result = new_on(store, date)
    assert result is not None
    store.start_run(date, now)
    plan = plan_run(date, subs, result.new, read_ledger(store, date, result))
    record_plan(store, plan, now)
    sent = []
    for send in plan.sends:
        email = send.subscriber.email
        if email in fail:
            continue
        if send.late is not None:  # built from the ledger and that day's snapshot, as the sender does
            digest_ = late_digest(store, send, {})
        else:
            assert send.digest is not None
            digest_ = send.digest
        why = [(m.paper.id, m.score, m.hits) for m in digest_.matches]
        sent.append((send.date, email, why))
        store.mark_sending(send.date, email, f"<{day}.{email}>", now)
        store.mark_sent(send.date, email, "250 ok", now)
    store.finish_run(date, "ok", {}, now)
    retention.apply(settings, store, date, now)
    return sent


def ledger(store: Store) -> dict[tuple[str, str], str]:
    """(date, email) → status, whole rows and compacted ones alike."""
    rows = store.conn.execute("SELECT date, email, status FROM deliveries").fetchall()
    out = {(d, e): s for d, e, s in rows}
    compacted = {(d.isoformat(), e): s for (d, e), s in store.history().items()}
    assert not out.keys() & compacted.keys()  # a digest is in one place or the other
    return out | compacted


def test_a_month_sends_the_same_with_and_without_retention(tmp_path: Path) -> None:
    (tmp_path / "subscribers.toml").write_text(READERS)
    subs = load_subscribers(tmp_path / "subscribers.toml", source_names=["arxiv"])
    bounded, unlimited = settings(tmp_path, "bounded", MIN_KEEP_DAYS), settings(tmp_path, "all", 0)
    outage = {4: {"bob@example.org"}, 5: {"bob@example.org"}, 19: {"ada@example.org", "cy@example.org"}}
    with Store.from_config(bounded.state) as a, Store.from_config(unlimited.state) as b:
        for day in range(1, 41):
            fail = outage.get(day, set())
            sent_a = run_day(bounded, a, subs, day, fail=fail)
            sent_b = run_day(unlimited, b, subs, day, fail=fail)
            assert sent_a == sent_b, f"day {day}"
            if day in (6, 20):  # the digests held back by the outage went out late, whole
                assert any(d < START + dt.timedelta(days=day) for d, _, _ in sent_a)
        assert ledger(a) == ledger(b)
        # the bounded state did compact: only the window is whole, the rest is ids and statuses
        assert a.compacted_days() == 40 - MIN_KEEP_DAYS
        assert b.compacted_days() == 0
        assert a.oldest_full_day() == START + dt.timedelta(days=40 - MIN_KEEP_DAYS + 1)
        assert a.conn.execute("SELECT COUNT(*) FROM seen_papers").fetchone()[0] > 0
        # the diff of every later day agrees, whatever ids it is asked about
        ids = [f"2503.{i:05d}" for i in range(0, 400)] + [f"2412.{i:05d}" for i in range(4)] + ["2411.99999"]
        for day in range(MIN_KEEP_DAYS, 42):
            date = START + dt.timedelta(days=day)
            assert a.seen_before(date, ids) == b.seen_before(date, ids), day
        # the paper listed on day 1 and again on day 30 with version 2 was an update, not new
        assert a.seen_before(START + dt.timedelta(days=31), ["2411.99999"])["2411.99999"].version == 2
        assert a.path.stat().st_size < b.path.stat().st_size


def test_compaction_keeps_unfinished_digests_whole(tmp_path: Path) -> None:
    s = settings(tmp_path, "s", MIN_KEEP_DAYS)
    with Store.from_config(s.state) as store:
        old = START
        now = dt.datetime.combine(old, dt.time(7), dt.UTC)
        store.record_snapshot(old, listing_of(base_listing(), 1), [], sources=["arxiv"], now=now)
        store.mark_pending(
            old, "ada@example.org", ["2503.00007"], now, explanations={"2503.00007": {"score": 1}}
        )
        store.mark_pending(old, "bob@example.org", ["2503.00008"], now)
        store.mark_sending(old, "bob@example.org", "<m>", now)
        store.mark_sent(old, "bob@example.org", "250 ok", now)
        for day in range(1, 20):
            date = old + dt.timedelta(days=day)
            store.record_snapshot(date, [], [], sources=["arxiv"], now=now)
        drop = store.compact(retention.cutoff(s, store, old + dt.timedelta(days=19)), now)
        assert drop.days == 5 and drop.digests == 1 and drop.sent_rows == 1
        pending = store.delivery(old, "ada@example.org")
        assert pending is not None and pending.status == DeliveryStatus.PENDING
        assert store.explanations(old, "ada@example.org") == {"2503.00007": {"score": 1}}
        assert store.delivery(old, "bob@example.org") is None  # moved to the history
        assert ledger(store)[(old.isoformat(), "bob@example.org")] == "sent"
        assert store.snapshot(old) == []  # the papers went; that the day was stored did not


def test_keep_days_covers_late_digests_and_the_feeds() -> None:
    assert MIN_KEEP_DAYS == LATE_DAYS + 1  # config cannot import the plan: the two must agree
    with pytest.raises(ValueError, match="late digests"):
        StateConfig(keep_days=MIN_KEEP_DAYS - 1)
    assert StateConfig(keep_days=0).keep_days == 0  # keep everything
    too_short = Settings(state=StateConfig(keep_days=20), output=OutputConfig(feed_days=30, archive_days=30))
    with pytest.raises(ConfigError, match="feed_days"):
        retention.check_window(too_short)
    retention.check_window(Settings())  # the defaults are consistent
    with pytest.raises(ValueError, match="archive_days"):
        OutputConfig(feed_days=14, archive_days=7)


def test_the_cache_keeps_what_is_fetched_every_day(tmp_path: Path) -> None:
    from digest.core.models import FetchResult

    s = settings(tmp_path, "s", MIN_KEEP_DAYS)
    with Store.from_config(s.state) as store:
        for day in range(30):
            date = START + dt.timedelta(days=day)
            now = dt.datetime.combine(date, dt.time(7), dt.UTC)
            feed = FetchResult("https://rss.arxiv.org/rss/cs", b"<rss/>", 200, f'"{day}"', None, False)
            hf = FetchResult(
                f"https://hf.co/api/daily_papers?date={date}", b"[]", 200, f'"h{day}"', None, False
            )
            store.record_snapshot(date, [], [feed, hf], sources=["arxiv"], now=now)
            retention.apply(s, store, date, now)
        cache = store.http_cache()
        assert cache["https://rss.arxiv.org/rss/cs"].etag == '"29"'
        assert len(cache) == 1 + MIN_KEEP_DAYS  # the day URLs of the window, and the feed's one


def build_big_state(path: Path, days: int) -> list[str]:
    """`days` days of the whole arXiv listing, ids rewritten per day; returns every id."""
    arxiv = parse_arxiv_rss(ARXIV_ALL.read_bytes(), "arxiv")
    ids = []
    with Store.open(path) as store:
        for day in range(days):
            date = START + dt.timedelta(days=day)
            papers = [dataclasses.replace(p, id=f"{day:04d}.{i:05d}") for i, p in enumerate(arxiv)]
            ids += [p.id for p in papers]
            store.record_snapshot(
                date, papers, [], sources=["arxiv"], now=dt.datetime.combine(date, dt.time(7), dt.UTC)
            )
    return ids


COMPACT_CHILD = """
import datetime as dt, sys
from digest.config import Settings, StateConfig
from digest.pipeline import retention
from digest.store import Store
s = Settings(state=StateConfig(path=sys.argv[1], keep_days=15))
today = dt.date.fromisoformat(sys.argv[2])
with Store.from_config(s.state) as store:
    print("compacting", flush=True)
    retention.apply(s, store, today, dt.datetime.now(dt.UTC), vacuum=True)
print("done", flush=True)
"""


@pytest.mark.e2e
def test_a_kill_during_compaction_leaves_a_usable_state(tmp_path: Path) -> None:
    days = 20
    original = tmp_path / "original.sqlite3"
    ids = build_big_state(original, days)
    today = START + dt.timedelta(days=days - 1)
    with Store.open(original) as store:
        expected = store.seen_before(today + dt.timedelta(days=1), ids)
    outcomes = set()
    for n, delay in enumerate((0.0, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8, 1.6)):
        work = tmp_path / f"kill{n}"
        work.mkdir()
        path = work / "state.sqlite3"
        for suffix in ("", "-wal", "-shm"):
            if original.with_name(original.name + suffix).exists():
                shutil.copy(original.with_name(original.name + suffix), path.with_name(path.name + suffix))
        child = subprocess.Popen(
            [sys.executable, "-c", COMPACT_CHILD, str(path), today.isoformat()],
            stdout=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONPATH": str(Path(__file__).parent.parent)},
        )
        assert child.stdout is not None
        assert child.stdout.readline().strip() == "compacting"
        time.sleep(delay)
        child.send_signal(signal.SIGKILL)
        child.wait(timeout=60)
        with sqlite3.connect(path) as raw:
            assert raw.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        with Store.open(path) as store:  # opens, migrated, and knows the same past
            assert store.seen_before(today + dt.timedelta(days=1), ids) == expected
            compacted = store.compacted_days()
            assert compacted in (0, days - 15)  # all of it or none of it
            outcomes.add(compacted)
            retention.apply(
                Settings(state=StateConfig(path=path, keep_days=15)),
                store,
                today,
                dt.datetime.now(dt.UTC),
            )
            assert store.compacted_days() == days - 15  # and the next run finishes the job
    assert 0 in outcomes  # some kills landed before the commit (else the delays are too long)


def test_digest_state_reports_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "state" / "digest.sqlite3"
    path.parent.mkdir()
    build_big_state(path, 18)
    config = tmp_path / "digest.toml"
    config.write_text(f'[state]\npath = "{path}"\nkeep_days = 15\n')
    shown = digest("state", "--config", str(config), cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "18 days stored" in shown.stdout
    assert f"oldest full day {START}" in shown.stdout
    assert "snapshot_papers" in shown.stdout
    assert (
        f"retention would compact: the days before {START + dt.timedelta(days=3)}: 3 snapshot days"
        in shown.stdout
    )
    compacted = digest("state", "--config", str(config), "--compact", cwd=tmp_path)
    assert compacted.returncode == 0, compacted.stderr
    assert "compacted: the days before" in compacted.stdout
    assert "3 compacted" in compacted.stdout
    assert f"oldest full day {START + dt.timedelta(days=3)}" in compacted.stdout
    again = digest("state", "--config", str(config), cwd=tmp_path)
    assert "retention would compact: nothing" in again.stdout
    missing = digest(
        "state",
        "--config",
        str(config),
        cwd=tmp_path / "state",
        env={"DIGEST_STATE__PATH": str(tmp_path / "none.sqlite3")},
    )
    assert missing.returncode != 0 and "no state yet" in missing.stderr


def test_the_state_growth_benchmark_runs(tmp_path: Path) -> None:
    """bench/state_growth.py works (its numbers are in BENCHMARKS.md, not asserted here)."""
    sys.path.insert(0, str(Path(__file__).parent.parent / "bench"))
    import state_growth

    result = state_growth.simulate(
        "two-categories", days=20, readers=20, keep_days=15, every=10, folder=tmp_path, log=lambda _: None
    )
    assert [p["day"] for p in result["curve"]] == [10, 20]
    assert result["curve"][-1]["oldest_full"] == str(state_growth.FIRST_DAY + dt.timedelta(days=5))
    assert result["digests_sent"] > 0
    text = state_growth.report([result], 1.0)
    assert text.startswith(state_growth.SECTION)
    report = tmp_path / "BENCHMARKS.md"
    report.write_text("# Benchmarks\n\n## Stages\n\nkept\n")
    state_growth.write_section(report, text)
    state_growth.write_section(report, text)  # replaced, not appended twice
    assert report.read_text().count(state_growth.SECTION) == 1
    assert "## Stages\n\nkept" in report.read_text()
