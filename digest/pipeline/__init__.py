"""The daily run, stage by stage: fetch → snapshot → diff → match → render → send → publish.

A thin orchestrator: each stage lives in its own module and this one only calls them in order,
collects per-subscriber results and owns the order of the state changes that make a run safe to
kill and re-run:

1. everything that can be checked before touching the network is (config, profiles, templates);
2. all sources are fetched and parsed before anything is stored, so a failed fetch stores nothing;
3. the snapshot and its HTTP validators are stored in one transaction;
4. each digest goes pending → sending → sent/failed/unknown in the ledger, 'sending' committed
   before the message goes out (the 'sent' mark rides on the next commit, see
   `Store.grouped_commits`), so a re-run sends only what is still pending and nobody gets two
   copies;
5. feeds and archive are written last, each file atomically.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import datetime as dt
import functools
import logging
import os
import signal
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, overload

from digest.config import Settings, signing_key
from digest.core.errors import ConfigError, DigestError
from digest.core.models import DiffResult, Digest, Hit, Match, Paper, Subscriber, merge_papers, utcnow
from digest.core.progress import Progress, QuietProgress
from digest.core.tokens import feed_token
from digest.deliver.message import OutgoingMessage, build_message, unsubscribe_urls
from digest.deliver.outbox import OutboxTransport
from digest.deliver.sender import Job, SendReport, send_all
from digest.deliver.smtp import SmtpTransport
from digest.diff import diff
from digest.matching.matcher import Matcher
from digest.profiles import load_subscribers, subscribers_path_from
from digest.render.archive import (
    Day,
    PrivateFeed,
    archive_url,
    private_feed_path,
    private_feed_url,
    publish_site,
)
from digest.render.email import EmailRenderer, Links
from digest.sources import fetch_listing
from digest.sources.fetch import CachedResponse, Fetcher, FetchResult
from digest.store import Store

_log = logging.getLogger("digest")

UNSUBSCRIBED = "unsubscribed by the reader"  # the suppression reason `digest unsubscribe` records

# Exit codes of `digest run` (documented in docs/reference.md; alerting relies on them).
EXIT_OK = 0
EXIT_FAILED = 1  # the run failed before sending; the state is as it was
EXIT_LOCKED = 3  # another run holds the lock; nothing was done
EXIT_PARTIAL = 4  # some recipients failed, are unknown, or stay pending; the others were sent


@dataclass
class RunSummary:
    date: dt.date
    dry_run: bool = False
    new: int = 0
    updates: int = 0
    subscribers: int = 0
    matched: int = 0  # subscribers with at least one paper
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    skipped: int = 0  # nothing matched (and empty = "skip"), or already sent for this date
    suppressed: list[str] = field(default_factory=list)
    rendered: int = 0  # dry run: digests rendered
    stopped_reason: str | None = None
    publish_error: str | None = None  # the emails went out, the feeds and archive could not be written
    outputs: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    @property
    def exit_code(self) -> int:
        trouble = self.failed or self.unknown or self.pending or self.publish_error
        return EXIT_PARTIAL if trouble else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "new": self.new,
            "updates": self.updates,
            "subscribers": self.subscribers,
            "matched": self.matched,
            "sent": self.sent,
            "failed": len(self.failed),
            "unknown": len(self.unknown),
            "pending": len(self.pending),
            "skipped": self.skipped,
            "suppressed": len(self.suppressed),
            "publish_error": self.publish_error,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def lines(self) -> list[str]:
        """A plain summary for logs."""
        out = [
            f"digest {'dry run' if self.dry_run else 'run'} for {self.date}: {self.new} new papers, "
            f"{self.updates} updates, {self.subscribers} subscribers, {self.matched} matched",
            f"emails: {self.sent} sent, {len(self.failed)} failed, {len(self.unknown)} unknown, "
            f"{len(self.pending)} pending, {self.skipped} skipped, {len(self.suppressed)} suppressed"
            + (f", {self.rendered} rendered (not sent)" if self.dry_run else ""),
        ]
        out += [f"failed: {email}: {reply}" for email, reply in self.failed]
        out += [f"unknown (maybe delivered, not resent): {email}: {reply}" for email, reply in self.unknown]
        if self.stopped_reason:
            out.append(f"stopped: {self.stopped_reason}")
        if self.publish_error:
            out.append(f"publish failed (the emails were sent): {self.publish_error}")
        if self.timings:
            out.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        return out


def run_date(settings: Settings, now: dt.datetime) -> dt.date:
    """Today in the configured time zone: what `--date` defaults to."""
    return now.astimezone(settings.schedule.tz).date()


class _Timer:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, stage: str) -> _Stage:
        return _Stage(self.timings, stage)


class _Stage:
    def __init__(self, timings: dict[str, float], stage: str) -> None:
        self.timings, self.stage = timings, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.start


# -- stage: fetch -------------------------------------------------------------------------------------
def fetch_all(
    settings: Settings,
    cache: dict[str, CachedResponse],
    date: dt.date,
    now: dt.datetime,
    *,
    transport: Any = None,
    progress: Progress | None = None,
) -> tuple[list[Paper], list[FetchResult]]:
    """Fetch and parse every source; any failure raises before anything is stored."""
    papers: list[Paper] = []
    responses: list[FetchResult] = []
    progress = progress or QuietProgress()
    advance = progress.stage("fetch", len(settings.sources))
    with Fetcher(settings.fetch, cache, transport=transport) as fetcher:
        for source in settings.sources:
            listing, results = fetch_listing(source, fetcher, date, now=now)
            papers.extend(listing.papers)
            responses.extend(results)
            advance(f"{source.name}: {len(listing.papers)} papers")
    return merge_papers(papers), responses


def new_on(store: Store, date: dt.date) -> DiffResult | None:
    """The diff of a stored snapshot against everything before it (None: no snapshot that day)."""
    papers = store.snapshot(date)
    if papers is None:
        return None
    return diff(papers, store.seen_before(date, [p.id for p in papers]))


def fetch_and_store(
    settings: Settings,
    store: Store,
    date: dt.date,
    now: dt.datetime,
    *,
    dry_run: bool = False,
    transport: Any = None,
    progress: Progress | None = None,
) -> DiffResult:
    """fetch → snapshot → diff: the first half of every run (and all of `digest fetch`).

    A day's listing is fetched once: when a snapshot of `date` is
    stored, it is what the day's papers are, and re-running the day (to send what is pending)
    gives the same answer. Fetching again would store what the sources list *now* under `date`;
    papers added since, which the next day's run would send as new, would then count as seen
    before it, and readers already sent the day's digest would never get them.
    """
    stored = new_on(store, date)  # a source added since joins from the next day
    if stored is not None:
        return stored
    if not dry_run:
        check_snapshot_date(store, date, run_date(settings, now))
    papers, responses = fetch_all(
        settings, store.http_cache(), date, now, transport=transport, progress=progress
    )
    result = diff(papers, store.seen_before(date, [p.id for p in papers]))
    if not dry_run:
        store.record_snapshot(date, papers, responses, sources=[s.name for s in settings.sources], now=now)
    return result


def _check_writable(folder: Path, key: str) -> None:
    """ConfigError unless `folder` can be written to, or made in its nearest existing parent:
    found before a run fetches and sends, not after. Nothing is created here."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"no permission to write in {existing}"
    if problem:
        raise ConfigError(f"{key} = {str(folder)!r}: cannot write there: {problem}")


