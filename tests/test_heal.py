"""A killed run heals itself (issue 22): no stored day is ever skipped, the run after a crash
sends what the crash left, a kill while publishing leaves every file whole, and unknown digests
are resent once when `[delivery] unknown = "resend"`.

Real listings (tests/data/arxiv_rss_2024-11-28_all.xml split over dates, served by a local HTTP
server), a real SMTP server (aiosmtpd), real `digest` processes where a kill is the point. The
plan's part is tested with plain values (marked `unit`).
"""

from __future__ import annotations

import datetime as dt
import os
import re
import signal
import sqlite3
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from collections import Counter, defaultdict
from collections.abc import Iterable
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.smtp import Envelope, Session
from cli_runner import ROOT, base_env, digest
from conftest import ARXIV_ALL
from pytest_httpserver import HTTPServer
from smtp_servers import AcceptAll, smtp_server
from werkzeug import Request, Response

from digest.core.models import Delivery, Paper, Subscriber
from digest.core.status import DeliveryStatus
from digest.plan import STOPPED_WHILE_SENDING, LedgerView, StoredDay, plan_run

# -- real listings, a day at a time ------------------------------------------------------------------
_ITEM = re.compile(rb"<item>.*?</item>\s*", re.S)
KEYWORDS = [
    "language model", "graph", "quantum", "galaxy", "reinforcement learning", "diffusion",
    "transformer", "dark matter", "neural network", "optimization", "black hole", "LLM",
    "superconduct", "topolog", "benchmark", "robot", "spectr", "causal", "privacy", "protein",
]  # fmt: skip


def split_listing(days: int, per_day: int, source: Path = ARXIV_ALL) -> list[bytes]:
    """The captured listing cut into `days` listings of `per_day` items each (disjoint)."""
    body = source.read_bytes()
    items = _ITEM.findall(body)
    assert len(items) >= days * per_day, len(items)
    head, tail = body[: body.index(b"<item>")], body[body.rindex(b"</item>") + len(b"</item>") :]
    return [head + b"".join(items[d * per_day : (d + 1) * per_day]) + tail for d in range(days)]


class Listings:
    """What the local server lists now: the test sets `today` before each run."""

    def __init__(self, httpserver: HTTPServer, bodies: dict[str, bytes]) -> None:
        self.bodies = bodies
        self.today = next(iter(bodies))
        httpserver.clear_all_handlers()  # one Listings at a time
        httpserver.expect_request("/rss").respond_with_handler(self.respond)

    def respond(self, _request: Request) -> Response:
        return Response(self.bodies[self.today], content_type="application/rss+xml")


def readers(n: int, *, feeds: int = 0) -> str:
    out = []
    for i in range(n):
        words = ", ".join(f'"{KEYWORDS[(i + k) % len(KEYWORDS)]}"' for k in range(1 + i % 3))
        feed = "feed = true\n" if i < feeds else ""
        out.append(f'[[subscribers]]\nemail = "reader{i:02d}@example.org"\nkeywords = [{words}]\n'
                   f"max_papers = {5 + i % 7}\n{feed}")  # fmt: skip
    return "\n".join(out)


def write_config(
    tmp_path: Path,
    url: str,
    smtp_port: int,
    *,
    concurrency: int = 2,
    rate: float = 0,
    unknown: str = "report",
    n_readers: int = 20,
    feeds: int = 0,
) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    config = tmp_path / "digest.toml"
    config.write_text(f"""
[state]
path = "state/digest.sqlite3"

[[sources]]
name = "arxiv"
kind = "feed"
url = "{url}"

[fetch]
retries = 0

[output]
dir = "public"
base_url = "https://papers.example.org/digest/"

[delivery]
retry_backoff = 0.01
unknown = "{unknown}"

[smtp]
host = "127.0.0.1"
port = {smtp_port}
security = "none"
concurrency = {concurrency}
rate = {rate}
timeout = 10
from = "Paper Digest <digest@example.org>"
""")  # fmt: skip
    (tmp_path / "subscribers.toml").write_text(readers(n_readers, feeds=feeds))
    return config


