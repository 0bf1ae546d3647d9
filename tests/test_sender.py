"""send_all drives the real send ledger (a SQLite Store in tmp_path) through real transports
(aiosmtpd on 127.0.0.1, or the outbox): exactly once, retries, suppression, unknowns, stopping."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import email
import email.policy
import sqlite3
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from smtp_servers import (
    AcceptAll,
    DropAfterData,
    RejectRecipient,
    TempFailThenAccept,
    free_port,
    hostile_smtp,
    smtp_server,
)

from digest.config import DeliveryConfig, Settings, SmtpConfig
from digest.core.errors import StoreError
from digest.core.models import RenderedEmail, Subscriber
from digest.core.status import SuppressionKind
from digest.deliver import Outcome, OutgoingMessage
from digest.deliver.message import build_message
from digest.deliver.outbox import OutboxTransport
from digest.deliver.sender import Job, SendReport, send_all
from digest.deliver.smtp import SmtpTransport
from digest.store import Store

DATE = dt.date(2024, 11, 28)
NOW = dt.datetime(2024, 11, 28, 7, 0, tzinfo=dt.UTC)
SETTINGS = Settings(smtp={"from": "Paper Digest <digest@example.org>"})
PAPERS = ["2411.00001", "2411.00002"]
FAST = DeliveryConfig(retry_backoff=0.001, max_attempts=4, max_connection_failures=3)


def clock() -> dt.datetime:
    return NOW


class Builds:
    """Jobs whose messages are built on demand; counts how many were built and how many at once."""

    def __init__(self, emails: list[str]) -> None:
        self.emails = emails
        self.built: list[str] = []
        self.done: set[str] = set()
        self.most_in_flight = 0

    def jobs(self) -> Iterator[Job]:
        for addr in self.emails:
            yield Job(DATE, Subscriber(email=addr, name=addr.split("@")[0].title()), self._builder(addr))

    def _builder(self, addr: str) -> Any:
        def build() -> OutgoingMessage:
            self.built.append(addr)
            self.most_in_flight = max(self.most_in_flight, len(self.built) - len(self.done))
            rendered = RenderedEmail(subject="2 new papers", html="<p>two</p>", text="two")
            sub = Subscriber(email=addr)
            return build_message(rendered, sub, SETTINGS, date=DATE, key=b"k", now=NOW)

        return build

    def progress(self, addr: str, outcome: Outcome) -> None:
        self.done.add(addr)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state.sqlite3") as s:
        yield s


def pending(store: Store, emails: list[str]) -> None:
    for addr in emails:
        store.mark_pending(DATE, addr, PAPERS, NOW)


def readers(n: int) -> list[str]:
    return [f"reader{i:02d}@example.org" for i in range(n)]


class Sleeps:
    """The injected sleep: records each backoff and yields without waiting."""

    def __init__(self) -> None:
        self.delays: list[float] = []

    async def __call__(self, delay: float) -> None:
        self.delays.append(delay)
        await asyncio.sleep(0)


def run(
    store: Store,
    builds: Builds,
    config: SmtpConfig | None = None,
    *,
    delivery: DeliveryConfig = FAST,
    outbox: Path | None = None,
    **kw: Any,
) -> SendReport:
    async def go() -> SendReport:
        transport = OutboxTransport(outbox) if outbox is not None else SmtpTransport(config)  # type: ignore[arg-type]
        async with transport:
            return await send_all(
                builds.jobs(),
                transport,
                store,
                delivery,
                concurrency=kw.pop("concurrency", 2),
                clock=clock,
                on_progress=kw.pop("on_progress", builds.progress),
                sleep=kw.pop("sleep", Sleeps()),
                **kw,
            )

    return asyncio.run(go())


def plain(host: str, port: int, **kw: Any) -> SmtpConfig:
    return SmtpConfig(host=host, port=port, security="none", timeout=5, **kw)


def test_every_digest_sent_once_and_recorded(store):
    emails = readers(12)
    pending(store, emails)
    builds = Builds(emails)
    with smtp_server(AcceptAll()) as (host, port, handler):
        report = run(store, builds, plain(host, port, concurrency=3), concurrency=3)
        assert handler.wait_for(12)
    assert sorted(report.sent) == emails
    assert report.failed == report.unknown == report.pending == [] and report.stopped_reason is None
    rows = store.deliveries(DATE)
    received = {r.rcpt_tos[0]: r.message for r in handler.received}
    for addr in emails:
        row = rows[addr]
        assert (row.status, row.attempts, row.reply) == ("sent", 1, "250 2.0.0 Ok: queued")
        assert row.message_id == received[addr]["Message-ID"]  # the ledger knows which message it was
        assert store.sent_paper_ids(addr) == set(PAPERS)
    assert handler.connections <= 3
    assert builds.most_in_flight <= 3  # lazily built: never more messages than workers


def test_temporary_failures_are_retried_with_backoff(store):
    pending(store, ["ada@example.org"])
    sleeps = Sleeps()
    delivery = DeliveryConfig(retry_backoff=1.0, max_attempts=4)
    with smtp_server(TempFailThenAccept(n=2, code=451)) as (host, port, handler):
        report = run(store, Builds(["ada@example.org"]), plain(host, port), delivery=delivery, sleep=sleeps)
    assert report.sent == ["ada@example.org"]
    row = store.delivery(DATE, "ada@example.org")
    assert row is not None and (row.status, row.attempts) == ("sent", 3)
    assert handler.data_commands == 3
    # doubling, with jitter in [half, full]
    assert len(sleeps.delays) == 2
    assert 0.5 <= sleeps.delays[0] <= 1.0 and 1.0 <= sleeps.delays[1] <= 2.0


def test_still_refused_after_max_attempts_stays_pending_for_the_next_run(store):
    pending(store, ["ada@example.org"])
    delivery = DeliveryConfig(retry_backoff=0.001, max_attempts=3)
    with smtp_server(TempFailThenAccept(n=10)) as (host, port, handler):
        report = run(store, Builds(["ada@example.org"]), plain(host, port), delivery=delivery)
    assert report.pending == ["ada@example.org"] and report.sent == []
    row = store.delivery(DATE, "ada@example.org")
    assert row is not None and (row.status, row.attempts, row.reply) == (
        "pending",
        3,
        "451 4.3.0 try again later",
    )
    assert handler.data_commands == 3


def test_a_refused_recipient_is_failed_and_suppressed_others_sent(store):
    emails = ["ada@example.org", "ghost@example.org", "bob@example.org"]
    pending(store, emails)
    with smtp_server(RejectRecipient("ghost@example.org")) as (host, port, handler):
        report = run(store, Builds(emails), plain(host, port))
    assert sorted(report.sent) == sorted(handler.recipients()) == ["ada@example.org", "bob@example.org"]
    assert report.failed == [("ghost@example.org", "550 5.1.1 <ghost@example.org>: no such user")]
    assert store.deliveries(DATE)["ghost@example.org"].status == "failed"
    suppressed = store.suppressions()
    assert list(suppressed) == ["ghost@example.org"]
    assert suppressed["ghost@example.org"].reason.startswith("550 5.1.1")
    assert (
        suppressed["ghost@example.org"].fingerprint
        == (Subscriber(email="ghost@example.org", name="Ghost")).fingerprint
    )
    assert store.sent_paper_ids("ghost@example.org") == set()


def test_dropped_after_the_data_is_unknown_and_never_resent(store):
    emails = ["ada@example.org", "bob@example.org", "cy@example.org"]
    pending(store, emails)
    with smtp_server(DropAfterData("bob@example.org")) as (host, port, handler):
        report = run(store, Builds(emails), plain(host, port), concurrency=1)
        assert handler.wait_for(3)
    assert sorted(report.sent) == ["ada@example.org", "cy@example.org"]
    assert [e for e, _ in report.unknown] == ["bob@example.org"]
    row = store.deliveries(DATE)["bob@example.org"]
    assert (row.status, row.attempts) == ("unknown", 1)
    assert handler.recipients().count("bob@example.org") == 1  # received once, not resent
    assert store.sent_paper_ids("bob@example.org") == set()


def test_no_server_stops_after_n_connection_failures_and_leaves_the_rest_pending(store):
    emails = readers(20)
    pending(store, emails)
    builds = Builds(emails)
    port = free_port()
    report = run(store, builds, plain("127.0.0.1", port, concurrency=2), concurrency=2)
    assert report.sent == report.failed == report.unknown == []
    assert sorted(report.pending) == emails
    reason = report.stopped_reason or ""
    assert reason.startswith(f"3 connection failures in a row to 127.0.0.1:{port} (cannot connect")
    assert reason.endswith("stopped sending; 20 digests stay pending for the next run")
    assert {r.status for r in store.deliveries(DATE).values()} == {"pending"}
    assert len(builds.built) <= 2  # the jobs never taken were never rendered


def test_a_server_without_starttls_stops_the_run_at_once(store):
    emails = readers(5)
    pending(store, emails)
    with smtp_server(AcceptAll()) as (host, port, handler):
        config = SmtpConfig(host=host, port=port, timeout=5, concurrency=1)
        report = run(store, Builds(emails), config, concurrency=1)
    assert "STARTTLS" in (report.stopped_reason or "") and "5 digests stay pending" in (
        report.stopped_reason or ""
    )
    assert sorted(report.pending) == emails
    assert handler.received == []
    row = store.deliveries(DATE)["reader00@example.org"]
    assert row.status == "pending" and "STARTTLS" in (row.reply or "")


def test_stop_finishes_the_message_in_hand_and_takes_no_new_job(store):
    emails = readers(10)
    pending(store, emails)
    builds = Builds(emails)
    stop = asyncio.Event()

    def progress(addr: str, outcome: Outcome) -> None:
        builds.progress(addr, outcome)
        stop.set()  # SIGTERM arrives while the first message is being recorded

    with smtp_server(AcceptAll()) as (host, port, handler):
        report = run(
            store, builds, plain(host, port, concurrency=2), concurrency=2, stop=stop, on_progress=progress
        )
    assert 1 <= len(report.sent) <= 2  # each worker finished the message it held
    assert len(report.sent) + len(report.pending) == 10
    assert sorted(handler.recipients()) == sorted(report.sent)
    assert len(builds.built) == len(report.sent)
    assert (
        report.stopped_reason == f"asked to stop: {len(report.pending)} digests stay pending for the next run"
    )
    statuses = {addr: row.status for addr, row in store.deliveries(DATE).items()}
    assert sorted(a for a, s in statuses.items() if s == "sent") == sorted(report.sent)
    assert sorted(a for a, s in statuses.items() if s == "pending") == sorted(report.pending)


def test_a_message_that_cannot_be_built_stays_pending_and_others_go(store):
    emails = ["ada@example.org", "bob@example.org"]
    pending(store, emails)
    builds = Builds(emails)
    jobs = list(builds.jobs())

    def broken() -> OutgoingMessage:
        raise RuntimeError("template exploded")

    jobs[0] = Job(DATE, jobs[0].subscriber, broken)

    async def go(host: str, port: int) -> SendReport:
        async with SmtpTransport(plain(host, port)) as transport:
            return await send_all(jobs, transport, store, FAST, concurrency=1, clock=clock)

    with smtp_server(AcceptAll()) as (host, port, _):
        report = asyncio.run(go(host, port))
    assert report.sent == ["bob@example.org"]
    assert report.pending == ["ada@example.org"]
    assert report.errors == [("ada@example.org", "could not build the message: template exploded")]
    assert store.deliveries(DATE)["ada@example.org"].status == "pending"


def test_outbox_run(store, tmp_path):
    emails = readers(4)
    pending(store, emails)
    report = run(store, Builds(emails), outbox=tmp_path / "outbox")
    assert sorted(report.sent) == emails
    files = sorted((tmp_path / "outbox").glob("*.eml"))
    assert len(files) == 4
    tos = sorted(
        email.message_from_bytes(f.read_bytes(), policy=email.policy.default)["To"].addresses[0].addr_spec
        for f in files
    )
    assert tos == emails
    assert {r.status for r in store.deliveries(DATE).values()} == {"sent"}


def test_a_ledger_failure_surfaces_as_itself(tmp_path):
    class FullDisk(Store):
        def mark_sent(self, *args: Any) -> None:
            raise StoreError(f"{self.path}: database or disk is full")

    with FullDisk.open(tmp_path / "state.sqlite3") as store:
        pending(store, ["ada@example.org"])
        with smtp_server(AcceptAll()) as (host, port, _), pytest.raises(StoreError, match="disk is full"):
            run(store, Builds(["ada@example.org"]), plain(host, port))
        # the message went out but was never recorded as sent: 'sending' means "unknown" to the next run
        assert store.deliveries(DATE)["ada@example.org"].status == "sending"


def test_a_refusal_recorded_by_the_sender_is_not_lifted_by_an_unchanged_profile(store):
    from digest.plan import split_suppressed

    emails = ["ada@example.org", "ghost@example.org"]
    pending(store, emails)
    builds = Builds(emails)
    with smtp_server(RejectRecipient("ghost@example.org")) as (host, port, _):
        run(store, builds, plain(host, port))
    held = store.suppressions()["ghost@example.org"]
    profile = next(job.subscriber for job in builds.jobs() if job.subscriber.email == "ghost@example.org")
    assert held.kind is SuppressionKind.REFUSED
    assert held.fingerprint == profile.fingerprint  # the profile the refused message was sent for
    active, suppressed, lift = split_suppressed([profile], store.suppressions())
    assert (active, suppressed, lift) == ([], ["ghost@example.org"], [])
    edited = Subscriber(email="ghost@example.org", name="Ghost", keywords=("LLM",))
    assert split_suppressed([edited], store.suppressions())[2] == ["ghost@example.org"]  # an edit lifts it


# -- issue 22: the unknown window is the SMTP transaction ------------------------------------------
def _statuses(path: Path) -> dict[str, str]:
    """The ledger as another process sees it (its own connection), from the server's thread."""
    with contextlib.closing(sqlite3.connect(path)) as db:
        return dict(db.execute("SELECT email, status FROM deliveries WHERE date = ?", (DATE.isoformat(),)))


