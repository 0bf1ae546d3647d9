"""From a plan's sends to messages on the wire: building each message just before it goes out
(in a forked render worker, a bounded few ahead of the sender: `render_pool.py`), the transport,
and carrying a stop request (a signal, `digest serve` stopping) into the sender.

The ledger's order is the sender's (`digest.deliver.sender`): 'sending' is committed before a
message leaves, 'sent' after the server accepted it.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import logging
import signal
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from digest.config import Settings
from digest.core.models import Digest, Paper, Subscriber, utcnow
from digest.core.progress import Progress
from digest.core.tldr import TldrBook
from digest.core.tokens import feed_token
from digest.deliver.message import OutgoingMessage, build_message, feedback_urls, manage_url, unsubscribe_urls
from digest.deliver.outbox import OutboxTransport
from digest.deliver.sender import Job, SendReport, send_all
from digest.deliver.smtp import SmtpTransport
from digest.explain import similar_of
from digest.pipeline.render_pool import RenderPool
from digest.pipeline.render_workers import Recipe, RenderWorkers
from digest.plan import Send, explained
from digest.render.archive import archive_url, private_feed_url
from digest.render.email import EmailRenderer, Links
from digest.store import Store

_log = logging.getLogger("digest")


@dataclass(frozen=True)
class MessageBuilder:
    """Renders one digest into a ready-to-send message with this run's renderer, key and clock."""

    renderer: EmailRenderer
    settings: Settings
    key: bytes
    date: dt.date
    now: dt.datetime
    tldrs: TldrBook = dataclasses.field(default_factory=TldrBook)  # [summaries]: by language

    def __call__(self, digest: Digest, message_id: str | None = None) -> OutgoingMessage:
        # The footer and the List-Unsubscribe header show the same links: sign them once.
        unsubscribe = unsubscribe_urls(self.settings, self.key, digest.subscriber.email)
        links = links_for(self.settings, self.key, digest.subscriber, self.date, unsubscribe=unsubscribe)
        sub, papers = digest.subscriber, [m.paper.id for m in digest.matches]
        examples = bool(sub.like or sub.dislike or digest.similar)  # `[relevance] feedback_links`
        feedback = feedback_urls(self.settings, self.key, sub.email, papers, examples=examples)
        links = dataclasses.replace(links, feedback=feedback)
        if sub.trending:  # its papers are a week's or a month's, not on the day's archive page
            links = dataclasses.replace(links, archive=None)
        language = self.settings.summaries.language_for(digest.subscriber.language)
        rendered = self.renderer.render(digest, links, self.tldrs.for_language(language))
        return build_message(
            rendered,
            digest.subscriber,
            self.settings,
            date=self.date,
            key=self.key,
            now=self.now,
            unsubscribe=unsubscribe,
            message_id=message_id,
        )


def links_for(
    settings: Settings,
    key: bytes,
    sub: Subscriber,
    date: dt.date,
    *,
    unsubscribe: tuple[str, str | None] | None = None,
) -> Links:
    """The reader's links in the email: unsubscribe (`unsubscribe_urls`, unless given), private
    feed, the day's archive page."""
    mailto, https = unsubscribe or unsubscribe_urls(settings, key, sub.email)
    feed = private_feed_url(settings, feed_token(key, sub.email)) if sub.feed else None
    manage = manage_url(settings, key, sub.email, date)
    return Links(unsubscribe=https or mailto, feed=feed, archive=archive_url(settings, date), manage=manage)


def jobs_for(sends: Sequence[Send], build: MessageBuilder, store: Store) -> Iterator[Job]:
    """A job per send. A job holds a recipe, not a message: rendering happens when a sender
    takes the job, so a run never holds every rendered email at once. A late digest is rebuilt
    from its ledger row and that day's snapshot."""
    snapshots: dict[dt.date, dict[str, Paper]] = {}
    rows = [send.late for send in sends if send.late is not None]  # read from the ledger at once
    recorded = store.recorded_digests([(row.date, row.email) for row in rows]) if rows else {}
    sent = store.sent_papers_of(row.email for row in rows) if rows else {}
    for send in sends:
        digest, builder = send.digest, build
        if send.late is not None:
            key = (send.late.date, send.late.email)
            found = _Recorded(*recorded.get(key, ({}, None)), sent.get(send.late.email, set()))
            digest = late_digest(store, send, snapshots, found)
            builder = dataclasses.replace(build, date=send.date)
        assert digest is not None
        yield Job(
            date=send.date, subscriber=send.subscriber, build=Recipe(builder, digest, send.resend_message_id)
        )