# -- what arrived --------------------------------------------------------------------------------
_ABSTRACT = re.compile(r"^\s*Abstract: https?://arxiv\.org/abs/(\S+)", re.M)


def papers_of(message: EmailMessage) -> list[str]:
    body = message.get_body(("plain",))
    assert body is not None
    return _ABSTRACT.findall(body.get_content())


def delivered(handler: AcceptAll) -> dict[tuple[str, str], set[str]]:
    """(reader, paper) -> the Message-IDs of the messages that carried it."""
    out: dict[tuple[str, str], set[str]] = defaultdict(set)
    for message in handler.messages():
        reader = message["To"].addresses[0].addr_spec
        for paper in papers_of(message):
            out[reader, paper].add(str(message["Message-ID"]))
    return dict(out)


def run(config: Path, date: str, *args: str) -> str:
    result = digest("run", "--config", str(config), "--date", date, *args, cwd=config.parent)
    assert result.returncode in (0, 4), result.stderr + result.stdout
    return result.stdout


def state(tmp_path: Path, sql: str, *args: object) -> list[tuple[Any, ...]]:
    with sqlite3.connect(tmp_path / "state" / "digest.sqlite3") as db:
        return db.execute(sql, args).fetchall()


DATES = ["2026-06-10", "2026-06-11", "2026-06-12"]


def every_day_run(
    tmp_path: Path, httpserver: HTTPServer, bodies: dict[str, bytes]
) -> dict[tuple[str, str], set[str]]:
    """The reference: every date run once, nothing killed."""
    listings = Listings(httpserver, bodies)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver.url_for("/rss"), port)
        for date in bodies:
            listings.today = date
            run(config, date)
        return delivered(handler)


# -- 1. no stored day is skipped -------------------------------------------------------------------
def test_a_day_only_fetched_is_sent_late_by_the_next_run(tmp_path: Path, httpserver: HTTPServer) -> None:
    bodies = dict(zip(DATES, split_listing(3, 60), strict=True))
    reference = every_day_run(tmp_path / "reference", httpserver, bodies)
    assert len(reference) > 100  # enough pairs to mean something

    listings = Listings(httpserver, bodies)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver.url_for("/rss"), port)
        listings.today = DATES[0]
        run(config, DATES[0])
        listings.today = DATES[1]
        fetched = digest("fetch", "--config", str(config), "--date", DATES[1], cwd=tmp_path)
        assert fetched.returncode == 0, fetched.stderr
        listings.today = DATES[2]
        out = run(config, DATES[2])
        assert f"late: {DATES[1]}: its digests were never recorded" in out, out
        got = delivered(handler)
        late = [m for m in handler.messages() if "11 Jun 2026" in str(m["Subject"])]
        assert late, "the fetched day's digests carry its own date"
        assert run(config, DATES[2]).count("late:") == 0  # recorded now: not planned twice
    assert set(got) == set(reference)  # the same (reader, paper) pairs...
    assert all(len(ids) == 1 for ids in got.values())  # ...each in one message


def test_listings_fetched_before_the_first_run_are_history_not_digests(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    bodies = dict(zip(DATES, split_listing(3, 30), strict=True))
    listings = Listings(httpserver, bodies)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver.url_for("/rss"), port)
        for date in DATES[:2]:  # trying it out: `digest fetch`, `digest preview`...
            listings.today = date
            assert digest("fetch", "--config", str(config), "--date", date, cwd=tmp_path).returncode == 0
        listings.today = DATES[2]
        out = run(config, DATES[2])
        assert "late:" not in out
        assert {m["Subject"].split("·")[-1].strip() for m in handler.messages()} == {"12 Jun 2026"}