def test_a_digest_is_sending_only_while_its_smtp_transaction_is_open(store, tmp_path):
    pending(store, ["ada@example.org"])
    seen: list[tuple[str, str]] = []
    with hostile_smtp() as server:

        def on_event(event: str) -> None:
            if event != "replied":  # the client may record the reply before this reads it
                seen.append((event, _statuses(tmp_path / "state.sqlite3")["ada@example.org"]))

        server.on_event = on_event
        report = run(store, Builds(["ada@example.org"]), plain("127.0.0.1", server.port), concurrency=1)
    assert report.sent == ["ada@example.org"]
    # connected, waiting for the greeting: still pending; from MAIL FROM to the reply: sending
    assert seen == [("connected", "pending"), ("mail", "sending"), ("data_end", "sending")]
    assert store.deliveries(DATE)["ada@example.org"].status == "sent"


def test_a_digest_whose_connection_must_be_renewed_is_pending_while_it_reconnects(store, tmp_path):
    emails = readers(3)
    pending(store, emails)
    seen: list[dict[str, str]] = []
    with hostile_smtp() as server:
        server.per_connection = 1  # "421 too many messages" at the second MAIL FROM of a connection
        server.on_event = lambda e: (
            seen.append(_statuses(tmp_path / "state.sqlite3")) if e == "connected" else None
        )
        report = run(store, Builds(emails), plain("127.0.0.1", server.port), concurrency=1)
    assert sorted(report.sent) == emails and report.pending == report.unknown == []
    assert server.counts["connected"] == 3
    # the reader whose MAIL FROM got the 421 is pending again while the new connection is made
    assert seen[1] == {emails[0]: "sent", emails[1]: "pending", emails[2]: "pending"}
    assert seen[2] == {emails[0]: "sent", emails[1]: "sent", emails[2]: "pending"}
    assert server.recipients() == emails  # each once


