"""End to end through the CLI: a local HTTP server serving real captured listings, a real SMTP
server (aiosmtpd), a real SQLite state, `digest run` in this process (tests/cli_runner.py), or in
a subprocess of its own where the test kills it, signals it or holds its lock from outside."""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import hashlib
import os
import re
import signal
import sqlite3
import subprocess
import sys
import urllib.parse
from collections import Counter
from pathlib import Path

import feedparser
import pytest
from cli_runner import base_env, digest, digest_subprocess
from conftest import ARXIV_TRIMMED, DATA, HF_DAY
from pytest_httpserver import HTTPServer
from smtp_servers import AcceptAll, RejectRecipient, free_port, smtp_server
from werkzeug import Response

from digest.store import Store

ROOT = Path(__file__).parent.parent
DATE = "2026-06-12"

PROFILES = """
[[subscribers]]
email = "ada@example.org"
name = "Ada Lovelace"
keywords = ["LLM", "language model"]

[[subscribers]]
email = "grace@example.org"
name = "Grace Hopper"
all = true
feed = true

[[subscribers]]
email = "nobody@example.org"
keywords = ["xyzzy-nothing-matches"]
"""


def serve_listings(httpserver: HTTPServer, *, arxiv_status: int = 200, hf_status: int = 200) -> None:
    if hf_status != 200:  # every request of the source fails (one source down: tests/test_source_failures.py)
        httpserver.expect_request("/api/daily_papers").respond_with_data("down", status=hf_status)
    httpserver.expect_request(
        "/api/daily_papers", query_string={"date": DATE, "limit": "100", "p": "0"}
    ).respond_with_data(HF_DAY.read_bytes(), content_type="application/json")
    httpserver.expect_request("/api/daily_papers").respond_with_data("[]", content_type="application/json")
    if arxiv_status != 200:
        httpserver.expect_request("/rss/cs.CL").respond_with_data(
            b"<html><body>Service Unavailable</body></html>", status=arxiv_status, content_type="text/html"
        )
        return
    httpserver.expect_request("/rss/cs.CL").respond_with_handler(
        lambda _request: arxiv_of_run_date(httpserver)
    )


def arxiv_of_run_date(httpserver: HTTPServer) -> Response:
    """arXiv's listing as it stood on the run date, like the real feed, which changes every day.

    DATE gets the captured listing (announced 2024-11-28); an earlier run date the same listing a
    day earlier without one of its replacements, a later one an empty listing of a later day (arXiv's
    real empty shape). Serving one listing unchanged on two run dates would be a stale feed, which
    a run reports (exit 5, tests/test_source_failures.py). The run date is the one the run asked
    Hugging Face for (the hf source comes first; it asks for the run date, then the day before).
    """
    asked = [r.args["date"] for r, _ in httpserver.log if r.path == "/api/daily_papers" and "date" in r.args]
    run = dt.date.fromisoformat(asked[-1]) + dt.timedelta(days=1) if asked else dt.date.fromisoformat(DATE)
    shift = (run - dt.date.fromisoformat(DATE)).days
    day = (dt.date(2024, 11, 28) + dt.timedelta(days=shift)).strftime("%a, %d %b %Y").encode()
    captured = b"Thu, 28 Nov 2024"
    if shift == 0:
        body = ARXIV_TRIMMED.read_bytes()
    elif shift < 0:  # without one replacement (an update, never new: nobody's digest changes)
        held = re.compile(rb"\s*<item>(?:(?!</item>).)*?oai:arXiv.org:1401.3665v4.*?</item>", re.S)
        body = held.sub(b"", ARXIV_TRIMMED.read_bytes(), count=1).replace(captured, day)
    else:
        body = (DATA / "arxiv_rss_empty.xml").read_bytes().replace(captured, day)
    return Response(body, content_type="application/rss+xml")