PAUSE_AFTER_START_RUN = """
import os, runpy, signal, sys
from digest.store.snapshots import SnapshotStore

start_run = SnapshotStore.start_run

def paused(self, date, now):
    # The snapshot is stored and the run recorded as started; the digests are not recorded yet.
    # Stop here, so the test can see that state and SIGKILL the process at this very point.
    start_run(self, date, now)
    os.kill(os.getpid(), signal.SIGSTOP)

SnapshotStore.start_run = paused
sys.argv = ["digest", *sys.argv[1:]]
runpy.run_module("digest", run_name="__main__")
"""


def _stopped(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "T"
    except (OSError, IndexError):
        return False


def kill_before_recording(config: Path, date: str) -> None:
    """`digest run` in a process of its own, SIGKILLed after it stored the day's snapshot and
    before it recorded the day's digests."""
    script = config.parent / "pause_after_start_run.py"
    script.write_text(PAUSE_AFTER_START_RUN)
    env = base_env() | {"PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, str(script), "run", "--config", str(config), "--date", date],
        cwd=config.parent, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while not _stopped(proc.pid):
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            assert time.monotonic() < deadline, "the run never reached the point"
            time.sleep(0.01)
        tmp_path = config.parent
        assert state(tmp_path, "SELECT count(*) FROM snapshot_papers WHERE date = ?", date)[0][0] > 0
        assert state(tmp_path, "SELECT count(*) FROM deliveries WHERE date = ?", date) == [(0,)]
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
        if proc.stderr:
            proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.e2e
def test_a_run_killed_before_recording_its_digests_is_healed_by_the_next_date(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    bodies = dict(zip(DATES, split_listing(3, 60), strict=True))
    reference = every_day_run(tmp_path / "reference", httpserver, bodies)

    listings = Listings(httpserver, bodies)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver.url_for("/rss"), port)
        listings.today = DATES[0]
        run(config, DATES[0])
        listings.today = DATES[1]
        kill_before_recording(config, DATES[1])
        assert state(tmp_path, "SELECT status FROM runs WHERE date = ?", DATES[1]) == [("running",)]
        listings.today = DATES[2]  # the next morning: the listing of DATES[1] is gone from the feed
        out = run(config, DATES[2])
        assert f"late: {DATES[1]}: its digests were never recorded" in out, out
        got = delivered(handler)
    assert set(got) == set(reference)
    assert all(len(ids) == 1 for ids in got.values())


@pytest.mark.e2e
def test_a_run_killed_before_recording_then_run_again_for_its_own_date(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    bodies = dict(zip(DATES[:2], split_listing(2, 60), strict=True))
    reference = every_day_run(tmp_path / "reference", httpserver, bodies)
    listings = Listings(httpserver, bodies)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver.url_for("/rss"), port)
        listings.today = DATES[0]
        run(config, DATES[0])
        listings.today = DATES[1]
        kill_before_recording(config, DATES[1])
        out = run(config, DATES[1])  # the same morning, by hand or by `digest serve`'s catch-up
        assert "late:" not in out  # it is the run date: planned as such
        got = delivered(handler)
    assert set(got) == set(reference)
    assert all(len(ids) == 1 for ids in got.values())


# -- 2. the morning after a crash mid-send -----------------------------------------------------------
class KillAfter(AcceptAll):
    """Accepts messages; after the n-th, SIGKILLs the client before it can record the send."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n, self.pid = n, 0

    def keep(self, envelope: Envelope, session: Session) -> None:
        super().keep(envelope, session)
        if len(self.received) == self.n and self.pid:
            os.kill(self.pid, signal.SIGKILL)


def run_subprocess(config: Path, date: str) -> subprocess.Popen[str]:
    env = base_env() | {"PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        [sys.executable, "-m", "digest", "run", "--config", str(config), "--date", date],
        cwd=config.parent, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip


@pytest.mark.e2e
@pytest.mark.parametrize("unknown", ["report", "resend"])
def test_the_morning_after_a_crash_mid_send_sends_the_rest_late_and_reports_the_unknown(
    tmp_path: Path, httpserver: HTTPServer, unknown: str
) -> None:
    bodies = dict(zip(DATES[:2], split_listing(2, 60), strict=True))
    listings = Listings(httpserver, bodies)
    handler = KillAfter(4)
    with smtp_server(handler) as (_host, port, _):
        config = write_config(tmp_path, httpserver.url_for("/rss"), port, concurrency=1, unknown=unknown)
        listings.today = DATES[0]
        proc = run_subprocess(config, DATES[0])
        handler.pid = proc.pid
        proc.communicate(timeout=120)
        assert proc.returncode == -signal.SIGKILL
        assert len(handler.received) == 4  # the 4th arrived; its 'sent' was never recorded
        caught = state(tmp_path, "SELECT email, message_id FROM deliveries WHERE status = 'sending'")
        assert len(caught) == 1
        (email, message_id), = caught  # fmt: skip
        pending = state(
            tmp_path, "SELECT count(*) FROM deliveries WHERE date = ? AND status = 'pending'", DATES[0]
        )
        assert pending[0][0] > 0

        listings.today = DATES[1]
        out = run(config, DATES[1])
        day0 = [m for m in handler.messages() if "10 Jun 2026" in str(m["Subject"])]
        readers_day0 = Counter(m["To"].addresses[0].addr_spec for m in day0)
        if unknown == "report":
            assert (
                f"unknown (maybe delivered, not resent): {email}: {DATES[0]}: {STOPPED_WHILE_SENDING}" in out
            )
            assert readers_day0[email] == 1
            again = run(config, DATES[1])  # reported again, still not resent
            assert f"unknown (maybe delivered, not resent): {email}" in again
        else:
            assert f"resent (was unknown, same Message-ID): {email}: {DATES[0]}" in out
            copies = [m for m in day0 if m["To"].addresses[0].addr_spec == email]
            assert len(copies) == 2 and {str(m["Message-ID"]) for m in copies} == {message_id}
            third = digest("run", "--config", str(config), "--date", DATES[1], cwd=tmp_path)
            assert third.returncode == 0, third.stdout  # nothing unknown left to report
        # everyone else got the earlier day's digest exactly once, late
        assert all(n == 1 for who, n in readers_day0.items() if who != email)
        recorded = state(
            tmp_path, "SELECT email FROM deliveries WHERE date = ? AND status = 'sent'", DATES[0]
        )
        assert {who for (who,) in recorded} >= set(readers_day0) - {email}


# -- 3. a kill while publishing ------------------------------------------------------------------
def _temporary(path: Path) -> bool:
    """A file `write_atomic` was writing (`.NAME.XXXX.tmp`): a SIGKILL can leave one behind."""
    return path.name.startswith(".") and path.name.endswith(".tmp")


def published(tmp_path: Path) -> dict[Path, float]:
    public = tmp_path / "public"
    files = [p for p in public.rglob("*") if p.is_file() and not _temporary(p)] if public.is_dir() else []
    return {p: p.stat().st_mtime for p in files}


def parse_all(paths: Iterable[Path]) -> None:
    for path in paths:
        if path.suffix in (".xml", ".atom"):
            ET.parse(path)  # a torn file would not parse
        elif path.suffix == ".html":
            text = path.read_text()
            assert text.lower().startswith("<!doctype html>"), path
            assert "<html" not in text or text.rstrip().endswith("</html>"), path


@pytest.mark.e2e
def test_a_kill_while_publishing_leaves_every_file_whole_and_the_next_run_publishes(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    bodies = dict(zip(DATES[:2], split_listing(2, 200), strict=True))
    listings = Listings(httpserver, bodies)
    with smtp_server(AcceptAll()) as (_host, port, _handler):
        config = write_config(tmp_path, httpserver.url_for("/rss"), port, n_readers=400, feeds=400)
        listings.today = DATES[0]
        run(config, DATES[0])
        before = published(tmp_path)
        assert len(list((tmp_path / "public" / "feeds").glob("*.xml"))) == 400

        listings.today = DATES[1]
        proc = run_subprocess(config, DATES[1])
        deadline = time.monotonic() + 120
        # publishing has begun when a file of the first publish is rewritten: kill then
        while not any(p.exists() and p.stat().st_mtime != t for p, t in before.items()):
            assert proc.poll() is None, "the run ended before it was killed: make publishing longer"
            assert time.monotonic() < deadline
            time.sleep(0.002)
        proc.kill()
        proc.communicate(timeout=30)
        assert proc.returncode == -signal.SIGKILL
        after = published(tmp_path)
        unchanged = [p for p, t in before.items() if after.get(p) == t]
        assert unchanged, "killed after publishing had finished: nothing to show"
        parse_all(after)  # the old files and the new, each whole

        rerun = run(config, DATES[1])
        assert "publish failed" not in rerun
        again = published(tmp_path)
        parse_all(again)
        assert all(again[p] != after[p] for p in unchanged if p in again), "the next run rewrites them"
        # and no temporary file of the killed run is left to be served with the site
        assert list((tmp_path / "public").rglob(".*.tmp")) == []
        assert state(tmp_path, "SELECT status FROM runs WHERE date = ?", DATES[1]) == [("ok",)]


# -- the plan's part, with plain values ------------------------------------------------------------
D1, D2, D3 = (dt.date(2026, 6, d) for d in (10, 11, 12))
ADA = Subscriber(email="ada@example.org", keywords=("graph",))
P1 = Paper(id="2406.00001", title="Graph networks", abstract="On graphs.")
P2 = Paper(id="2406.00002", title="More graph work", abstract="On graphs.")
P3 = Paper(id="2406.00003", title="Graph of today", abstract="On graphs.")


@pytest.mark.unit
def test_plan_an_unrecorded_day_is_planned_on_its_own_papers_and_sent_late() -> None:
    day = StoredDay(D2, [P1, P2], sent={ADA.email: {P2.id}})  # P2 went out somehow: not again
    plan = plan_run(D3, [ADA], [P3], LedgerView(unrecorded=[day]))
    assert plan.recorded == [D2, D3]
    assert plan.recovered == [(D2, 1)]
    late, today = plan.sends
    assert (late.date, today.date) == (D2, D3)
    assert late.record and late.late is not None and late.late.papers == (P1.id,)
    assert late.digest is not None and [m.paper.id for m in late.digest.matches] == [P1.id]
    assert today.late is None and [m.paper.id for m in today.digest.matches] == [P3.id]  # type: ignore[union-attr]
    assert [d.date for d in plan.digests] == [D3]  # today's only: the summary's "matched"


@pytest.mark.unit
def test_plan_an_unrecorded_days_rows_are_not_sent_twice() -> None:
    row = Delivery(D2, ADA.email, DeliveryStatus.PENDING, 0, None, None, (P1.id,))
    day = StoredDay(D2, [P1], rows={ADA.email: row})
    plan = plan_run(D3, [ADA], [], LedgerView(earlier=[row], unrecorded=[day]))
    assert [s.date for s in plan.sends] == [D2]


@pytest.mark.unit
def test_plan_unknown_resend_resends_once_under_the_first_message_id() -> None:
    row = Delivery(D2, ADA.email, DeliveryStatus.UNKNOWN, 1, "no reply", "<id@x>", (P1.id,))
    reported = plan_run(D3, [ADA], [], LedgerView(earlier=[row]))
    assert reported.unknown and not reported.sends and not reported.resends
    resent = plan_run(D3, [ADA], [], LedgerView(earlier=[row]), unknown="resend")
    assert [(s.date, s.resend_message_id) for s in resent.sends] == [(D2, "<id@x>")]
    assert resent.resends == [(D2, ADA.email)] and not resent.unknown
    once = plan_run(D3, [ADA], [], LedgerView(earlier=[row], resent={(D2, ADA.email)}), unknown="resend")
    assert once.unknown and not once.sends  # came back unknown after its resend: reported
    forced = plan_run(D3, [ADA], [], LedgerView(earlier=[row], resent={(D2, ADA.email)}), retry_unknown=True)
    assert len(forced.sends) == 1 and not forced.resends
    # today's own digest caught mid-send by a crash, the same way
    today = {ADA.email: dataclass_replace(row, date=D3, status=DeliveryStatus.SENDING)}
    again = plan_run(D3, [ADA], [P3], LedgerView(today=today), unknown="resend")
    assert [s.resend_message_id for s in again.sends] == ["<id@x>"] and again.resends == [(D3, ADA.email)]


def dataclass_replace(row: Delivery, **changes: object) -> Delivery:
    import dataclasses

    return dataclasses.replace(row, **changes)  # type: ignore[arg-type]


# -- the store's part --------------------------------------------------------------------------------
def test_store_unrecorded_days_from_the_first_run_on(tmp_path: Path) -> None:
    from digest.store import Store

    now = dt.datetime(2026, 6, 12, 7, tzinfo=dt.UTC)
    days = [dt.date(2026, 6, d) for d in range(8, 13)]
    with Store.open(tmp_path / "state.sqlite3") as store:
        for day in days:
            store.record_snapshot(day, [P1], [], sources=["arxiv"], now=now)
        assert store.unrecorded_days(days[-1], since=days[0]) == []  # no run yet: history only
        store.start_run(days[1], now)  # died before recording
        store.start_run(days[2], now)
        with store.transaction():
            store.mark_recorded(days[2], now, by=days[2])
        # days[0]: fetched before any run; days[3]: only fetched; days[4]: the run date
        assert store.unrecorded_days(days[4], since=days[0]) == [days[1], days[3]]
        assert store.unrecorded_days(days[4], since=days[2]) == [days[3]]  # LATE_DAYS
        # an unknown digest that goes out again is noted as resent when it leaves (mark_sending)
        store.mark_pending(days[1], ADA.email, [P1.id], now)
        store.mark_sending(days[1], ADA.email, "<m@x>", now)
        store.mark_status(days[1], ADA.email, DeliveryStatus.UNKNOWN, "stopped while sending", now)
        store.mark_sending(days[1], ADA.email, "<m@x>", now)
        assert store.resent_unknown(since=days[0]) == {(days[1], ADA.email)}
        assert store.resent_unknown(since=days[2]) == set()


def test_store_migration_counts_finished_runs_and_runs_with_digests_as_recorded(tmp_path: Path) -> None:
    from digest.store import MIGRATIONS, Store

    path = tmp_path / "state.sqlite3"
    db = sqlite3.connect(path)
    for statement in ";".join(MIGRATIONS[:5]).split(";"):
        if statement.strip():
            db.execute(statement)
    db.execute("PRAGMA user_version = 5")
    for day, finished, status in [
        ("2026-06-09", "x", "ok"),
        ("2026-06-10", None, "running"),
        ("2026-06-11", None, "running"),
    ]:
        db.execute(
            "INSERT INTO runs (date, started_at, finished_at, status) VALUES (?, 's', ?, ?)",
            (day, finished, status),
        )
        db.execute("INSERT INTO snapshots (date, fetched_at, sources) VALUES (?, 'f', '[]')", (day,))
    db.execute(
        "INSERT INTO deliveries (date, email, status, updated_at) VALUES ('2026-06-10', 'a@x', 'sending', 'u')"
    )
    db.commit()
    db.close()
    with Store.open(path) as store:
        assert store.unrecorded_days(dt.date(2026, 6, 12), since=dt.date(2026, 6, 1)) == [
            dt.date(2026, 6, 11)
        ]


@pytest.mark.unit
def test_the_github_workflow_resends_unknown_digests_unless_told_otherwise() -> None:
    from ruamel.yaml import YAML

    workflow = YAML(typ="safe").load((ROOT / ".github" / "workflows" / "digest.yml").read_text())
    step = next(s for s in workflow["jobs"]["run"]["steps"] if s.get("name") == "Run the digest")
    assert step["env"]["DIGEST_DELIVERY__UNKNOWN"] == "${{ vars.DIGEST_DELIVERY__UNKNOWN || 'resend' }}"
