"""The transports against real servers: aiosmtpd on 127.0.0.1 (plain, STARTTLS with a trustme CA,
implicit TLS, AUTH) and a real directory for the outbox. Nothing of aiosmtplib is mocked."""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import email
import email.policy
import random
import time
from pathlib import Path
from typing import Any

import pytest
from pydantic import SecretStr
from smtp_servers import (
    AcceptAll,
    DropAfterData,
    RejectRecipient,
    TempFailThenAccept,
    free_port,
    hostile_smtp,
    smtp_server,
    tls_certificates,
)

from digest.config import Settings, SmtpConfig
from digest.core.models import RenderedEmail, Subscriber
from digest.deliver import ConnectionFailure, Outcome, OutgoingMessage, dot_lines, printable
from digest.deliver.message import build_message
from digest.deliver.outbox import OutboxTransport, eml_name
from digest.deliver.smtp import SmtpTransport, data_content

NOW = dt.datetime(2024, 11, 28, 7, 0, tzinfo=dt.UTC)
SETTINGS = Settings(smtp={"from": "Paper Digest <digest@example.org>"})
RENDERED = RenderedEmail(
    subject="2 new papers for you",
    html="<html><body><p>Two papers</p>\n<p>.a line that starts with a dot</p></body></html>",
    text="Two papers\n.a line that starts with a dot\n",
)


def message(addr: str, name: str = "") -> OutgoingMessage:
    return build_message(
        RENDERED, Subscriber(email=addr, name=name), SETTINGS, date=NOW.date(), key=b"k", now=NOW
    )


def plain(host: str, port: int, **kw: Any) -> SmtpConfig:
    return SmtpConfig(host=host, port=port, security="none", timeout=5, **kw)


async def send_many(config: SmtpConfig, messages: list[OutgoingMessage], workers: int = 1) -> list[Outcome]:
    """Send with `workers` concurrent workers, each taking the next message, like the sender does."""
    results: list[Outcome | None] = [None] * len(messages)
    queue = iter(enumerate(messages))
    async with SmtpTransport(config) as transport:

        async def work(w: int) -> None:
            for i, msg in queue:
                results[i] = await transport.send(msg, w)

        await asyncio.gather(*(work(w) for w in range(workers)))
    return [r for r in results if r is not None]


def test_accept_all_reuses_few_connections_for_many_messages():
    addrs = [f"reader{i}@example.org" for i in range(30)]
    with smtp_server(AcceptAll()) as (host, port, handler):
        outcomes = asyncio.run(send_many(plain(host, port, concurrency=3), [message(a) for a in addrs], 3))
        assert handler.wait_for(30)
    assert [o.status for o in outcomes] == ["sent"] * 30
    assert outcomes[0].reply.startswith("250 2.0.0")
    assert 1 <= handler.connections <= 3  # 30 messages over at most 3 connections, one per worker
    assert sorted(handler.recipients()) == sorted(addrs)
    received = handler.messages()
    assert len({m["Message-ID"] for m in received}) == 30
    for m in received:
        assert [p.get_content_type() for p in m.iter_parts()] == ["text/plain", "text/html"]
        assert m["From"] == "Paper Digest <digest@example.org>"
        # dot-stuffing undone by the server: the line that starts with a dot arrives intact
        assert ".a line that starts with a dot" in m.get_body(("plain",)).get_content()
    assert {r.mail_from for r in handler.received} == {"digest@example.org"}


def test_temporary_failure_is_retry_and_the_connection_stays_usable():
    with smtp_server(TempFailThenAccept(n=2, code=451)) as (host, port, handler):
        outcomes = asyncio.run(send_many(plain(host, port, concurrency=1), [message("ada@example.org")] * 3))
    assert [o.status for o in outcomes] == ["retry", "retry", "sent"]
    assert outcomes[0].reply == "451 4.3.0 try again later"
    assert handler.connections == 1  # reset after the 451, not reconnected


def test_temporary_refusal_of_a_recipient_is_retry_without_suppression():
    with smtp_server(RejectRecipient("ada@example.org", code=450)) as (host, port, _):
        (outcome,) = asyncio.run(send_many(plain(host, port), [message("ada@example.org")]))
    assert outcome.status == "retry" and not outcome.suppress
    assert outcome.reply.startswith("450 5.1.1")