def test_a_server_that_never_answers_the_data_trips_the_breaker(store):
    emails = readers(5)
    pending(store, emails)
    delivery = DeliveryConfig(retry_backoff=0.001, max_timeouts=2)
    with hostile_smtp(stall="data") as server:
        config = SmtpConfig(host="127.0.0.1", port=server.port, security="none", timeout=0.3, concurrency=1)
        report = run(store, Builds(emails), config, delivery=delivery, concurrency=1)
    assert [e for e, _ in report.unknown] == emails[:2]
    assert sorted(report.pending) == emails[2:]
    reason = report.stopped_reason or ""
    assert reason.startswith("2 timeouts in a row, the server does not answer (no reply within 0.3 s")
    assert reason.endswith("stopped sending; 3 digests stay pending for the next run")
    rows = store.deliveries(DATE)
    assert [rows[e].status for e in emails] == ["unknown", "unknown", "pending", "pending", "pending"]


def test_a_reply_that_is_not_utf8_is_recorded_and_reported_as_text(store):
    emails = readers(2)
    pending(store, emails)
    with hostile_smtp(data_reply=b"250 2.0.0 Ok: angenommen f\xfcr Empf\xe4nger") as server:
        report = run(store, Builds(emails), plain("127.0.0.1", server.port), concurrency=1)
    assert sorted(report.sent) == emails
    row = store.deliveries(DATE)[emails[0]]
    assert (row.status, row.reply) == ("sent", "250 2.0.0 Ok: angenommen f\ufffdr Empf\ufffdnger")
    assert store.sent_paper_ids(emails[0]) == set(PAPERS)
