"""The lean `[state] keep_days` window (schema 9): what it packs, that a state written by the
previous schema reads the same after the upgrade, that a digest rebuilt from the ledger shows
the same marks as the one sent, and that the state stays bounded over simulated months.

Real SQLite files, the real listings of tests/data and the benchmark's own reader generator.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
import tempfile
import zlib
from pathlib import Path

import pytest
from conftest import ARXIV_ALL, ARXIV_TRIMMED

from bench import scenario, state_growth
from digest.config import OutputConfig, Settings, StateConfig
from digest.core.models import Paper
from digest.pipeline import retention
from digest.plan import LedgerView, explained, explanations, plan_run
from digest.profiles import load_subscribers
from digest.render.views import Views
from digest.sources.arxiv import parse_arxiv_rss
from digest.store import MIGRATIONS, Store
from digest.store.codec import bitmap, members, pack_json, paper_id, paper_key, unpack_json

D1 = dt.date(2027, 3, 1)
NOW = dt.datetime(2027, 3, 1, 7, tzinfo=dt.UTC)


@pytest.mark.parametrize(
    "pid", ["2411.12345", "0001.00001", "9912.99999", "2411.1234", "hep-th/9901001", "oai:x:1", "12345.12345"]
)
def test_paper_keys_round_trip_and_only_modern_arxiv_ids_become_integers(pid: str) -> None:
    key = paper_key(pid)
    assert paper_id(key) == pid
    assert isinstance(key, int) == (pid in ("2411.12345", "0001.00001", "9912.99999"))


def test_bitmaps_hold_exactly_their_members() -> None:
    for numbers in ([], [0], [1, 7, 8, 9, 1000], list(range(0, 5000, 3))):
        assert members(bitmap(numbers)) == sorted(numbers)
    assert len(bitmap(range(1, 1001))) == 126  # 1,000 readers sent a digest: 126 bytes


def test_compressed_json_round_trips_and_reads_every_older_form() -> None:
    value = [0.5, "Schrödinger 🐈", {"near": ["Ünïcode “quotes”", 0.25]}, None, 2**40]
    packed = pack_json(value)
    assert packed[:1] == b"x" and unpack_json(packed) == value  # zlib-compressed, read back the same
    assert len(zlib.decompress(packed)) < len(json.dumps(value))  # compact UTF-8, not \u escapes
    # rows written by json.dumps before: compressed or plain text, NaN among them
    old = json.dumps([float("nan"), "é", 1.5])
    for form in (zlib.compress(old.encode()), old, old.encode()):
        got = unpack_json(form)
        assert got[0] != got[0] and got[1:] == ["é", 1.5]
    assert unpack_json(b'{"a":[1,2]}') == {"a": [1, 2]}
    # what orjson refuses to write: a lone surrogate (an emoji cut in half), an int past 64 bits
    for odd in (["Truncated emoji \ud83d", 0.5], [2**70], {"near": ["\udfff", 1.0]}):
        assert unpack_json(pack_json(odd)) == odd


def _schema_8_state(path: Path, papers: list[Paper]) -> None:
    """A state file as digest wrote it at schema 8: rows compressed one by one, sent_papers,
    seen_papers keyed by text, ledger_history rows, a raw HTTP body, explanations by id."""
    conn = sqlite3.connect(path)
    for statement in ";".join(MIGRATIONS[:8]).split(";"):
        if statement.strip():
            conn.execute(statement)
    day = D1.isoformat()
    conn.execute("INSERT INTO snapshots (date, fetched_at, sources) VALUES (?, ?, '[\"arxiv\"]')", (day, day))
    conn.executemany(
        "INSERT INTO snapshot_papers (date, paper_id, version, data) VALUES (?, ?, ?, ?)",
        [(day, p.id, p.version, zlib.compress(p.to_json().encode())) for p in papers],
    )
    conn.execute(
        "INSERT INTO runs (date, started_at, finished_at, status) VALUES (?, ?, ?, 'ok')", (day, day, day)
    )
    conn.execute("INSERT INTO recorded_days (date, recorded_at, by_run) VALUES (?, ?, ?)", (day, day, day))
    why = {papers[0].id: {"score": 2.0, "hits": [["learning", "title", 0, 8]]}}
    conn.execute(
        "INSERT INTO deliveries (date, email, status, attempts, reply, message_id, papers, explanations, "
        "updated_at) VALUES (?, 'ada@example.org', 'sent', 1, '250 ok', '<m@x>', ?, ?, ?)",
        (day, json.dumps([papers[0].id]), zlib.compress(json.dumps(why).encode()), day),
    )
    conn.execute(
        "INSERT INTO sent_papers (email, paper_id, date, sent_at) VALUES ('ada@example.org', ?, ?, ?)",
        (papers[0].id, day, day),
    )
    old = (D1 - dt.date(1970, 1, 1)).days - 100
    conn.executemany(
        "INSERT INTO seen_papers (paper_id, first_day, version) VALUES (?, ?, ?)",
        [("2301.00005", old, 3), ("hep-th/9901001", old, None)],
    )
    conn.execute("INSERT INTO readers (id, email) VALUES (1, 'old@example.org')")
    conn.execute("INSERT INTO ledger_history (day, reader, status) VALUES (?, 1, 'failed')", (old,))
    conn.execute(
        "INSERT INTO http_cache (url, etag, last_modified, body, fetched_at) VALUES ('https://x/rss', "
        "'\"e\"', NULL, ?, ?)",
        (b"<rss>raw</rss>", day),
    )
    conn.execute("PRAGMA user_version = 8")
    conn.commit()
    conn.close()


def test_a_schema_8_state_reads_the_same_after_the_upgrade_and_compacts(tmp_path: Path) -> None:
    papers = parse_arxiv_rss(ARXIV_TRIMMED.read_bytes(), "arxiv")[:3]
    path = tmp_path / "state.sqlite3"
    _schema_8_state(path, papers)
    ids = [p.id for p in papers] + ["2301.00005", "hep-th/9901001", "2301.99999"]
    later = D1 + dt.timedelta(days=1)
    with Store.open(path) as store:
        assert store.conn.execute("PRAGMA user_version").fetchone()[0] == len(MIGRATIONS)
        assert store.snapshot(D1) == papers
        seen = store.seen_before(later, ids)
        assert {pid: s.first_seen for pid, s in seen.items() if pid in {p.id for p in papers}} == {
            p.id: D1 for p in papers
        }
        assert seen["2301.00005"].version == 3 and seen["hep-th/9901001"].version is None
        assert "2301.99999" not in seen
        assert store.seen_before(D1, [p.id for p in papers]) == {}  # a day never sees itself
        assert store.sent_for_papers([papers[0].id, papers[1].id]) == {"ada@example.org": {papers[0].id}}
        assert store.sent_paper_ids("ada@example.org") == {papers[0].id}
        assert store.explanations(D1, "ada@example.org")[papers[0].id]["score"] == 2.0
        assert store.http_cache()["https://x/rss"].body == b"<rss>raw</rss>"
        old = D1 - dt.timedelta(days=100)
        assert store.history() == {(old, "old@example.org"): "failed"}
        # compacting the old day moves it into the new history form and keeps the diff's past
        store.compact(later, NOW)
        assert store.snapshot(D1) == []
        assert store.seen_before(later + dt.timedelta(days=1), ids) == store.seen_before(later, ids)
        assert store.seen_before(later, ids) == seen
        assert store.history() == {(old, "old@example.org"): "failed", (D1, "ada@example.org"): "sent"}
        assert store.conn.execute("SELECT COUNT(*) FROM snapshot_rows_v8").fetchone()[0] == 0


def test_why_a_paper_matched_is_kept_until_sent_and_after_only_for_a_feed(tmp_path: Path) -> None:
    why = {"a": [1.5, "LLM", "title"], "b": [1.0, "graph", "abstract"]}
    with Store.open(tmp_path / "s.sqlite3") as store:
        store.mark_pending(D1, "feed@example.org", ["a", "b"], NOW, explanations=why, keep_explanations=True)
        store.mark_pending(D1, "mail@example.org", ["a", "b"], NOW, explanations=why, keep_explanations=False)
        store.mark_pending(D1, "late@example.org", ["b"], NOW, explanations=why, keep_explanations=False)
        for email in ("feed@example.org", "mail@example.org", "late@example.org"):
            expected = {"b": why["b"]} if email.startswith("late") else why
            assert store.explanations(D1, email) == expected, email  # a late digest can say why
        for email in ("feed@example.org", "mail@example.org"):
            store.mark_sending(D1, email, f"<{email}>", NOW)
            store.mark_sent(D1, email, "250 ok", NOW)
        assert store.forget_sent_explanations() == 1
        assert store.explanations(D1, "feed@example.org") == why  # its private feed says why
        assert store.explanations(D1, "mail@example.org") == {}  # nothing reads it again
        assert store.explanations(D1, "late@example.org") == {"b": why["b"]}  # not sent yet
        history = store.matched_history("feed@example.org", [D1])
        assert history == {D1: [("a", why["a"]), ("b", why["b"])]}
        assert store.forget_sent_explanations() == 0


def test_a_digest_rebuilt_from_the_ledger_marks_the_same_words() -> None:
    """The ledger keeps which term hit which field, not where: the views find the places again.
    On the real listing of all arXiv and 300 generated readers, every view and every feed
    abstract comes out the same from the ledger's form as from the match itself."""
    listing = parse_arxiv_rss(ARXIV_ALL.read_bytes(), "arxiv")
    with tempfile.TemporaryDirectory() as tmp:
        scenario.write_toml(scenario.generate(listing, 300, seed=7), Path(tmp) / "s.toml")
        subscribers = load_subscribers(Path(tmp) / "s.toml", source_names=["arxiv", "hf"])
    plan = plan_run(D1, subscribers, listing, LedgerView())
    original, rebuilt = Views(), Views()
    compared = 0
    for send in plan.sends:
        assert send.digest is not None
        kept = json.loads(json.dumps(explanations(send.digest.matches, where=False)))  # as stored
        for match in send.digest.matches:
            again = explained(match.paper, kept[match.paper.id])
            assert {(h.term, h.field) for h in again.hits} == {(h.term, h.field) for h in match.hits}
            assert rebuilt(again.paper, again.hits) == original(match.paper, match.hits)
            text, spans = original.abstract(match.paper, match.hits)
            text_again, spans_again = rebuilt.abstract(again.paper, again.hits)
            assert text_again == text and set(spans_again) == set(spans)
            compared += 1
    assert compared > 3000


