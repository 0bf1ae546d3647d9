"""`RenderPool` (issue 20): messages rendered ahead in a forked worker, fed to the real sender
(`send_all`) and a real transport (aiosmtpd on 127.0.0.1, or the outbox), with the real SQLite
ledger. The worker renders, the main process keeps the ledger: what was rendered ahead and not
sent stays 'pending', a worker's failure costs only the messages it had in hand."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import os
import subprocess
import sys
import textwrap
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from smtp_servers import AcceptAll, smtp_server

from digest.config import DeliveryConfig, Settings, SmtpConfig
from digest.core.errors import RenderError
from digest.core.models import RenderedEmail, Subscriber
from digest.deliver import OutgoingMessage, Transport
from digest.deliver.message import build_message
from digest.deliver.outbox import OutboxTransport
from digest.deliver.sender import Job, SendReport, send_all
from digest.deliver.smtp import SmtpTransport
from digest.pipeline import render_pool
from digest.pipeline.render_pool import RenderPool
from digest.pipeline.render_workers import NICER
from digest.store import Store

DATE = dt.date(2024, 11, 28)
NOW = dt.datetime(2024, 11, 28, 7, 0, tzinfo=dt.UTC)
SETTINGS = Settings(smtp={"from": "Paper Digest <digest@example.org>"})
FAST = DeliveryConfig(retry_backoff=0.001, max_attempts=2, max_connection_failures=3)
MAIN = os.getpid()


def readers(n: int) -> list[str]:
    return [f"reader{i:02d}@example.org" for i in range(n)]


def message(addr: str) -> OutgoingMessage:
    """The reader's message, its subject naming the process that built it."""
    rendered = RenderedEmail(subject=f"built by {os.getpid()}", html="<p>two</p>", text="two")
    return build_message(rendered, Subscriber(email=addr), SETTINGS, date=DATE, key=b"k", now=NOW)


def jobs(emails: list[str], build: Callable[[str], OutgoingMessage] = message) -> list[Job]:
    return [Job(DATE, Subscriber(email=addr), lambda addr=addr: build(addr)) for addr in emails]


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    with Store.open(tmp_path / "state.sqlite3") as s:
        for addr in readers(40):
            s.mark_pending(DATE, addr, ["2411.00001"], NOW)
        yield s


def send(
    store: Store,
    todo: list[Job],
    transport: Transport,
    *,
    stop_after: int = 0,
    concurrency: int = 1,
    **pool: Any,
) -> SendReport:
    """Every job through `send_all` (`concurrency` senders) with its messages from a
    `RenderPool`; `stop_after` sent messages, the run is asked to stop."""

    async def go(rendered: RenderPool) -> SendReport:
        stop, done = asyncio.Event(), []

        def progress(email: str, outcome: Any) -> None:
            done.append(email)
            if stop_after and len(done) >= stop_after:
                stop.set()

        async with transport:
            return await send_all(
                rendered,
                transport,
                store,
                FAST,
                concurrency=concurrency,
                clock=lambda: NOW,
                stop=stop,
                on_progress=progress,
            )

    with RenderPool(todo, pool.pop("workers", 1), **pool) as rendered:
        return asyncio.run(go(rendered))


def statuses(store: Store) -> Counter[str]:
    return Counter(str(row.status) for row in store.deliveries(DATE).values())


def test_messages_are_built_in_the_worker_and_each_sent_once(store: Store) -> None:
    emails = readers(12)
    with smtp_server(AcceptAll()) as (host, port, handler):
        config = SmtpConfig(host=host, port=port, security="none", timeout=5, concurrency=2)
        report = send(store, jobs(emails), SmtpTransport(config), concurrency=2)
        assert handler.wait_for(12)
    assert sorted(report.sent) == emails and not report.errors
    assert Counter(handler.recipients()) == Counter(emails)
    builders = {r.message["Subject"] for r in handler.received}
    assert f"built by {MAIN}" not in builders and len(builders) == 1  # one worker, not this process
    assert all(store.delivery(DATE, addr).status == "sent" for addr in emails)  # type: ignore[union-attr]


def test_two_workers_keep_the_order_of_the_jobs(store: Store, tmp_path: Path) -> None:
    emails = readers(9)
    report = send(store, jobs(emails), OutboxTransport(tmp_path / "outbox"), workers=2)
    assert report.sent == emails  # the outbox takes one at a time: in the jobs' order
    assert len({p.read_bytes().split(b"built by ")[1][:8] for p in (tmp_path / "outbox").iterdir()}) == 2


def test_a_stopped_run_renders_only_a_bounded_few_ahead_and_leaves_them_pending(
    store: Store, tmp_path: Path
) -> None:
    marks = tmp_path / "rendered"
    marks.mkdir()

    def build(addr: str) -> OutgoingMessage:
        (marks / addr).touch()
        return message(addr)

    emails = readers(40)
    report = send(store, jobs(emails, build), OutboxTransport(tmp_path / "outbox"), stop_after=1, ahead=4)
    assert len(report.sent) == 1 and len(report.pending) == 39
    assert len(list(marks.iterdir())) <= 4 + 2  # a bounded few, never the whole run
    assert statuses(store) == Counter({"sent": 1, "pending": 39})  # rendered ahead: still pending


