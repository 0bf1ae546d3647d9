"""Issue 24, the sending half: SMTP servers that misbehave the ways real ones do, each a real local
server (`smtp_servers.HostileSmtp`), each through a whole `digest run` (in this process):

- a reply with bytes that are not UTF-8 is kept and shown as text, and never crashes a run;
- a server that stalls after the data trips the breaker after `[delivery] max_timeouts`;
- a digest over the server's SIZE is not attempted: the run stops, the readers stay pending;
- `digest run --retry-failed` sends the date's failed digests again, once.
"""

from __future__ import annotations

import re
import sqlite3
import time
from collections import Counter
from pathlib import Path

from cli_runner import digest
from conftest import ARXIV_TRIMMED, HF_DAY
from pytest_httpserver import HTTPServer
from smtp_servers import HostileSmtp, hostile_smtp

DATE = "2026-06-12"
READERS = [f"reader{i}@example.org" for i in range(4)]


def serve_listings(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/api/daily_papers", query_string={"date": DATE, "limit": "100", "p": "0"}
    ).respond_with_data(HF_DAY.read_bytes(), content_type="application/json")
    httpserver.expect_request("/api/daily_papers").respond_with_data("[]", content_type="application/json")
    httpserver.expect_request("/rss/cs.CL").respond_with_data(
        ARXIV_TRIMMED.read_bytes(), content_type="application/rss+xml"
    )


def write_config(
    tmp_path: Path,
    httpserver: HTTPServer,
    port: int,
    *,
    smtp: str = "",
    delivery: str = "",
    readers: list[str] = READERS,
) -> Path:
    """A digest.toml for DATE's captured listings and `readers` (each `all = true`), sending to
    127.0.0.1:`port` over one connection; `smtp` and `delivery` add keys to those tables."""
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

[delivery]
retry_backoff = 0.01
{delivery}

[smtp]
host = "127.0.0.1"
port = {port}
security = "none"
concurrency = 1
from = "Paper Digest <digest@example.org>"
{smtp}
"""
    )
    (tmp_path / "subscribers.toml").write_text(
        "".join(f'[[subscribers]]\nemail = "{e}"\nall = true\n\n' for e in readers)
    )
    return config


def run(config: Path, *args: str) -> tuple[int, str]:
    result = digest("run", "--config", str(config), "--date", DATE, *args, cwd=config.parent)
    return result.returncode, result.stdout + result.stderr


def ledger(tmp_path: Path) -> dict[str, tuple[str, str | None]]:
    """email -> (status, reply) of DATE's rows."""
    with sqlite3.connect(tmp_path / "state" / "digest.sqlite3") as db:
        rows = db.execute("SELECT email, status, reply FROM deliveries WHERE date = ?", (DATE,))
        return {email: (status, reply) for email, status, reply in rows}


def statuses(tmp_path: Path) -> Counter[str]:
    return Counter(status for status, _ in ledger(tmp_path).values())


LATIN1_OK = b"250 2.0.0 Ok: angenommen f\xfcr Empf\xe4nger"
LATIN1_NO = b"554 5.7.1 Nachricht f\xfcr Empf\xe4nger abgelehnt \x1b[31m"