@pytest.mark.e2e
@pytest.mark.slow
def test_the_state_stays_bounded_over_simulated_months(tmp_path: Path) -> None:
    """bench/state_growth.py for 45 days at 60 readers (the window is 15): past the window the
    file grows by the compacted ids alone, and the window's days weigh the same whatever the day."""
    result = state_growth.simulate(
        "two-categories", days=45, readers=60, keep_days=None, every=15, folder=tmp_path, log=lambda *_: None
    )
    sizes = {point["day"]: point["bytes"] for point in result["curve"]}
    assert result["keep_days"] == 15
    # 404 new ids a day past the window: some 7 KB a day in seen_papers; nothing else grows
    assert sizes[45] - sizes[30] < 15 * 20_000, sizes
    with Store.open(tmp_path / "state.sqlite3") as store:
        assert store.oldest_full_day() == state_growth.FIRST_DAY + dt.timedelta(days=45 - 15)
        assert store.conn.execute("SELECT COUNT(*) FROM unsent_explanations").fetchone()[0] == 0
        finished = store.conn.execute("SELECT papers FROM deliveries").fetchall()
        assert len(finished) == 15 * result["digests_sent"] // 45
        assert all(unpack_json(papers) for (papers,) in finished)


def test_the_default_window_follows_the_feeds() -> None:
    assert retention.window_days(Settings()) == 15
    longer = Settings(output=OutputConfig(feed_days=30, archive_days=90))
    assert retention.window_days(longer) == 30
    retention.check_window(longer)  # unset keep_days never conflicts with feed_days
    assert retention.window_days(Settings(state=StateConfig(keep_days=0))) == 0
    assert retention.window_days(Settings(state=StateConfig(keep_days=40))) == 40