def test_a_render_error_in_the_worker_is_that_readers_alone(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def build(addr: str) -> OutgoingMessage:
        if addr == "reader01@example.org":
            raise RenderError("the template broke")
        if addr == "reader02@example.org":
            raise ValueError("a bug")
        return message(addr)

    emails = readers(5)
    with caplog.at_level(logging.ERROR, logger="digest"):
        report = send(store, jobs(emails, build), OutboxTransport(tmp_path / "outbox"))
    assert sorted(report.sent) == [emails[0], *emails[3:]]
    assert sorted(report.pending) == emails[1:3]
    assert dict(report.errors)[emails[1]] == "could not build the message: the template broke"
    assert "ValueError: a bug" in dict(report.errors)[emails[2]]
    assert "in the render worker" in caplog.text  # a bug keeps the worker's traceback
    assert statuses(store)["sending"] == 0


def test_a_worker_that_dies_costs_only_the_messages_in_its_hands(
    store: Store, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    def build(addr: str) -> OutgoingMessage:
        if addr == "reader03@example.org" and os.getpid() != MAIN:
            os._exit(3)
        return message(addr)

    emails = readers(30)
    with caplog.at_level(logging.WARNING, logger="digest"):
        report = send(store, jobs(emails, build), OutboxTransport(tmp_path / "outbox"), ahead=4)
    assert "the render worker stopped (exit code 3)" in caplog.text
    assert emails[3] in report.pending and emails[:3] == sorted(report.sent)[:3]
    assert set(emails[10:]) <= set(report.sent)  # built in this process after the worker died
    assert len(report.pending) <= 4 + 2 and report.total == 30  # ahead + the connections
    assert statuses(store)["sending"] == 0


def test_a_stuck_worker_is_killed_and_the_run_goes_on(
    store: Store, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(render_pool, "RENDER_TIMEOUT", 1.0)

    def build(addr: str) -> OutgoingMessage:
        if addr == "reader02@example.org" and os.getpid() != MAIN:
            time.sleep(3600)  # as if waiting for a lock another thread held at the fork
        return message(addr)

    emails = readers(12)
    report = send(store, jobs(emails, build), OutboxTransport(tmp_path / "outbox"), ahead=3)
    assert emails[2] in report.pending and "was stopped" in dict(report.errors)[emails[2]]
    assert set(emails[:2]) | set(emails[8:]) <= set(report.sent) and report.total == 12
    assert statuses(store)["sending"] == 0


def test_the_worker_keeps_no_descriptor_of_the_run(store: Store, tmp_path: Path) -> None:
    """Above all not the state's lock: an flock held by a forked copy would outlive a killed run."""

    def build(addr: str) -> OutgoingMessage:
        rendered = RenderedEmail(subject=" ".join(sorted(os.listdir("/proc/self/fd"))), html="<p/>", text="-")
        return build_message(rendered, Subscriber(email=addr), SETTINGS, date=DATE, key=b"k", now=NOW)

    with store.lock(), open(tmp_path / "held", "w") as held:
        send(store, jobs(readers(1), build), OutboxTransport(tmp_path / "outbox"))
        assert held.fileno() > 2
    (eml,) = (tmp_path / "outbox").iterdir()
    fds = eml.read_bytes().split(b"Subject: ")[1].split(b"\r\n")[0].split()
    assert len(fds) <= 5  # stdin, stdout, stderr, the pipe, and listdir's own


def test_the_worker_renders_behind_the_event_loop(store: Store, tmp_path: Path) -> None:
    """Nicer than the run (`render_workers.NICER`): it renders ahead, the loop drives the connections."""

    def build(addr: str) -> OutgoingMessage:
        rendered = RenderedEmail(subject=f"nice {os.nice(0)}", html="<p/>", text="-")
        return build_message(rendered, Subscriber(email=addr), SETTINGS, date=DATE, key=b"k", now=NOW)

    send(store, jobs(readers(1), build), OutboxTransport(tmp_path / "outbox"))
    (eml,) = (tmp_path / "outbox").iterdir()
    assert f"Subject: nice {min(19, os.nice(0) + NICER)}\r\n".encode() in eml.read_bytes()


KILLED = textwrap.dedent(
    """
    import asyncio, datetime as dt, os, signal, sys, time
    sys.path.insert(0, sys.argv[1])
    import test_render_pool as t
    from digest.pipeline.render_pool import RenderPool

    def slow(addr):
        time.sleep(0.2)
        return t.message(addr)

    async def main(pool):
        job = next(iter(pool))
        await job.build()
        print(pool.procs[0].pid, flush=True)
        os.kill(os.getpid(), signal.SIGKILL)

    with RenderPool(t.jobs(t.readers(20), slow), 1, ahead=8) as pool:
        asyncio.run(main(pool))
    """
)


def test_the_worker_exits_when_the_run_is_killed(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-c", KILLED, str(Path(__file__).parent)], capture_output=True, text=True, timeout=60
    )
    assert proc.returncode == -9, proc.stderr
    worker = int(proc.stdout.split()[0])
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            if psutil.Process(worker).status() == psutil.STATUS_ZOMBIE:
                break
        except psutil.NoSuchProcess:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the render worker {worker} outlived the killed run")
