"""The sender: pull digests from a lazy list of jobs, send each through a transport, keep the ledger.

Exactly once, across crashes and re-runs, by the order of the ledger writes:

1. `mark_sending` is committed right before a message goes out: the transport calls back
   (`Ready`) once its connection is up and the rate token held, right before MAIL FROM. A crash
   from here on leaves 'sending', which the next run reports as unknown rather than sending a
   second copy; a crash before (rendering, waiting, connecting, reconnecting) leaves 'pending',
   which the next run simply sends.
2. The transport's outcome is recorded at once: 'sent'; back to 'pending' when nothing was taken
   (a 4xx, a dropped connection before the data, no connection at all), so the next run retries;
   'failed' for a 5xx (and the address suppressed when the refusal was of the recipient);
   'unknown' when the data went out and no reply came back, never resent blindly.

Workers build each message only when they take its job (or await it from the render workers,
which keep a bounded number ready: `pipeline/render_pool.py`), so a run never holds more than a
few rendered messages at once. After `max_connection_failures` connection failures in a
row (or one that cannot get better, like a server without STARTTLS or a digest over its SIZE), or
`max_timeouts` replies in a row that never came, the run stops sending and says why; on `stop`
(SIGTERM) each worker finishes the message in hand and takes no new job. Every reply is kept as
safe text (`printable`): no reply can crash a run or leave an accepted message 'sending'.
"""

from __future__ import annotations

import asyncio
import dataclasses
import datetime as dt
import logging
import random
from collections.abc import Awaitable, Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

from digest.config import DeliveryConfig
from digest.core.errors import DigestError
from digest.core.models import Subscriber
from digest.core.status import DeliveryStatus, SuppressionKind
from digest.deliver import ConnectionFailure, Outcome, OutgoingMessage, Transport, printable

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Job:
    """One digest to send. `build` renders the message only when a worker takes the job, or
    returns an awaitable of it (rendered ahead elsewhere: `pipeline/render_pool.py`)."""

    date: dt.date
    subscriber: Subscriber
    build: Callable[[], OutgoingMessage | Awaitable[OutgoingMessage]]


class Ledger(Protocol):
    """The send ledger (`digest.store.Store` is one): each call is its own committed transaction."""

    def mark_sending(self, date: dt.date, email: str, message_id: str, now: dt.datetime) -> None: ...

    def mark_sent(self, date: dt.date, email: str, reply: str, now: dt.datetime) -> None: ...

    def mark_status(
        self, date: dt.date, email: str, status: DeliveryStatus, reply: str | None, now: dt.datetime
    ) -> None: ...

    def suppress(
        self,
        email: str,
        reason: str,
        fingerprint: str,
        now: dt.datetime,
        *,
        kind: SuppressionKind = SuppressionKind.REFUSED,
    ) -> None: ...


@dataclass
class SendReport:
    """Who got what. Every job ends in exactly one of sent, failed, unknown and pending."""

    sent: list[str] = field(default_factory=list)
    failed: list[tuple[str, str]] = field(default_factory=list)  # (email, the server's reply)
    unknown: list[tuple[str, str]] = field(default_factory=list)  # (email, what happened)
    pending: list[str] = field(default_factory=list)  # the next run tries these again
    errors: list[tuple[str, str]] = field(default_factory=list)  # (email, why it could not be built); pending
    stopped_reason: str | None = None

    @property
    def total(self) -> int:
        return len(self.sent) + len(self.failed) + len(self.unknown) + len(self.pending)