def test_permanent_refusal_of_a_recipient_is_failed_and_suppressed():
    msgs = [message("ada@example.org"), message("ghost@example.org"), message("bob@example.org")]
    with smtp_server(RejectRecipient("ghost@example.org")) as (host, port, handler):
        outcomes = asyncio.run(send_many(plain(host, port), msgs))
    assert [o.status for o in outcomes] == ["sent", "failed", "sent"]
    assert outcomes[1].suppress and outcomes[1].reply == "550 5.1.1 <ghost@example.org>: no such user"
    assert sorted(handler.recipients()) == ["ada@example.org", "bob@example.org"]
    assert handler.connections == 1


def test_permanent_refusal_of_the_data_is_failed_without_suppression():
    class RefuseData(AcceptAll):
        def refuse_data(self, envelope: Any) -> str | None:
            return "554 5.7.1 message content rejected"

    with smtp_server(RefuseData()) as (host, port, _):
        (outcome,) = asyncio.run(send_many(plain(host, port), [message("ada@example.org")]))
    assert outcome == Outcome("failed", "554 5.7.1 message content rejected", suppress=False)


def test_connection_dropped_after_the_data_is_unknown_then_reconnects():
    msgs = [message("ada@example.org"), message("bob@example.org"), message("cy@example.org")]
    with smtp_server(DropAfterData("bob@example.org")) as (host, port, handler):
        outcomes = asyncio.run(send_many(plain(host, port), msgs))
        assert handler.wait_for(3)
    assert [o.status for o in outcomes] == ["sent", "unknown", "sent"]
    assert "after the message was sent" in outcomes[1].reply
    assert handler.data_commands == 3  # bob's message went out exactly once
    assert handler.connections == 2  # a new connection after the drop


def test_a_pooled_connection_the_server_closed_is_replaced_without_a_retry():
    class CloseAfterEach(AcceptAll):
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            reply = await super().handle_DATA(server, session, envelope)
            asyncio.get_running_loop().call_later(0.05, server.transport.close)  # idle timeout
            return reply

    async def go(host: str, port: int) -> list[Outcome]:
        async with SmtpTransport(plain(host, port)) as transport:
            out = []
            for addr in ("ada@example.org", "bob@example.org", "cy@example.org"):
                out.append(await transport.send(message(addr), 0))
                await asyncio.sleep(0.2)
            return out

    with smtp_server(CloseAfterEach()) as (host, port, handler):
        outcomes = asyncio.run(go(host, port))
    assert [o.status for o in outcomes] == ["sent", "sent", "sent"]
    assert handler.connections == 3


def test_nothing_listening_is_a_connection_failure_naming_the_server():
    port = free_port()
    with pytest.raises(ConnectionFailure) as info:
        asyncio.run(send_many(plain("127.0.0.1", port), [message("ada@example.org")]))
    assert not info.value.permanent
    assert f"127.0.0.1:{port}" in str(info.value) and "cannot connect" in str(info.value)


# -- TLS ------------------------------------------------------------------------------------------
def test_starttls_with_an_unknown_ca_is_refused_clearly(tmp_path):
    tls = tls_certificates(tmp_path)
    with smtp_server(AcceptAll(), tls_context=tls.server_context) as (host, port, handler):
        config = SmtpConfig(host=host, port=port, timeout=5)  # security = "starttls" by default
        with pytest.raises(ConnectionFailure) as info:
            asyncio.run(send_many(config, [message("ada@example.org")]))
    assert info.value.permanent
    assert "certificate" in str(info.value) and "ca_file" in str(info.value)
    assert handler.received == []


def test_starttls_accepted_with_the_ca_configured(tmp_path):
    tls = tls_certificates(tmp_path)
    with smtp_server(AcceptAll(), tls_context=tls.server_context, require_starttls=True) as (
        host,
        port,
        handler,
    ):
        config = SmtpConfig(host=host, port=port, ca_file=tls.ca_file, timeout=5, concurrency=1)
        outcomes = asyncio.run(send_many(config, [message("ada@example.org"), message("bob@example.org")]))
    assert [o.status for o in outcomes] == ["sent", "sent"]
    assert handler.connections == 1  # two EHLOs (before and after STARTTLS), one connection
    assert len(handler.ehlos) == 2


def test_starttls_without_verification_only_when_asked(tmp_path):
    tls = tls_certificates(tmp_path)
    with smtp_server(AcceptAll(), tls_context=tls.server_context) as (host, port, _):
        config = SmtpConfig(host=host, port=port, verify=False, timeout=5)
        (outcome,) = asyncio.run(send_many(config, [message("ada@example.org")]))
    assert outcome.status == "sent"