def write_config(
    tmp_path: Path, httpserver: HTTPServer, smtp_port: int | None, *, concurrency: int = 2
) -> Path:
    smtp = (
        f'[smtp]\nhost = "127.0.0.1"\nport = {smtp_port}\nsecurity = "none"\nconcurrency = {concurrency}\n'
        'from = "Paper Digest <digest@example.org>"\n'
        if smtp_port
        else ""
    )
    config = tmp_path / "digest.toml"
    config.write_text(
        f"""
[state]
path = "state/digest.sqlite3"

[[sources]]
name = "hf"
kind = "hf_daily"
url = "{httpserver.url_for("/api/daily_papers")}"

[[sources]]
name = "arxiv"
kind = "arxiv_rss"
url = "{httpserver.url_for("/rss/cs.CL")}"

[fetch]
retries = 0

[output]
dir = "public"
base_url = "https://papers.example.org/digest/"

[delivery]
retry_backoff = 0.01

{smtp}
"""
    )
    (tmp_path / "subscribers.toml").write_text(PROFILES)
    return config


def state_bytes(tmp_path: Path) -> dict[str, str]:
    """A fingerprint of every file of the state (database, WAL, key)."""
    state = tmp_path / "state"
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(state.iterdir())
        if p.is_file() and not p.name.endswith(".lock") and not p.name.endswith("-shm")
    }


def state_dump(tmp_path: Path) -> list[str]:
    """The state database's content as SQL, whatever its files look like."""
    conn = sqlite3.connect(tmp_path / "state" / "digest.sqlite3")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()


def test_run_end_to_end_then_rerun_sends_nothing_twice(tmp_path: Path, httpserver: HTTPServer) -> None:
    serve_listings(httpserver)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver, port)
        first = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert first.returncode == 0, first.stderr + first.stdout
        assert handler.wait_for(2)
        assert sorted(handler.recipients()) == [
            "ada@example.org",
            "grace@example.org",
        ]  # nobody: no match, skipped
        for message in handler.messages():
            assert message["Message-ID"] and message["List-Unsubscribe"]
            assert message.get_content_type() == "multipart/alternative"
            assert [p.get_content_type() for p in message.iter_parts()] == ["text/plain", "text/html"]
        grace = next(m for m in handler.messages() if "grace@" in str(m["To"]))
        assert "new papers for you" in str(grace["Subject"])

        again = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert again.returncode == 0, again.stderr
        assert len(handler.recipients()) == 2, "a re-run of the same date must not send again"

    feed = feedparser.parse((tmp_path / "public" / "feed.xml").read_bytes())
    assert feed.bozo == 0 and len(feed.entries) > 30
    private = list((tmp_path / "public" / "feeds").glob("*.xml"))
    assert len(private) == 1 and "grace" not in private[0].name  # unguessable, not the address
    assert "new papers" in first.stdout


def test_failed_fetch_leaves_state_byte_for_byte(tmp_path: Path, httpserver: HTTPServer) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    assert digest("fetch", "--config", str(config), "--date", "2026-06-11", cwd=tmp_path).returncode == 0
    before = state_bytes(tmp_path)

    httpserver.clear()
    # Every source down: only then does a run stop before sending (one source down is not enough:
    # the others' readers get their mail, tests/test_source_failures.py).
    serve_listings(httpserver, arxiv_status=500, hf_status=500)
    failed = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert failed.returncode == 1
    error_lines = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert len(error_lines) == 1 and "/rss/cs.CL" in error_lines[0] and "500" in error_lines[0]
    assert "Traceback" not in failed.stderr
    assert state_bytes(tmp_path) == before
    assert not (tmp_path / "outbox").exists()

    httpserver.clear()
    serve_listings(httpserver)
    ok = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert ok.returncode == 0, ok.stderr
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2


def test_dry_run_sends_and_records_nothing(tmp_path: Path, httpserver: HTTPServer) -> None:
    serve_listings(httpserver)
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver, port)
        digest("fetch", "--config", str(config), "--date", "2026-06-11", cwd=tmp_path)
        before = state_bytes(tmp_path)
        dry = digest("run", "--config", str(config), "--date", DATE, "--dry-run", cwd=tmp_path)
        assert dry.returncode == 0, dry.stderr
        assert "rendered" in dry.stdout
        assert handler.recipients() == []
        assert state_bytes(tmp_path) == before