def test_a_reply_that_is_not_utf8_is_stored_as_text_and_every_digest_is_sent(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    with hostile_smtp(data_reply=LATIN1_OK) as server:
        config = write_config(tmp_path, httpserver, server.port)
        code, out = run(config)
        assert code == 0, out  # it used to crash at mark_sent (surrogates), exit 1
        assert Counter(server.recipients()) == Counter(READERS)
    rows = ledger(tmp_path)
    assert {status for status, _ in rows.values()} == {"sent"}
    assert {reply for _, reply in rows.values()} == {"250 2.0.0 Ok: angenommen f\ufffdr Empf\ufffdnger"}
    assert re.search(r"emails sent\D+4\b", out), out


def test_a_refusal_that_is_not_utf8_is_shown_safely_and_recorded_failed(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    with hostile_smtp(data_reply=LATIN1_NO) as server:
        config = write_config(tmp_path, httpserver, server.port, readers=READERS[:2])
        code, out = run(config)
    assert code == 4, out
    shown = "554 5.7.1 Nachricht f\ufffdr Empf\ufffdnger abgelehnt [31m"  # no escape reaches the terminal
    assert f"failed: {READERS[0]}: {shown}" in out
    assert "\x1b" not in out and "Traceback" not in out
    assert {row for row in ledger(tmp_path).values()} == {("failed", shown)}


def test_a_server_that_stalls_after_the_data_trips_the_breaker(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    readers = [f"reader{i}@example.org" for i in range(6)]
    with hostile_smtp(stall="data") as server:
        config = write_config(
            tmp_path,
            httpserver,
            server.port,
            smtp="timeout = 0.5",
            delivery="max_timeouts = 2",
            readers=readers,
        )
        started = time.monotonic()
        code, out = run(config)
        took = time.monotonic() - started
        assert code == 4, out
        assert server.counts["data_end"] == 2  # two messages waited out the timeout; no third
        assert took < 10, f"the breaker should stop the run after two timeouts, took {took:.1f}s"
        stopped = [line for line in out.splitlines() if line.startswith("stopped:")]
        assert len(stopped) == 1, out
        assert "2 timeouts in a row" in stopped[0] and "4 digests stay pending" in stopped[0]
        assert statuses(tmp_path) == Counter({"unknown": 2, "pending": 4})

        server.stall = None  # the server is fixed: a plain run sends the rest, not the unknown two
        code, out = run(config)
        assert code == 4, out  # the two unknown ones are reported
        assert statuses(tmp_path) == Counter({"unknown": 2, "sent": 4})
        assert len(server.recipients()) == 6  # 2 that may have arrived + 4, nobody twice
        assert len(set(server.recipients())) == 6


def test_a_digest_over_the_servers_size_is_not_attempted_and_goes_once_the_limit_is_raised(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    with hostile_smtp(size=2000) as server:
        config = write_config(tmp_path, httpserver, server.port)
        code, out = run(config)
        assert code == 4, out
        stopped = [line for line in out.splitlines() if line.startswith("stopped:")]
        assert len(stopped) == 1, out
        assert "SIZE limit of 2000 bytes" in stopped[0]
        size = int(stopped[0].split(" is ")[1].split(" bytes")[0])
        assert size > 2000
        assert server.counts["mail"] == 0, out  # not even MAIL FROM
        assert statuses(tmp_path) == Counter({"pending": 4})  # not failed for good

        server.size = 10_000_000
        code, out = run(config)
        assert code == 0, out
        assert statuses(tmp_path) == Counter({"sent": 4})
        assert Counter(server.recipients()) == Counter(READERS)


def test_retry_failed_sends_the_dates_failed_digests_exactly_once(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    with hostile_smtp(data_reply=b"554 5.6.0 message refused: policy") as server:
        server.refuse = {READERS[3]}  # a refused address: failed and suppressed
        config = write_config(tmp_path, httpserver, server.port)
        code, out = run(config)
        assert code == 4, out
        assert statuses(tmp_path) == Counter({"failed": 4})
        assert server.counts["data_end"] == 3

        refused = len(server.received)
        server.data_reply = b"250 2.0.0 Ok: queued"  # the cause is fixed
        code, out = run(config)  # a plain run does not resend what failed
        assert len(server.received) == refused, out
        code, out = run(config, "--retry-failed")
        assert code == 0, out
        # the refused address stays suppressed; the others are sent
        assert sorted(r for _, rcpts, _ in server.received[refused:] for r in rcpts) == READERS[:3]
        rows = ledger(tmp_path)
        assert [rows[e][0] for e in READERS] == ["sent", "sent", "sent", "failed"]

        code, out = run(config, "--retry-failed")  # again: only the refused one is failed, and suppressed
        assert code == 0, out
        assert len(server.received) == refused + 3  # each exactly once


def test_hostile_server_is_a_real_server() -> None:
    """The helper itself: what it announces and what it keeps (it backs every test above)."""
    import asyncio

    import aiosmtplib

    async def talk(port: int) -> tuple[str, str]:
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=5)
        await client.connect()
        await client.ehlo()
        size = client.esmtp_extensions.get("size", "")
        response = await client.sendmail("a@example.org", ["b@example.org"], b"Subject: x\r\n\r\nhi\r\n")
        await client.quit()
        return size, response[1]

    server: HostileSmtp
    with hostile_smtp(size=1234) as server:
        size, reply = asyncio.run(talk(server.port))
        assert server.wait("replied")
    assert size == "1234" and reply.startswith("2.0.0 Ok")
    assert server.recipients() == ["b@example.org"]