def test_a_server_without_starttls_is_refused_and_nothing_is_sent_in_clear():
    with smtp_server(AcceptAll()) as (host, port, handler):
        config = SmtpConfig(host=host, port=port, timeout=5, username="digest", password=SecretStr("hunter2"))
        with pytest.raises(ConnectionFailure) as info:
            asyncio.run(send_many(config, [message("ada@example.org")]))
    text = str(info.value)
    assert info.value.permanent
    assert f"{host}:{port}" in text and "STARTTLS" in text
    assert 'security = "tls"' in text and 'security = "none"' in text
    assert "hunter2" not in text
    assert handler.data_commands == 0 and handler.received == []


def test_implicit_tls(tmp_path):
    tls = tls_certificates(tmp_path)
    with smtp_server(AcceptAll(), implicit_tls=tls.server_context) as (host, port, handler):
        config = SmtpConfig(host=host, port=port, security="tls", ca_file=tls.ca_file, timeout=5)
        (outcome,) = asyncio.run(send_many(config, [message("ada@example.org")]))
    assert outcome.status == "sent"
    assert handler.recipients() == ["ada@example.org"]


def test_implicit_tls_to_a_starttls_port_fails_with_a_hint(tmp_path):
    tls = tls_certificates(tmp_path)
    with smtp_server(AcceptAll(), tls_context=tls.server_context) as (host, port, _):
        config = SmtpConfig(host=host, port=port, security="tls", ca_file=tls.ca_file, timeout=2)
        with pytest.raises(ConnectionFailure) as info:
            asyncio.run(send_many(config, [message("ada@example.org")]))
    assert f"{host}:{port}" in str(info.value) and 'security = "starttls"' in str(info.value)


# -- AUTH -----------------------------------------------------------------------------------------
def test_login():
    with smtp_server(AcceptAll(), auth=("digest", "s3cret")) as (host, port, handler):
        config = plain(host, port, username="digest", password=SecretStr("s3cret"))
        (outcome,) = asyncio.run(send_many(config, [message("ada@example.org")]))
    assert outcome.status == "sent"
    assert handler.logins == ["digest"]


def test_a_refused_login_names_the_user_never_the_password():
    with smtp_server(AcceptAll(), auth=("digest", "s3cret")) as (host, port, handler):
        config = plain(host, port, username="digest", password=SecretStr("wrong-password"))
        with pytest.raises(ConnectionFailure) as info:
            asyncio.run(send_many(config, [message("ada@example.org")]))
    assert info.value.permanent
    assert "'digest'" in str(info.value) and "DIGEST_SMTP__PASSWORD" in str(info.value)
    assert "wrong-password" not in str(info.value)
    assert set(handler.logins) == {"digest"} and handler.received == []  # aiosmtplib tries each mechanism


# -- rate -----------------------------------------------------------------------------------------
def test_rate_is_respected_over_all_workers():
    msgs = [message(f"r{i}@example.org") for i in range(10)]
    with smtp_server(AcceptAll()) as (host, port, _):
        started = time.monotonic()
        outcomes = asyncio.run(send_many(plain(host, port, concurrency=4, rate=20), msgs, workers=4))
        elapsed = time.monotonic() - started
    assert [o.status for o in outcomes] == ["sent"] * 10
    assert elapsed >= 0.4  # 10 messages at 20/s: the last one starts 0.45 s after the first


# -- outbox ---------------------------------------------------------------------------------------
def test_outbox_writes_eml_files_that_parse_back(tmp_path):
    outbox = tmp_path / "outbox"
    msgs = [message("ada@example.org", "Ada"), message("bob@example.org")]

    async def go() -> list[Outcome]:
        async with OutboxTransport(outbox) as transport:
            return [await transport.send(m, 0) for m in msgs]

    outcomes = asyncio.run(go())
    assert [o.status for o in outcomes] == ["sent", "sent"]
    files = sorted(outbox.iterdir())
    assert [f.suffix for f in files] == [".eml", ".eml"]  # and no temporary file left behind
    assert {f.name for f in files} == {eml_name(m) for m in msgs}
    for f in files:
        assert f.name.startswith("2024-11-28_")
        parsed = email.message_from_bytes(f.read_bytes(), policy=email.policy.default)
        assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    by_to = {
        str(email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["To"]): f for f in files
    }
    assert set(by_to) == {"Ada <ada@example.org>", "bob@example.org"}