async def send_all(
    jobs: Iterable[Job],
    transport: Transport,
    ledger: Ledger,
    config: DeliveryConfig,
    *,
    concurrency: int,
    clock: Callable[[], dt.datetime],
    stop: asyncio.Event | None = None,
    on_progress: Callable[[str, Outcome], None] | None = None,
    sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
) -> SendReport:
    """Send every job through `transport` (already entered) with `concurrency` workers."""
    run = _Run(iter(jobs), transport, ledger, config, clock, stop, on_progress, sleep)
    try:
        async with asyncio.TaskGroup() as group:
            for worker in range(max(1, concurrency)):
                group.create_task(run.worker(worker))
    except BaseExceptionGroup as failed:
        # Something no transport outcome covers (the ledger's disk is full, a bug): the other
        # workers were cancelled mid-message and keep 'sending', which the next run reports as
        # unknown. Raise the first error as itself, so the CLI prints its one line.
        raise failed.exceptions[0] from None
    return run.finish()


class _Run:
    def __init__(
        self,
        jobs: Iterator[Job],
        transport: Transport,
        ledger: Ledger,
        config: DeliveryConfig,
        clock: Callable[[], dt.datetime],
        stop: asyncio.Event | None,
        on_progress: Callable[[str, Outcome], None] | None,
        sleep: Callable[[float], Awaitable[object]],
    ) -> None:
        self.jobs = jobs
        self.transport = transport
        self.ledger = ledger
        self.config = config
        self.clock = clock
        self.stop = stop
        self.on_progress = on_progress
        self.sleep = sleep
        self.report = SendReport()
        self.connection_failures = 0  # in a row, over every worker
        self.timeouts = 0  # replies that never came, in a row, over every worker
        self.halt_reason: str | None = None
        self.halted = asyncio.Event()  # set when the run stops sending, for whatever reason

    def stopping(self) -> bool:
        if self.stop is not None and self.stop.is_set():
            self.halted.set()
        return self.halted.is_set()

    async def worker(self, worker: int) -> None:
        while not self.stopping():
            job = next(self.jobs, None)  # one event loop: no other worker runs between the checks
            if job is None:
                return
            await self.deliver(job, worker)

    async def deliver(self, job: Job, worker: int) -> None:
        email = job.subscriber.email
        try:
            built = job.build()
            message = built if isinstance(built, OutgoingMessage) else await built
        except Exception as exc:  # one reader's bad render must not stop everyone else's digest
            if isinstance(exc, DigestError):  # explained: one line is enough
                log.error("building the digest for %s: %s", email, exc)
            else:  # a bug: keep the traceback
                log.exception("building the digest for %s", email)
            self.report.errors.append((email, f"could not build the message: {exc}"))
            self.finish_job(email, Outcome("retry", f"could not build the message: {exc}"))
            return
        attempts = 0
        while True:
            window = _Window(self, job, message.message_id)
            try:
                outcome = await self.transport.send(message, worker, ready=window)
            except ConnectionFailure as exc:
                # Nothing was transmitted: the digest goes back to pending at once.
                self.ledger.mark_status(job.date, email, DeliveryStatus.PENDING, str(exc), self.clock())
                self.connection_failed(exc)
                if self.stopping() or not await self.pause(self.connection_failures):
                    self.finish_job(email, Outcome("retry", str(exc)))
                    return
                continue
            outcome = dataclasses.replace(outcome, reply=printable(outcome.reply))  # whatever the transport
            self.connection_failures = 0
            self.count_timeouts(outcome)
            attempts += 1
            if outcome.status != "retry":
                break
            self.ledger.mark_status(job.date, email, DeliveryStatus.PENDING, outcome.reply, self.clock())
            if attempts >= self.config.max_attempts or self.stopping() or not await self.pause(attempts):
                self.finish_job(email, outcome)
                return
            log.info("%s: %s; trying again (attempt %d)", email, outcome.reply, attempts + 1)
        self.record(job, outcome)
        self.finish_job(email, outcome)

    def record(self, job: Job, outcome: Outcome) -> None:
        """The final outcome of a message that was handed to the server, in the ledger."""
        email, now = job.subscriber.email, self.clock()
        if outcome.status == "sent":
            self.ledger.mark_sent(job.date, email, outcome.reply, now)
        elif outcome.status == "failed":
            self.ledger.mark_status(job.date, email, DeliveryStatus.FAILED, outcome.reply, now)
            if outcome.suppress:
                # Stands until the profile is edited (the address fixed): the fingerprint is that
                # of the profile the refused message was sent for.
                fingerprint = job.subscriber.fingerprint
                self.ledger.suppress(email, outcome.reply, fingerprint, now, kind=SuppressionKind.REFUSED)
        else:
            self.ledger.mark_status(job.date, email, DeliveryStatus.UNKNOWN, outcome.reply, now)

    def finish_job(self, email: str, outcome: Outcome) -> None:
        if outcome.status == "sent":
            self.report.sent.append(email)
        elif outcome.status == "failed":
            self.report.failed.append((email, outcome.reply))
        elif outcome.status == "unknown":
            self.report.unknown.append((email, outcome.reply))
        else:
            self.report.pending.append(email)
        if self.on_progress is not None:
            self.on_progress(email, outcome)

    def connection_failed(self, exc: ConnectionFailure) -> None:
        self.connection_failures += 1
        log.warning("%s (%d in a row)", exc, self.connection_failures)
        if self.halt_reason is not None:
            return
        if exc.permanent:
            self.halt_reason = str(exc)
        elif self.connection_failures >= self.config.max_connection_failures:
            self.halt_reason = (
                f"{self.connection_failures} connection failures in a row to {exc.server} ({exc.reason})"
            )
        if self.halt_reason is not None:
            self.halted.set()

    def count_timeouts(self, outcome: Outcome) -> None:
        """A server that stops answering would cost every message the full timeout, one after the
        other: after `max_timeouts` in a row the run stops sending (the breaker)."""
        if not outcome.timeout:
            self.timeouts = 0
            return
        self.timeouts += 1
        log.warning("%s (%d in a row)", outcome.reply, self.timeouts)
        if self.halt_reason is None and self.timeouts >= self.config.max_timeouts:
            self.halt_reason = (
                f"{self.timeouts} timeouts in a row, the server does not answer ({outcome.reply}; "
                f"[delivery] max_timeouts = {self.config.max_timeouts})"
            )
            self.halted.set()

    async def pause(self, nth: int) -> bool:
        """Back off before try `nth + 1` (doubling, with jitter); False when the run stopped meanwhile."""
        delay = self.config.retry_backoff * 2 ** (nth - 1) * random.uniform(0.5, 1.0)
        sleeper = asyncio.ensure_future(self.sleep(delay))
        waiters = {sleeper, asyncio.ensure_future(self.halted.wait())}
        if self.stop is not None:
            waiters.add(asyncio.ensure_future(self.stop.wait()))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()
        return not self.stopping()

    def finish(self) -> SendReport:
        for job in self.jobs:  # never taken: their rows were never touched and stay pending
            self.report.pending.append(job.subscriber.email)
        left = len(self.report.pending)
        stay = f"{left} digests stay" if left != 1 else "1 digest stays"
        if self.halt_reason is not None:
            self.report.stopped_reason = (
                f"{self.halt_reason}: stopped sending; {stay} pending for the next run"
            )
        elif self.stop is not None and self.stop.is_set() and left:
            self.report.stopped_reason = f"asked to stop: {stay} pending for the next run"
        return self.report


class _Window:
    """The `Ready` the sender hands the transport for one attempt: 'sending' is committed when the
    transport opens the transaction, 'pending' again if it has to reconnect first."""

    def __init__(self, run: _Run, job: Job, message_id: str) -> None:
        self.run, self.job, self.message_id = run, job, message_id

    def __call__(self) -> None:
        self.run.ledger.mark_sending(
            self.job.date, self.job.subscriber.email, self.message_id, self.run.clock()
        )

    def undo(self, why: str) -> None:
        email, now = self.job.subscriber.email, self.run.clock()
        self.run.ledger.mark_status(self.job.date, email, DeliveryStatus.PENDING, printable(why), now)