def check_snapshot_date(store: Store, date: dt.date, today: dt.date) -> None:
    """ConfigError unless a snapshot may be stored for `date`: not after `today` (in the
    configured time zone), and not before the newest snapshot stored.

    What is new on a day is what no earlier snapshot lists, so a snapshot stored under an earlier
    date (a mistyped `--date 0206-...`) would make its papers "seen before" every later day: they
    would never be sent. A day is fetched once, so a snapshot stored ahead of its day (a listing
    such as arXiv's shows only the current one) would stand for that day when it comes.
    """
    if date > today:
        raise ConfigError(f"--date {date}: that is in the future (today is {today} in [schedule] timezone)")
    newest = store.snapshot_dates(limit=1)
    if newest and date < newest[0]:
        raise ConfigError(
            f"--date {date}: a snapshot for the later date {newest[0]} is already stored; storing one "
            f"for {date} would make its papers seen before {newest[0]}, never new; use {newest[0]} or later "
            "(or --dry-run to look without storing)"
        )


# -- the daily run ------------------------------------------------------------------------------------
def run(
    settings: Settings,
    *,
    subscribers_path: Path | str | None = None,
    date: dt.date | None = None,
    dry_run: bool = False,
    retry_unknown: bool = False,
    now: dt.datetime | None = None,
    stop: threading.Event | None = None,
    log: Callable[[str], None] | None = None,
    progress: Progress | None = None,
    transport: Any = None,
    catch_signals: bool = False,
) -> RunSummary:
    """The main job. Raises DigestError when it fails before sending (state unchanged).

    `stop` ends sending after the messages in hand (the rest stay pending). With
    `catch_signals` (`digest run`), SIGTERM and SIGINT set it while sending, and only then:
    before, they end the process as usual, with the state as it was.
    """
    now = now or utcnow()
    date = date or run_date(settings, now)
    progress = progress or QuietProgress()
    summary = RunSummary(date=date, dry_run=dry_run)
    timer = _Timer(summary.timings)
    say = log or (lambda _msg: None)

    # 1. everything that can fail without the network fails first
    subscribers = load_subscribers(
        subscribers_path_from(subscribers_path, settings), source_names=[s.name for s in settings.sources]
    )
    summary.subscribers = len(subscribers)
    renderer = EmailRenderer(settings)
    if not dry_run:
        _check_writable(settings.output.dir, "[output] dir")
        if settings.transport == "outbox":
            _check_writable(settings.delivery.outbox, "[delivery] outbox")

    store = Store.open(settings.state.path)
    signals = contextlib.ExitStack()  # puts the signal handlers back, when sending installed them
    with store, store.lock(), signals:
        key = signing_key(settings, notice=say, keep=not dry_run)
        # 2–3. fetch, parse, diff; the snapshot is stored only when every source succeeded
        with timer("fetch"):
            result = fetch_and_store(
                settings, store, date, now, dry_run=dry_run, transport=transport, progress=progress
            )
        summary.new, summary.updates = len(result.new), len(result.updates)
        if not dry_run:
            store.start_run(date, now)

        # 4. match
        suppressions = store.suppressions()
        active: list[Subscriber] = []
        # an unsubscribe stands until `digest unsubscribe --undo`, whatever the address's case in
        # the file; a refusal until the profile is edited (the address fixed)
        unsubscribed = {email.lower() for email, held in suppressions.items() if held.reason == UNSUBSCRIBED}
        for sub in subscribers:
            held = suppressions.get(sub.email)
            if sub.email.lower() in unsubscribed or (
                held is not None and held.fingerprint == sub.fingerprint
            ):
                summary.suppressed.append(sub.email)
                continue
            if held is not None and not dry_run:
                store.lift_suppression(sub.email)  # the profile was edited: try the address again
            active.append(sub)
        with timer("match"):
            digests = _digests(store, active, result.new, date)
        summary.matched = sum(1 for d in digests if d.matches)

        # 5. render + send, lazily: one message is built just before it goes out
        with timer("send" if not dry_run else "render"):
            build = _Builder(renderer, settings, key, date, now)
            with store.transaction():  # every due digest recorded as pending in one commit
                jobs = list(
                    _late(store, active, build, summary, dry_run=dry_run, retry_unknown=retry_unknown)
                )
                jobs += _due(store, digests, build, summary, dry_run=dry_run, retry_unknown=retry_unknown)
            if dry_run:
                advance = progress.stage("render", len(jobs))
                for job in jobs:
                    job.build()
                    summary.rendered += 1
                    advance(job.subscriber.email)
            elif jobs:
                if catch_signals and stop is not None:
                    # From the first message to the run's record (publishing included), SIGTERM
                    # and Ctrl-C set `stop`: the messages in hand are finished, the rest pending.
                    signals.callback(stop_on_signals(stop))
                report = _send(settings, store, jobs, stop=stop, progress=progress)
                summary.sent = len(report.sent)
                summary.failed += report.failed  # after the late ones given up (`_late`)
                summary.unknown += report.unknown
                summary.pending = report.pending
                summary.stopped_reason = report.stopped_reason
        # Every digest is out: let the matches and the renderer's caches go before publishing,
        # which reads what it needs back from the ledger (the run's peak memory is here).
        del digests, jobs, build
        renderer.clear()

        # 6. publish feeds and archive. The emails are out and recorded: a failure here (a full
        # disk) is reported and makes the run partial; the next run publishes again.
        if not dry_run:
            try:
                with timer("publish"):
                    summary.outputs = publish(settings, store, key, subscribers, date, now)
            except (DigestError, OSError) as exc:
                summary.publish_error = str(exc)
            store.finish_run(
                date, "ok" if summary.exit_code == EXIT_OK else "partial", summary.as_dict(), utcnow()
            )
    return summary