@pytest.mark.e2e
def test_second_run_exits_at_once_while_the_first_holds_the_lock(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    # held by this process, tried by another: the lock is meant to keep two processes apart
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store, store.lock():
        second = digest_subprocess("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert second.returncode == 3
    assert "another digest run is in progress" in second.stderr
    assert not (tmp_path / "outbox").exists()


def start_run(
    tmp_path: Path, httpserver: HTTPServer, smtp_port: int, emails: list[str]
) -> tuple[Path, subprocess.Popen[str]]:
    """`digest run` for DATE in a subprocess, one connection, every reader `all = true`: for the
    tests that stop it halfway (the caller gives the SMTP handler its pid)."""
    config = write_config(tmp_path, httpserver, smtp_port, concurrency=1)
    (tmp_path / "subscribers.toml").write_text(
        "".join(f'[[subscribers]]\nemail = "{e}"\nall = true\n\n' for e in emails)
    )
    env = base_env() | {"PYTHONPATH": str(ROOT)}  # as `digest_subprocess` uses
    proc = subprocess.Popen(
        [sys.executable, "-m", "digest", "run", "--config", str(config), "--date", DATE],
        cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    return config, proc


class KillAfter(AcceptAll):
    """Accepts messages; after the n-th, kills the client process before it can record the send."""

    def __init__(self, n: int) -> None:
        super().__init__()
        self.n = n
        self.pid: int | None = None

    def keep(self, envelope, session) -> None:  # type: ignore[no-untyped-def]
        super().keep(envelope, session)
        if len(self.received) == self.n and self.pid:
            os.kill(self.pid, signal.SIGKILL)


@pytest.mark.e2e
def test_killed_mid_send_then_rerun_everyone_gets_exactly_one(tmp_path: Path, httpserver: HTTPServer) -> None:
    serve_listings(httpserver)
    emails = [f"reader{i}@example.org" for i in range(8)]
    handler = KillAfter(3)
    with smtp_server(handler) as (_host, port, _):
        config, proc = start_run(tmp_path, httpserver, port, emails)
        handler.pid = proc.pid
        proc.wait(timeout=120)
        assert proc.returncode == -signal.SIGKILL
        assert len(handler.recipients()) == 3

        before = state_dump(tmp_path)
        dry = digest("run", "--config", str(config), "--date", DATE, "--dry-run", cwd=tmp_path)
        # a dry run tells what the real one would: the digest in flight is unknown, not rendered
        assert dry.returncode == 4, dry.stderr + dry.stdout
        assert "unknown" in dry.stdout and len(handler.recipients()) == 3
        assert state_dump(tmp_path) == before  # (not the bytes: closing folds the killed run's WAL in)

        rerun = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        # the digest in flight when the process died is 'unknown': reported, not resent blindly
        assert rerun.returncode == 4, rerun.stderr + rerun.stdout
        assert "unknown" in rerun.stdout
        counts = Counter(handler.recipients())
        assert counts == Counter(emails), f"every reader exactly once, got {counts}"


class SignalAfter(KillAfter):
    """Accepts messages; after the n-th, sends the client a signal (a systemd stop, a cancelled
    Action), as it waits for this very reply."""

    def __init__(self, n: int, signum: int) -> None:
        super().__init__(n)
        self.signum = signum

    def keep(self, envelope, session) -> None:  # type: ignore[no-untyped-def]
        AcceptAll.keep(self, envelope, session)
        if len(self.received) == self.n and self.pid:
            os.kill(self.pid, self.signum)


@pytest.mark.e2e
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_a_signal_mid_send_finishes_the_message_in_hand_and_exits_4(
    tmp_path: Path, httpserver: HTTPServer, signum: int
) -> None:
    serve_listings(httpserver)
    emails = [f"reader{i}@example.org" for i in range(8)]
    handler = SignalAfter(3, signum)
    with smtp_server(handler) as (_host, port, _):
        config, proc = start_run(tmp_path, httpserver, port, emails)
        handler.pid = proc.pid
        out, err = proc.communicate(timeout=120)
        # the message being sent when the signal came is recorded as sent; the rest wait
        assert proc.returncode == 4, err + out
        assert "emails sent" in out and "pending" in out
        assert len(handler.recipients()) == 3
        rows = Counter(status for (status,) in _ledger(tmp_path))
        assert rows == Counter({"sent": 3, "pending": 5}), rows

        rerun = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert rerun.returncode == 0, rerun.stderr + rerun.stdout
        assert Counter(handler.recipients()) == Counter(emails)  # nobody twice, nobody missed


def _ledger(tmp_path: Path) -> list[tuple[str]]:
    with sqlite3.connect(tmp_path / "state" / "digest.sqlite3") as db:
        return db.execute("SELECT status FROM deliveries").fetchall()


def test_demo_runs_offline_and_writes_emails_and_site(tmp_path: Path) -> None:
    result = digest("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    emails = list((tmp_path / "demo" / "outbox").glob("*.eml"))
    assert emails, result.stdout
    message = email.message_from_bytes(emails[0].read_bytes(), policy=email.policy.default)
    assert message.get_body(("html",)) is not None and message.get_body(("plain",)) is not None
    feed = feedparser.parse((tmp_path / "demo" / "public" / "feed.xml").read_bytes())
    assert feed.bozo == 0 and feed.entries
    assert (tmp_path / "demo" / "public" / "index.html").is_file()
    assert "day 2" in result.stdout and "digest.example.toml" in result.stdout


def test_demo_run_again_in_the_same_folder_says_why_it_sends_nothing(tmp_path: Path) -> None:
    first = digest("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    assert "earlier demo" not in first.stdout
    again = digest("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path)
    assert again.returncode == 0, again.stderr
    assert "an earlier demo's state is in" in again.stdout and "0 digests written" in again.stdout
    assert len(list((tmp_path / "demo" / "outbox").glob("*.eml"))) == 8  # nobody got a second copy


def test_demo_ignores_the_environment_of_the_real_digest(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text("DIGEST_SMTP__PORT=abc\n")  # a deployment's .env, say
    env = {"DIGEST_SECRET": "", "DIGEST_SOURCES": "garbage", "DIGEST_SMTP__HOST": "mail.example.org"}
    result = digest("demo", "--out", str(tmp_path / "demo"), cwd=tmp_path, env=env)
    assert result.returncode == 0, result.stderr
    assert len(list((tmp_path / "demo" / "outbox").glob("*.eml"))) == 8  # written, not sent


def test_bad_profile_is_one_clear_line_per_problem(tmp_path: Path, httpserver: HTTPServer) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    (tmp_path / "subscribers.toml").write_text('[[subscribers]]\nemail = "not-an-email"\nkeyowrds = ["x"]\n')
    result = digest("check", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 1
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any("keyowrds" in line and "subscribers.toml:3" in line for line in lines), result.stderr
    assert any("email" in line for line in lines)
    assert "Traceback" not in result.stderr


def test_version_and_help() -> None:
    version = digest("--version", cwd=ROOT)
    assert version.returncode == 0 and version.stdout.startswith("digest ")
    helped = digest("run", "--help", cwd=ROOT)
    assert helped.returncode == 0 and "Example: digest run" in helped.stdout


def test_digest_left_pending_by_a_mail_outage_goes_out_with_the_next_run(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, free_port())  # nobody listens: the server is down
    profiles = tmp_path / "subscribers.toml"
    profiles.write_text(profiles.read_text().replace("all = true\n", "all = true\nmax_papers = 5\n"))
    down = digest("run", "--config", str(config), "--date", "2026-06-11", cwd=tmp_path)
    assert down.returncode == 4, down.stderr
    assert "pending" in down.stdout and "connection failures" in down.stdout

    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver, port)
        up = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert up.returncode == 0, up.stderr + up.stdout
        subjects = sorted(f"{m['To'].addresses[0].addr_spec} {m['Subject']}" for m in handler.messages())
        late = next(
            m for m in handler.messages() if "grace" in str(m["To"]) and "11 Jun" in str(m["Subject"])
        )
    # the 11 June digests (the arXiv papers) arrive late, the 12 June ones (Hugging Face) on time
    assert any("11 Jun 2026" in s for s in subjects), subjects
    assert Counter(s.split()[0] for s in subjects)["grace@example.org"] == 2
    # a late digest says what it would have said on time: all 17 papers, 5 shown, 12 more
    assert "grace@example.org 17 new papers for you · 11 Jun 2026" in subjects, subjects
    assert "12 more" in late.get_body(preferencelist=("plain",)).get_content()


def test_refused_address_is_suppressed_listed_and_lifted_when_the_profile_changes(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    readers = '[[subscribers]]\nemail = "ada@example.org"\nall = true\n\n[[subscribers]]\nemail = "grace@example.org"\nall = true\n'
    with smtp_server(RejectRecipient("ada@example.org")) as (_host, port, handler):
        config = write_config(tmp_path, httpserver, port)
        (tmp_path / "subscribers.toml").write_text(readers)
        first = digest("run", "--config", str(config), "--date", "2026-06-11", cwd=tmp_path)
        assert first.returncode == 4, first.stderr + first.stdout
        assert "failed: ada@example.org: 550" in first.stdout
        assert handler.recipients() == ["grace@example.org"]

        check = digest("check", "--config", str(config), cwd=tmp_path)
        assert check.returncode == 0, check.stderr
        assert "suppressed: ada@example.org" in check.stdout and "edit the profile" in check.stdout

        second = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert second.returncode == 0, second.stderr + second.stdout
        assert handler.recipients() == ["grace@example.org", "grace@example.org"]

    # editing the profile lifts the suppression: the next run tries the address again
    edited = readers.replace("all = true", 'all = true\nempty = "send"', 1)
    (tmp_path / "subscribers.toml").write_text(edited)
    check = digest("check", "--config", str(config), cwd=tmp_path)
    assert "lifted on the next run" in check.stdout
    with smtp_server(AcceptAll()) as (_host, port, handler):
        config = write_config(tmp_path, httpserver, port)
        (tmp_path / "subscribers.toml").write_text(edited)
        third = digest("run", "--config", str(config), "--date", "2026-06-13", cwd=tmp_path)
        assert third.returncode == 0, third.stderr + third.stdout
        assert handler.recipients() == ["ada@example.org"]  # "nothing new today", and reachable again
    check = digest("check", "--config", str(config), cwd=tmp_path)
    assert "suppressed" not in check.stdout


def test_preview_shows_a_readers_papers_per_day(tmp_path: Path, httpserver: HTTPServer) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    for day in ("2026-06-11", DATE):
        assert digest("fetch", "--config", str(config), "--date", day, cwd=tmp_path).returncode == 0
    result = digest("preview", "ada@example.org", "--config", str(config), "--days", "2", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "2026-06-11" in result.stdout and DATE in result.stdout
    assert "matched" in result.stdout and "a day" in result.stdout
    unknown = digest("preview", "who@example.org", "--config", str(config), cwd=tmp_path)
    assert unknown.returncode == 1 and "no subscriber" in unknown.stderr


def test_check_reports_a_broken_state_and_a_broken_template_in_one_line(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = write_config(tmp_path, httpserver, None)
    (tmp_path / "state").mkdir()
    (tmp_path / "state" / "digest.sqlite3").write_text("garbage")
    checked = digest("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 1
    assert "cannot open the state database" in checked.stderr and "Traceback" not in checked.stderr

    (tmp_path / "state" / "digest.sqlite3").unlink()
    (tmp_path / "tpl").mkdir()
    (tmp_path / "tpl" / "digest.txt.j2").write_text("{{ nope(\n")
    config.write_text(config.read_text() + '\n[templates]\ndir = "tpl"\n')
    checked = digest("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 1
    assert "digest.txt.j2, line 1" in checked.stderr and "Traceback" not in checked.stderr
    # the archive's and feeds' templates too: found before any email goes out, not after
    (tmp_path / "tpl" / "digest.txt.j2").unlink()
    (tmp_path / "tpl" / "day.html.j2").write_text("{% if %}\n")
    checked = digest("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 1 and "day.html.j2, line 1" in checked.stderr, checked.stderr
    (tmp_path / "tpl" / "day.html.j2").write_bytes(b"\xff\xfe broken")
    checked = digest("check", "--config", str(config), cwd=tmp_path)
    assert checked.returncode == 1 and "day.html.j2: not UTF-8" in checked.stderr, checked.stderr


def test_a_snapshot_before_the_newest_or_in_the_future_is_refused_and_nothing_stored(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    # what is new on a day is what no earlier snapshot lists: a mistyped earlier --date would
    # make today's papers "seen before" every later day, and they would never be sent
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    assert digest("fetch", "--config", str(config), "--date", DATE, cwd=tmp_path).returncode == 0
    before = state_dump(tmp_path)
    for date in ("0206-06-12", "2026-06-11", "9999-12-31"):
        refused = digest("fetch", "--config", str(config), "--date", date, cwd=tmp_path)
        assert refused.returncode == 1, refused.stdout
        assert len(refused.stderr.strip().splitlines()) == 1 and f"--date {date}" in refused.stderr
        assert state_dump(tmp_path) == before
    again = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)  # the newest: fine
    assert again.returncode == 0, again.stderr
    dry = digest("run", "--config", str(config), "--date", "2026-06-11", "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr  # looking is fine: a dry run stores nothing


def test_an_output_folder_that_cannot_be_written_stops_the_run_before_it_fetches(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    (tmp_path / "public").write_text("a file where the site goes")
    failed = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert failed.returncode == 1
    assert "[output] dir" in failed.stderr and "is not a folder" in failed.stderr
    assert not (tmp_path / "state" / "digest.sqlite3").exists()
    assert not (tmp_path / "outbox").exists()
    assert not httpserver.log  # nothing fetched


def test_a_publish_failure_after_sending_is_exit_4_and_the_run_is_recorded(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    (tmp_path / "public").mkdir()
    (tmp_path / "public" / "feed.xml").mkdir()  # the feed cannot be written, the folder can
    result = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert result.returncode == 4, result.stderr + result.stdout
    assert "publish failed (the emails were sent)" in result.stdout
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2
    with sqlite3.connect(tmp_path / "state" / "digest.sqlite3") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("partial",)]


@pytest.mark.e2e
def test_an_earlier_days_unknown_digest_is_reported_until_retried_and_stale_ones_are_given_up(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    emails = [f"reader{i}@example.org" for i in range(5)]
    handler = KillAfter(2)
    with smtp_server(handler) as (_host, port, _):
        config, proc = start_run(tmp_path, httpserver, port, emails)
        handler.pid = proc.pid
        proc.wait(timeout=120)
        assert len(handler.recipients()) == 2  # the second arrived, but its send was never recorded

        # the next day: the pending ones go out late; the one in flight is reported, not resent
        for _ in range(2):  # ...on every run, until someone decides
            later = digest("run", "--config", str(config), "--date", "2026-06-13", cwd=tmp_path)
            assert later.returncode == 4, later.stderr + later.stdout
            assert f"unknown (maybe delivered, not resent): {emails[1]}: {DATE}" in later.stdout
        assert Counter(handler.recipients()) == Counter(emails)
        retried = digest(
            "run", "--config", str(config), "--date", "2026-06-13", "--retry-unknown", cwd=tmp_path
        )
        assert retried.returncode == 0, retried.stderr + retried.stdout
        assert Counter(handler.recipients()) == Counter(emails) + Counter([emails[1]])  # as documented
        # ...under the same Message-ID, so the reader's mail client can drop the second copy
        ids = [str(m["Message-ID"]) for m in handler.messages() if emails[1] in str(m["To"])]
        assert len(ids) == 2 and ids[0] == ids[1]

        # a digest still pending LATE_DAYS after its date is given up: reported once as failed,
        # also when the run sends others (a new reader here)
        with sqlite3.connect(tmp_path / "state" / "digest.sqlite3") as db:
            db.execute(
                "UPDATE deliveries SET status = 'pending' WHERE email = ? AND date = ?", (emails[0], DATE)
            )
        with (tmp_path / "subscribers.toml").open("a") as profiles:
            profiles.write('[[subscribers]]\nemail = "newcomer@example.org"\nall = true\nempty = "send"\n')
        stale = digest("run", "--config", str(config), "--date", "2026-06-27", cwd=tmp_path)
        assert stale.returncode == 4, stale.stderr + stale.stdout
        assert f"failed: {emails[0]}: {DATE}: not sent within 14 days" in stale.stdout
        assert "newcomer@example.org" in handler.recipients()
        assert digest("run", "--config", str(config), "--date", "2026-06-27", cwd=tmp_path).returncode == 0


def test_a_day_is_fetched_once_and_a_rerun_of_it_uses_the_stored_snapshot(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    # fetching the day again would store today's listing under it: papers added since would then
    # be "seen before" the next day, and readers already sent the day's digest would miss them
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    assert digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path).returncode == 0
    before = state_dump(tmp_path)
    requests = len(httpserver.log)
    again = digest("fetch", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert again.returncode == 0 and f"(the snapshot stored for {DATE}" in again.stdout
    rerun = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    assert rerun.returncode == 0, rerun.stderr
    assert len(httpserver.log) == requests  # nothing fetched
    assert [line for line in state_dump(tmp_path) if "snapshot" in line] == [
        line for line in before if "snapshot" in line
    ]


def test_the_mailto_unsubscribe_of_an_email_applied_with_digest_unsubscribe_stops_the_digests(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, None)
    assert digest("run", "--config", str(config), "--date", "2026-06-11", cwd=tmp_path).returncode == 0
    grace = next(p for p in (tmp_path / "outbox").glob("*.eml") if "grace" in p.read_text())
    header = email.message_from_bytes(grace.read_bytes(), policy=email.policy.default)["List-Unsubscribe"]
    assert "https" not in str(header)  # no endpoint configured: no link a static site would 404
    subject = urllib.parse.unquote(str(header).strip("<>").split("subject=", 1)[1])
    assert subject.startswith("unsubscribe ")

    assert (
        digest("unsubscribe", "--config", str(config), subject[:-3], cwd=tmp_path).returncode == 1
    )  # cut short
    as_in_the_link = urllib.parse.quote(subject)  # "unsubscribe%20TOKEN", copied from the mailto
    done = digest("unsubscribe", "--config", str(config), as_in_the_link, cwd=tmp_path)
    assert done.returncode == 0 and "grace@example.org: unsubscribed" in done.stdout, done.stderr
    assert "grace@example.org" in digest("check", "--config", str(config), cwd=tmp_path).stdout

    # an edit of her profile (a maintainer's pull request, say) does not take her back
    profiles = tmp_path / "subscribers.toml"
    edited = profiles.read_text().replace("feed = true\n", "feed = true\nmax_papers = 30\n")
    profiles.write_text(edited.replace('"grace@example.org"', '"Grace@example.org"'))  # and its case
    sent = set((tmp_path / "outbox").glob("*.eml"))
    assert digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path).returncode == 0
    assert not any(
        "race@example.org" in p.read_text() for p in set((tmp_path / "outbox").glob("*.eml")) - sent
    )

    wrong = digest("unsubscribe", "--config", str(config), "--undo", "ada@example.org", cwd=tmp_path)
    assert wrong.returncode == 1 and "did not unsubscribe" in wrong.stderr
    back = digest("unsubscribe", "--config", str(config), "--undo", "Grace@example.org", cwd=tmp_path)
    assert back.returncode == 0 and "subscribed again" in back.stdout, back.stderr
    assert "grace@example.org" not in digest("check", "--config", str(config), cwd=tmp_path).stdout


def test_check_lists_the_problems_of_both_files_at_once(tmp_path: Path) -> None:
    # a broken digest.toml does not hide the subscribers file's problems: one run lists everything
    (tmp_path / "digest.toml").write_text("[fetch]\ntimout = 30.0\n")
    (tmp_path / "subscribers.toml").write_text(
        '[[subscribers]]\nemail = "ada@example.org"\nkeywords = ["LLM"]\nexlude = ["medical"]\n'
    )
    result = digest("check", "--config", str(tmp_path / "digest.toml"), cwd=tmp_path)
    assert result.returncode == 1, result.stdout + result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert any("digest.toml:2: fetch.timout" in line for line in errors), errors
    assert any("subscribers.toml:4" in line and "exlude" in line for line in errors), errors
    assert "Traceback" not in result.stderr