def test_compaction_keeps_each_source_s_newest_announcement_day(tmp_path: Path) -> None:
    """`source_days` (which announcement days each source listed) shrinks with the window, and
    every run date inside it still finds the same last day of each source (the backfill's start)."""
    with Store.open(tmp_path / "s.sqlite3") as store:
        for n in range(30):
            date = D1 + dt.timedelta(days=n)
            days = {"arxiv": [date - dt.timedelta(days=1)]} | ({"journal": [date]} if n < 10 else {})
            store.record_snapshot(date, [], [], sources=list(days), now=NOW, days=days)
        cutoff = D1 + dt.timedelta(days=15)
        before = {d: store.last_days(before=d) for d in (cutoff + dt.timedelta(days=k) for k in range(16))}
        store.compact(cutoff, NOW)
        assert {d: store.last_days(before=d) for d in before} == before
        assert before[cutoff]["journal"] == D1 + dt.timedelta(days=9)  # failing since: still known
        rows = store.conn.execute("SELECT COUNT(*) FROM source_days").fetchone()[0]
        assert rows == 15 + 1 + 1  # the window's arXiv days, and the newest compacted day of each


def test_an_id_of_other_digits_stays_text_and_never_meets_an_arxiv_key() -> None:
    """Fullwidth digits are digits to Python's \\d: such an id must not become 241112345, the key
    of the real arXiv id 2411.12345 (the migration's GLOB takes ASCII digits only, too)."""
    fullwidth = "２４１１.１２３４５"
    assert paper_key(fullwidth) == fullwidth and paper_key("2411.12345") == 241112345