def _digests(
    store: Store, subscribers: Sequence[Subscriber], papers: Sequence[Paper], date: dt.date
) -> list[Digest]:
    """Each reader's digest: their best matches minus papers already emailed to them, capped by
    max_papers, and how many of the others matched."""
    sent = store.sent_for_papers(p.id for p in papers)  # one query for everybody
    # ask for as many more as a reader could lose to papers already sent
    ranked = Matcher(subscribers).top(papers, extra={email: len(ids) for email, ids in sent.items()})
    below = _sent_below_the_cut(subscribers, papers, sent, ranked)
    out = []
    for sub in subscribers:
        found, total = ranked[sub.email]
        already = sent.get(sub.email, set())
        fresh = [m for m in found if m.paper.id not in already]
        total -= len(found) - len(fresh) + below.get(sub.email, 0)
        out.append(Digest(sub, date, tuple(fresh[: sub.max_papers]), total))
    return out


def _sent_below_the_cut(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    sent: dict[str, set[str]],
    ranked: dict[str, tuple[list[Match], int]],
) -> dict[str, int]:
    """How many papers already emailed to a reader matched but rank below what `top` returned.

    Rare (a paper sent before that is new again and ranks low), and exact: a paper matches on its
    own, so matching only those papers again counts them.
    """
    unsure = {}
    for email, ids in sent.items():
        found, total = ranked.get(email, ([], 0))
        if total > len(found) and (left := ids - {m.paper.id for m in found}):
            unsure[email] = left
    if not unsure:
        return {}
    again = Matcher([s for s in subscribers if s.email in unsure]).match(
        [p for p in papers if any(p.id in left for left in unsure.values())]
    )
    return {email: sum(1 for m in again[email] if m.paper.id in left) for email, left in unsure.items()}