def test_outbox_file_names_are_safe():
    msg = dataclasses.replace(message("ada@example.org"), message_id="<../../etc/passwd@evil/..>")
    name = eml_name(msg)
    assert "/" not in name and not name.startswith(".")
    assert name.endswith(".eml")


def test_outbox_on_a_broken_disk_is_a_connection_failure(tmp_path):
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the outbox should be")

    async def go() -> None:
        async with OutboxTransport(blocker / "outbox") as transport:
            await transport.send(message("ada@example.org"), 0)

    with pytest.raises(ConnectionFailure):
        asyncio.run(go())


def test_outbox_names_follow_the_message_id(tmp_path: Path):
    msg = message("ada@example.org")
    assert eml_name(msg) == "2024-11-28_" + msg.message_id.strip("<>").replace("/", "_") + ".eml"
    assert str(msg.parsed()["Message-ID"]) == msg.message_id


# -- DATA -----------------------------------------------------------------------------------------
def test_data_content_stuffs_dots_and_normalises_line_endings():
    assert data_content(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"
    assert data_content(b".first\r\nlast") == b"..first\r\nlast\r\n.\r\n"
    assert data_content(b"bare\nlf\r.x\n") == b"bare\r\nlf\r\n..x\r\n.\r\n"
    assert data_content(b"") == b"\r\n.\r\n"


def test_dots_found_when_built_give_the_same_data_without_reading_the_message():
    """`dot_lines` (the render worker's) and `data_content` with them equal `data_content` alone,
    for any bytes: CRLF, bare CR or LF, dots at the start, at the end, doubled, none."""
    rng = random.Random(20)
    cases = [
        b"a\r\n.b\r\n..c\r\n",
        b".first\r\n",
        b".\r\n",
        b"\r\n",
        b"x\r\n.\r\n.\r\n",
        b"bare\nlf\r\n",
        b"",
    ]
    pieces = [b".", b"..", b"\r\n", b"a", b"\r", b"\n"]
    for _ in range(3000):  # mostly CRLF throughout; a bare CR or LF in some
        some = pieces if rng.random() < 0.3 else pieces[:4]
        cases.append(
            b"".join(rng.choice(some) for _ in range(rng.randrange(0, 20))) + rng.choice([b"", b"\r\n"])
        )
    found = 0
    for data in cases:
        dots = dot_lines(data)
        if dots is None:  # not CRLF throughout: DATA normalises it first, as before
            assert (
                b"\n" in data.replace(b"\r\n", b"")
                or b"\r" in data.replace(b"\r\n", b"")
                or not data.endswith(b"\r\n")
            )
            continue
        found += 1
        assert [
            i for i in range(len(data)) if data[i : i + 1] == b"." and (i == 0 or data[i - 2 : i] == b"\r\n")
        ] == list(dots)
        assert data_content(data, dots) == data_content(data)
    assert found > 100
    assert dot_lines(b"a\r\n.b\r\n..c\r\n") == (3, 7)
    # dots that do not fit the data (a message changed after they were found) are not trusted
    assert (
        data_content(b"a\r\nb\r\n.c\r\n", (3,))
        == data_content(b"a\r\nb\r\n.c\r\n")
        == b"a\r\nb\r\n..c\r\n.\r\n"
    )
    assert data_content(b"a\r\n.b", (3,)) == b"a\r\n..b\r\n.\r\n"


def test_a_built_message_whose_lines_start_with_dots_arrives_exactly():
    """MJML's CSS puts lines that start with "." in the 7-bit HTML part: `build_message` finds them,
    and the transport doubles exactly those."""
    html = "<html><head><style>\n.mj-column { width:100% }\n</style></head><body>\n.\n..two\n</body></html>"
    msg = build_message(
        dataclasses.replace(RENDERED, html=html), Subscriber(email="ada@example.org"), SETTINGS,
        date=NOW.date(), key=b"k", now=NOW,
    )  # fmt: skip
    assert msg.dots is not None and len(msg.dots) == 3
    assert msg.dots == dot_lines(msg.data)
    with smtp_server(AcceptAll()) as (host, port, handler):
        (outcome,) = asyncio.run(send_many(plain(host, port), [msg]))
        assert handler.wait_for(1)
    assert outcome.status == "sent"
    assert handler.received[0].raw == msg.data


def test_any_bytes_arrive_as_they_were_sent():
    """A message not from build_message (a line that starts with a dot, a bare LF) still arrives intact."""
    data = b"From: d@example.org\r\nTo: ada@example.org\r\nSubject: dots\r\n\r\n.one\r\n..two\nthree\r\n."
    msg = OutgoingMessage("d@example.org", "ada@example.org", "<x@example.org>", NOW, data)
    with smtp_server(AcceptAll()) as (host, port, handler):
        (outcome,) = asyncio.run(send_many(plain(host, port), [msg]))
        assert handler.wait_for(1)
    assert outcome.status == "sent"
    assert handler.received[0].raw.replace(b"\r\n", b"\n") == data.replace(b"\r\n", b"\n") + b"\n"


# -- issue 24: hostile servers --------------------------------------------------------------------
def test_printable_makes_any_server_text_safe_to_store_and_show():
    assert (
        printable("250 Ok: f\udcfcr Empf\udce4nger") == "250 Ok: f\ufffdr Empf\ufffdnger"
    )  # aiosmtplib's surrogates
    assert printable("lone \ud800 surrogate") == "lone ? surrogate"
    assert printable("red \x1b[31m\r\nnext\u202eline\x00") == "red [31m next line"
    assert printable("x" * 10_000) == "x" * 499 + "…"
    assert printable(" 250  2.0.0 Ok:\u00a0queued ") == "250 2.0.0 Ok: queued"  # printable, or a space
    assert printable("x" * 10_000).encode("utf-8")  # and every result encodes


def test_a_reply_that_is_not_utf8_is_sent_with_the_reply_as_text():
    with hostile_smtp(data_reply=b"250 2.0.0 Ok: angenommen f\xfcr Empf\xe4nger") as server:
        [outcome] = asyncio.run(send_many(plain("127.0.0.1", server.port), [message("ada@example.org")]))
    assert outcome == Outcome("sent", "250 2.0.0 Ok: angenommen f\ufffdr Empf\ufffdnger")


def test_no_reply_after_the_data_is_unknown_by_timeout_within_the_timeout():
    with hostile_smtp(stall="data") as server:
        started = time.monotonic()
        [outcome] = asyncio.run(
            send_many(
                SmtpConfig(host="127.0.0.1", port=server.port, security="none", timeout=0.3),
                [message("ada@example.org")],
            )
        )
        took = time.monotonic() - started
    assert (outcome.status, outcome.timeout) == ("unknown", True)
    assert outcome.reply == "no reply within 0.3 s after the message was sent"
    assert took < 3


def test_a_message_over_the_servers_size_is_not_attempted():
    msg = message("ada@example.org")
    with hostile_smtp(size=len(msg.data) - 1) as server:
        with pytest.raises(ConnectionFailure) as info:
            asyncio.run(send_many(plain("127.0.0.1", server.port), [msg]))
        assert server.counts["mail"] == 0
    assert info.value.permanent
    assert f"is {len(msg.data)} bytes, over the server's SIZE limit of {len(msg.data) - 1} bytes" in str(
        info.value
    )


@pytest.mark.parametrize("size", [0, None], ids=["SIZE 0 (no fixed limit)", "no SIZE"])
def test_no_size_limit_announced_sends(size: int | None):
    with hostile_smtp(size=size) as server:
        [outcome] = asyncio.run(send_many(plain("127.0.0.1", server.port), [message("ada@example.org")]))
    assert outcome.status == "sent"


def test_ready_is_called_once_the_connection_is_up_right_before_mail_from():
    calls: list[tuple[str, int, int]] = []

    class Ready:
        def __call__(self) -> None:
            calls.append(("ready", server.counts["connected"], server.counts["mail"]))

        def undo(self, why: str) -> None:
            calls.append(("undo", server.counts["connected"], server.counts["mail"]))

    async def go() -> list[Outcome]:
        async with SmtpTransport(plain("127.0.0.1", server.port)) as transport:
            return [
                await transport.send(message(a), 0, ready=Ready()) for a in ("a@example.org", "b@example.org")
            ]

    with hostile_smtp() as server:
        server.per_connection = 1
        outcomes = asyncio.run(go())
    assert [o.status for o in outcomes] == ["sent", "sent"]
    # connected before each ready, no MAIL before it; the second: 421 at MAIL, undo, reconnect
    assert calls == [("ready", 1, 0), ("ready", 1, 1), ("undo", 1, 1), ("ready", 2, 1)]