def _row_papers(
    store: Store, ids: Sequence[str], date: dt.date, snapshots: dict[dt.date, dict[str, Paper]]
) -> dict[str, Paper]:
    """The papers of a recorded digest: its day's, a week's earlier days' (each snapshot read once
    per run), a trending list's (`trending_lists`)."""
    papers = snapshots[date]
    if missing := [pid for pid in ids if pid not in papers]:
        for day in store.listing_days(missing):
            if day not in snapshots:
                snapshots[day] = {p.id: p for p in store.snapshot(day) or []}
            papers = {**snapshots[day], **papers}
        if still := [pid for pid in missing if pid not in papers]:
            papers = {**store.papers(still), **papers}
    return papers


class _Recorded(NamedTuple):
    """What the ledger holds of a recorded digest (read for many at once by `jobs_for`)."""

    why: dict[str, Any]  # why each paper matched, by id
    total: int | None  # how many matched in all
    sent: set[str]  # every paper the reader was already emailed


def late_digest(
    store: Store, send: Send, snapshots: dict[dt.date, dict[str, Paper]], found: _Recorded | None = None
) -> Digest:
    """An earlier date's digest as it was recorded: its papers, why they matched, its total
    (`found`, when read already)."""
    row = send.late
    assert row is not None
    if row.date not in snapshots:
        snapshots[row.date] = {p.id: p for p in store.snapshot(row.date) or []}
    if found is None:
        found = _Recorded(*store.recorded_digest(row.date, row.email), store.sent_paper_ids(row.email))
    why, total = found.why, found.total
    papers = _row_papers(store, row.papers, row.date, snapshots)
    # never a paper that reached the reader in another digest since this one was recorded
    already = found.sent.intersection(row.papers)
    matches = tuple(
        explained(papers[pid], why.get(pid, {})) for pid in row.papers if pid in papers and pid not in already
    )
    similar = {m.paper.id: near for m in matches if (near := similar_of(why.get(m.paper.id)))}
    return Digest(
        subscriber=send.subscriber,
        date=row.date,
        matches=matches,
        total_matched=total or len(matches),
        similar=similar,
    )


def send_mail(
    settings: Settings,
    store: Store,
    sends: Sequence[Send],
    build: MessageBuilder,
    *,
    run: dt.date,
    stop: threading.Event | None,
    progress: Progress,
    signals: contextlib.ExitStack | None,
    early: RenderWorkers | None = None,
) -> SendReport | None:
    """The run's emails, each rendered just before it goes out (None: there were none). With
    `signals` (`digest run`), SIGTERM and Ctrl-C set `stop` from the first message to the end of
    the run (publishing included): the messages in hand are finished, the rest stay pending.
    `early`: render workers forked at the start of the run, which render them."""
    jobs = list(jobs_for(sends, build, store))
    if not jobs:
        return None
    if signals is not None and stop is not None:
        signals.callback(stop_on_signals(stop))
    report = send_jobs(settings, store, jobs, stop=stop, progress=progress, run=run, early=early)
    # PostgreSQL: a runner that died meanwhile left digests it had claimed. The claims made ahead
    # for the render worker tried them again too early to see it die: take them now, until none
    # is freed (on a SQLite file every job is in the report already, and nothing is left).
    while report.stopped_reason is None and not (stop is not None and stop.is_set()):
        done = {*report.sent, *report.pending, *(e for e, _ in (*report.failed, *report.unknown))}
        rest = [job for job in jobs if job.subscriber.email not in done]
        freed = store.claim([(job.date, job.subscriber.email) for job in rest], run) if rest else set()
        if not freed:
            break
        again = [job for job in rest if (job.date, job.subscriber.email) in freed]
        report = _merged(report, send_jobs(settings, store, again, stop=stop, progress=progress, run=run))
    return report


def _merged(first: SendReport, then: SendReport) -> SendReport:
    return SendReport(
        sent=first.sent + then.sent,
        failed=first.failed + then.failed,
        unknown=first.unknown + then.unknown,
        pending=first.pending + then.pending,
        errors=first.errors + then.errors,
        stopped_reason=then.stopped_reason,
    )


CLAIM_BATCH = 32  # digests claimed at once (one statement): a runner that dies frees as many