def _due(
    store: Store,
    digests: Sequence[Digest],
    build: _Builder,
    summary: RunSummary,
    *,
    dry_run: bool,
    retry_unknown: bool,
) -> Iterator[Job]:
    """The digests still to send for the run date, recorded as pending in the ledger.

    A job holds a recipe, not a message: rendering happens when a sender takes the job, so a
    run never holds every rendered email at once.
    """
    date, now = build.date, build.now
    ledger = store.deliveries(date)
    for digest in digests:
        sub = digest.subscriber
        row = ledger.get(sub.email)
        if row is not None and row.status in ("sent", "failed"):
            summary.skipped += 1
            continue
        if row is not None and row.status == "sending":
            # a run died between handing the message over and hearing back: it may have arrived
            why = "the previous run stopped while sending"
            if not dry_run:
                store.mark_status(date, sub.email, "unknown", why, now)
            row = dataclasses.replace(row, status="unknown", reply=why)  # a dry run reports it the same
        if row is not None and row.status == "unknown" and not retry_unknown:
            summary.unknown.append((sub.email, row.reply or "delivery unknown"))
            continue
        if not digest.matches and sub.empty != "send":
            summary.skipped += 1
            continue
        if not dry_run:
            store.mark_pending(
                date,
                sub.email,
                [m.paper.id for m in digest.matches],
                now,
                explanations=explanations(digest.matches),
                total=digest.total_matched,
            )
        # a digest that may have arrived goes again under its Message-ID: a duplicate can be dropped
        resent_id = row.message_id if row is not None and row.status == "unknown" else None
        yield Job(date=date, subscriber=sub, build=functools.partial(build, digest, resent_id))


# How far back a run looks for digests an earlier run could not send (the SMTP server was down,
# the run was stopped): they go out late rather than never.
LATE_DAYS = 14


def _late(
    store: Store,
    subscribers: Sequence[Subscriber],
    build: _Builder,
    summary: RunSummary,
    *,
    dry_run: bool,
    retry_unknown: bool,
) -> Iterator[Job]:
    """Earlier dates' digests not sent yet: rebuilt from the ledger and that day's snapshot.

    Pending ones go out; unknown ones (a run died mid-send) are reported on every run until
    `--retry-unknown` resends them; those older than LATE_DAYS are given up, reported once as
    failed, since news that late is no digest.
    """
    by_email = {s.email: s for s in subscribers}
    snapshots: dict[dt.date, dict[str, Paper]] = {}
    since = build.date - dt.timedelta(days=LATE_DAYS)
    for row in store.unfinished_before(since):
        given_up = f"{row.date}: not sent within {LATE_DAYS} days of its date; given up"
        if not dry_run:  # also for readers who left: closed, so that no run reads them again
            store.mark_status(row.date, row.email, "failed", given_up, build.now)
        if row.email in by_email:
            summary.failed.append((row.email, given_up))
    for row in store.unfinished_before(build.date, since=since):
        sub = by_email.get(row.email)
        if sub is None:
            continue  # left, or suppressed since
        if row.status == "sending":
            stopped = "the previous run stopped while sending"
            if not dry_run:
                store.mark_status(row.date, row.email, "unknown", stopped, build.now)
            row = dataclasses.replace(row, status="unknown", reply=stopped)
        if row.status == "unknown" and not retry_unknown:
            summary.unknown.append((row.email, f"{row.date}: {row.reply or 'delivery unknown'}"))
            continue
        if row.date not in snapshots:
            snapshots[row.date] = {p.id: p for p in store.snapshot(row.date) or []}
        why = store.explanations(row.date, row.email)
        papers = snapshots[row.date]
        matches = tuple(_explained(papers[pid], why.get(pid, {})) for pid in row.papers if pid in papers)
        late = dataclasses.replace(build, date=row.date)
        total = store.delivery_total(row.date, row.email)
        digest = Digest(subscriber=sub, date=row.date, matches=matches, total_matched=total or len(matches))
        resent_id = row.message_id if row.status == "unknown" else None
        yield Job(date=row.date, subscriber=sub, build=functools.partial(late, digest, resent_id))


@dataclass(frozen=True)
class _Builder:
    """Renders one digest into a ready-to-send message with this run's renderer, key and clock."""

    renderer: EmailRenderer
    settings: Settings
    key: bytes
    date: dt.date
    now: dt.datetime

    def __call__(self, digest: Digest, message_id: str | None = None) -> OutgoingMessage:
        # The footer and the List-Unsubscribe header show the same links: sign them once.
        unsubscribe = unsubscribe_urls(self.settings, self.key, digest.subscriber.email)
        links = links_for(self.settings, self.key, digest.subscriber, self.date, unsubscribe=unsubscribe)
        rendered = self.renderer.render(digest, links)
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
    return Links(unsubscribe=https or mailto, feed=feed, archive=archive_url(settings, date))