def claimed(store: Store, jobs: Sequence[Job], run: dt.date) -> Iterator[int]:
    """The indices of `jobs` this runner sends, claimed a batch at a time as the sender gets to
    them (`Store.claim`; on a SQLite file, all of them). Jobs another runner held are tried once
    more at the end, in case it died meanwhile, until a pass claims nothing."""
    left = list(range(len(jobs)))
    while left:
        tried, left, claimed_any = left, [], False
        for start in range(0, len(tried), CLAIM_BATCH):
            batch = tried[start : start + CLAIM_BATCH]
            keys = [(jobs[i].date, jobs[i].subscriber.email) for i in batch]
            taken = store.claim(keys, run)
            for index, key in zip(batch, keys, strict=True):
                if key in taken:
                    claimed_any = True
                    yield index
                else:
                    left.append(index)
        if not claimed_any:
            return


def send_jobs(
    settings: Settings,
    store: Store,
    jobs: Sequence[Job],
    *,
    stop: threading.Event | None,
    progress: Progress,
    run: dt.date,
    early: RenderWorkers | None = None,
) -> SendReport:
    """Send `jobs` (the run of `run`'s), each claimed first: on a PostgreSQL state that other
    runners share, each runner sends the share it claims. `early`: render workers forked at the
    start of the run (without them, they are forked here)."""
    if settings.transport == "smtp":
        sink: Any = SmtpTransport(settings.smtp)
        concurrency = settings.smtp.concurrency
    else:
        sink = OutboxTransport(settings.delivery.outbox)
        concurrency = 1
    advance = progress.stage("send", len(jobs))
    # [delivery] render_workers: the messages are rendered ahead in forked processes (`early`, or
    # forked here, before the event loop runs), so the connections never wait while Jinja holds
    # the GIL.
    workers = settings.delivery.render_workers
    order = claimed(store, jobs, run)
    pool = RenderPool(jobs, workers, order=order, early=early) if workers and jobs else None

    async def go(todo: Iterable[Job]) -> SendReport:
        stop_event = _StopEvent(stop) if stop is not None else asyncio.Event()
        watcher = asyncio.create_task(_mirror(stop, stop_event)) if stop is not None else None
        try:
            async with sink:
                return await send_all(
                    todo,
                    sink,
                    store,
                    settings.delivery,
                    concurrency=concurrency,
                    clock=utcnow,
                    stop=stop_event,
                    on_progress=lambda email, outcome: advance(f"{email}: {outcome.status}"),
                )
        finally:
            if watcher is not None:
                watcher.cancel()

    # A 'sent' mark may share the next 'sending' commit (`grouped_commits`); under a rate limit
    # the next one waits for its turn first, and a run killed meanwhile would leave the accepted
    # message 'sending' (unknown). A rate-limited run has time for a commit per mark.
    limited = settings.transport == "smtp" and settings.smtp.rate > 0
    with pool or contextlib.nullcontext(), contextlib.nullcontext() if limited else store.grouped_commits():
        return asyncio.run(go(pool or (jobs[index] for index in order)))


class _StopEvent(asyncio.Event):
    """The event loop's stop event, which also reads as set the moment the thread-side `stop` is
    (set by a signal handler, or by `digest serve`'s main thread): a worker checks it between two
    messages and takes no new one, however fast the server answers. Waiters (a retry's back-off)
    are woken by `_mirror`."""

    def __init__(self, stop: threading.Event) -> None:
        super().__init__()
        self._thread_stop = stop

    def is_set(self) -> bool:
        return self._thread_stop.is_set() or super().is_set()


async def _mirror(stop: threading.Event, stop_event: asyncio.Event) -> None:
    """Carry a thread-side stop request (SIGTERM in `digest serve`) into the event loop.

    Polling keeps no thread behind once sending is over; a fifth of a second is far below the
    time one message takes.
    """
    while not stop.is_set():
        await asyncio.sleep(0.2)
    stop_event.set()


def stop_on_signals(stop: threading.Event) -> Callable[[], None]:
    """SIGTERM and SIGINT set `stop` (the run in progress finishes the message being sent, records
    it and leaves the rest pending); returns a function that puts the old handlers back.

    Used by `digest run` (a systemd stop or a cancelled GitHub Action sends one of them) and by
    `digest serve`. In a thread other than the main one, signals cannot be caught: nothing is done.
    """
    if threading.current_thread() is not threading.main_thread():
        return lambda: None

    def handler(signum: int, _frame: object) -> None:
        if stop.is_set():
            _log.info("already stopping; what is in hand is finished and recorded first")
        else:
            # also while publishing, once the emails are out: the feeds in hand are written too
            _log.info(
                "%s received: finishing what is in hand (the message being sent, or the feeds being "
                "written), then stopping; digests not sent yet stay pending",
                signal.Signals(signum).name,
            )
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