def _send(
    settings: Settings,
    store: Store,
    jobs: Sequence[Job],
    *,
    stop: threading.Event | None,
    progress: Progress,
) -> SendReport:
    if settings.transport == "smtp":
        sink: Any = SmtpTransport(settings.smtp)
        concurrency = settings.smtp.concurrency
    else:
        sink = OutboxTransport(settings.delivery.outbox)
        concurrency = 1
    advance = progress.stage("send", len(jobs))

    async def go() -> SendReport:
        stop_event = _StopEvent(stop) if stop is not None else asyncio.Event()
        watcher = asyncio.create_task(_mirror(stop, stop_event)) if stop is not None else None
        try:
            async with sink:
                return await send_all(
                    jobs,
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

    with store.grouped_commits():
        return asyncio.run(go())


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


# -- stage: publish -----------------------------------------------------------------------------------
def publish(
    settings: Settings,
    store: Store,
    key: bytes,
    subscribers: Sequence[Subscriber],
    date: dt.date,
    now: dt.datetime,
) -> list[Path]:
    """Feeds and archive from the stored history: the last feed_days snapshot days up to `date`."""
    dates = store.snapshot_dates(until=date, limit=settings.output.feed_days)
    days = []
    by_id: dict[str, Paper] = {}
    for d in dates:
        result = new_on(store, d)
        papers = result.new if result else ()
        days.append(Day(date=d, papers=tuple(papers)))
        for p in papers:
            by_id.setdefault(p.id, p)
    readers = [sub for sub in subscribers if sub.feed]
    private = _PrivateFeeds(store, key, readers, dates, by_id)
    written = publish_site(settings, days, private=private, now=now)
    _remove_stale_private_feeds(settings, {feed_token(key, sub.email) for sub in readers})
    return written


class _PrivateFeeds(Sequence[PrivateFeed]):
    """Each feed reader's private feed, built from the ledger when `publish_site` reaches it.

    A list of them all would hold every reader's matches and explanations at once (over 100 MB
    for 10,000 readers); `publish_site` takes them one at a time and lets each go.
    """

    def __init__(
        self, store: Store, key: bytes, readers: Sequence[Subscriber], dates: Sequence[dt.date],
        papers: dict[str, Paper],
    ) -> None:  # fmt: skip
        self.store, self.key, self.readers, self.dates, self.papers = store, key, readers, dates, papers

    def __len__(self) -> int:
        return len(self.readers)

    @overload
    def __getitem__(self, index: int) -> PrivateFeed: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[PrivateFeed]: ...
    def __getitem__(self, index: int | slice) -> PrivateFeed | Sequence[PrivateFeed]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        sub = self.readers[index]
        history = self.store.matched_history(sub.email, self.dates)
        per_day = [
            (d, [_explained(self.papers[pid], why) for pid, why in entries if pid in self.papers])
            for d, entries in history.items()
        ]
        return sub, feed_token(self.key, sub.email), per_day


def explanations(matches: Sequence[Match]) -> dict[str, Any]:
    """What the ledger keeps of each match, so a private feed can still say why later."""
    return {
        m.paper.id: {"score": m.score, "hits": [[h.term, h.field, h.start, h.end] for h in m.hits]}
        for m in matches
    }


def _explained(paper: Paper, why: dict[str, Any]) -> Match:
    hits = tuple(Hit(term, field, start, end) for term, field, start, end in why.get("hits", []))
    return Match(paper=paper, score=float(why.get("score", 0.0)), hits=hits)


def _remove_stale_private_feeds(settings: Settings, current: set[str]) -> None:
    """A reader who turned `feed` off or left must not keep a live feed of their matches."""
    folder = private_feed_path(settings, "x").parent
    for path in folder.glob("*.xml") if folder.is_dir() else ():
        if path.stem not in current:
            path.unlink(missing_ok=True)


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
            _log.info("already stopping; the message being sent is finished and recorded first")
        else:
            _log.info("%s received: stopping after the message being sent", signal.Signals(signum).name)
        stop.set()

    previous = {sig: signal.signal(sig, handler) for sig in (signal.SIGTERM, signal.SIGINT)}

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
