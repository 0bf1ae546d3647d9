"""The daily run, stage by stage: check → fetch → snapshot → diff → plan → record → send → publish.

A thin orchestrator: each stage lives in its own module, every decision in `digest.plan`, and this
one only calls them in the order that makes a run safe to kill and re-run:

1. everything that can be checked before touching the network is (config, profiles, templates,
   writable folders); only a big subscribers.toml is read beside the fetch, by a child
   (`readers_fork`), and the run waits for it before it creates, migrates or stores anything;
2. all sources are fetched and parsed before anything is stored; the snapshot and its HTTP
   validators are stored in one transaction (`fetching`); a source that fails or is stale is
   left out of it and reported, and only when every source fails is nothing stored;
3. the plan is made from the diff, the profiles and the ledger, and its state changes (lifted
   suppressions, 'sending' rows found unknown, digests given up, today's digests as pending, and
   that the day's digests are recorded) are recorded in one transaction (`recording`); an earlier stored day
   whose digests never were (its run died first, or only `digest fetch` ran) is planned too;
   then, with `[summaries]`, a TL;DR is made (or found cached) for each paper a digest holds
   (`summarizing`): whatever fails there falls back and is counted, never stops the run;
4. each digest goes pending → sending → sent/failed/unknown in the ledger, 'sending' committed
   before the message goes out (`sending`, `digest.deliver.sender`), so a re-run sends only what
   is still pending and nobody gets two copies;
5. feeds and archive are written last, each file atomically (`publishing`).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from digest.config import Settings, signing_key
from digest.core.errors import DigestError, StoreError
from digest.core.files import check_writable
from digest.core.models import DiffResult, Digest, Subscriber, utcnow
from digest.core.progress import Progress, QuietProgress
from digest.core.speed import give_back_freed_memory
from digest.core.status import RunStatus
from digest.core.tldr import TldrBook
from digest.digests import Tastes
from digest.explain import similar_of
from digest.pipeline import publishing, relevance, retention
from digest.pipeline.channels import post_channels
from digest.pipeline.fetching import fetch_day, new_on, run_date
from digest.pipeline.joining import join_run, wait_for_joiners
from digest.pipeline.readers_fork import ReadersFork
from digest.pipeline.recording import record_plan
from digest.pipeline.render_workers import RenderWorkers
from digest.pipeline.sending import MessageBuilder, jobs_for, send_mail
from digest.pipeline.summarizing import summarize_sends
from digest.pipeline.summary import RunSummary, Timer
from digest.pipeline.trending import due_lists
from digest.plan import (
    LATE_DAYS,
    LedgerView,
    Plan,
    StoredDay,
    TrendingList,
    explained,
    plan_run,
)
from digest.profiles.channels import channel_subscribers, is_channel
from digest.render.email import EmailRenderer
from digest.store import Store

_log = logging.getLogger(__name__)


def run(
    settings: Settings,
    *,
    subscribers_path: Path | str | None = None,
    date: dt.date | None = None,
    dry_run: bool = False,
    retry_unknown: bool = False,
    retry_failed: bool = False,
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
    timer = Timer(summary.timings)

    # Forked first, while the run holds little: one reads the profiles beside the checks and the
    # fetch (`readers_fork`), the others render the emails (`render_workers`)
    with ReadersFork(settings, subscribers_path) as reading, \
            RenderWorkers(settings, 0 if dry_run else settings.delivery.render_workers) as early:  # fmt: skip
        # 1. what can fail without the network fails first, the profiles' problems first of all
        with reading.first():
            channels, renderer = _prepare(settings, dry_run=dry_run)
            store = _opened(settings, reading)
        signals = contextlib.ExitStack()  # puts the signal handlers back, when sending installed them
        with store, reading.first(), store.run_lock(date, stop=stop) as joined, signals:
            if joined and not dry_run:  # a live runner planned this date (PostgreSQL)
                return join_run(settings, store, _readers(reading, channels, summary), renderer, summary, now, stop=stop, progress=progress,
                                signals=signals if catch_signals else None, early=early)  # fmt: skip
            # 2. fetch, parse, diff; a failed or stale source is left out of the snapshot and reported
            # (the others go on); only when every source failed does this raise, storing nothing
            with timer("fetch"):
                result = _fetch(
                    summary, settings, store, date, now, dry_run, transport, progress, reading.readers
                )
                subscribers = _readers(reading, channels, summary)
                key = signing_key(settings, notice=log or (lambda _msg: None), keep=not dry_run)
                lists, tastes = _extra_inputs(summary, settings, store, subscribers, date, now, result, dry_run, transport)  # fmt: skip
            if not dry_run:
                store.start_run(date, now)

            # 3. plan (matching is most of it) and record what it decided
            with timer("match"):
                ledger = dataclasses.replace(read_ledger(store, date, result), trending=lists, tastes=tastes)
                plan = _plan(settings, subscribers, date, result, ledger, (retry_unknown, retry_failed))
            tldrs = _record(settings, store, plan, summary, now, timer, dry_run=dry_run)

            # 4. render + send, lazily: one message is built just before it goes out
            with timer("send" if not dry_run else "render"):
                build = MessageBuilder(renderer, settings, key, date, now, tldrs)
                mail = [send for send in plan.sends if not is_channel(send.subscriber.email)]
                if dry_run:
                    _render_only(summary, list(jobs_for(mail, build, store)), progress)
                elif report := send_mail(settings, store, mail, build, run=date, stop=stop, progress=progress,
                                         signals=signals if catch_signals else None, early=early):  # fmt: skip
                    summary.add_report(report)
            early.stop()  # the emails are out
            if not dry_run:  # after the emails: a channel's trouble never holds them up
                _post_channels(settings, store, plan, summary, timer)
            # Every digest is out: the matches and caches go (publishing reads the ledger), memory back
            del plan, mail, build
            renderer.clear()
            give_back_freed_memory()

            # 5. publish feeds and archive. The emails are out and recorded: a failure here (a full
            # disk) is reported and makes the run partial; the next run publishes again.
            if not dry_run:  # PostgreSQL: after the share of the runners that joined
                wait_for_joiners(settings, store, summary, stop)
                _publish_and_finish(settings, store, key, subscribers, summary, now, timer)
        return summary


def _prepare(settings: Settings, *, dry_run: bool) -> tuple[list[Subscriber], EmailRenderer]:
    """The [[channels]] (planned as readers) and the compiled email templates, and writable
    output folders: a mistake in any of them ends the run before it fetches anything."""
    names = [s.name for s in settings.sources]
    channels = channel_subscribers(settings.channels, source_names=names, hf_sources=settings.hf_source_names)
    renderer = EmailRenderer(settings)
    retention.check_window(settings)
    relevance.check_engine(settings)
    if not dry_run:
        check_writable(settings.output.dir, "[output] dir")
        if settings.transport == "outbox":
            check_writable(settings.delivery.outbox, "[delivery] outbox")
    return channels, renderer


def _opened(settings: Settings, reading: ReadersFork) -> Store:
    """The state, once what else can be wrong with it is checked (a shared one needs DIGEST_SECRET).
    When opening it would change it (a new state, one to migrate) or wait for another runner's
    lock (PostgreSQL), the profiles are waited for first: a bad one must not cause either."""
    signing_key(settings, keep=False)
    if not Store.opens_unchanged(settings.state):
        reading.ready()
    return Store.from_config(settings.state)


def _readers(reading: ReadersFork, channels: list[Subscriber], summary: RunSummary) -> list[Subscriber]:
    """The run's readers: subscribers.toml's and the web's (read beside the fetch), then the
    channels."""
    readers = reading.readers().all
    summary.subscribers = len(readers)
    return readers + channels


def read_ledger(store: Store, date: dt.date, result: DiffResult) -> LedgerView:
    """What the plan needs of the state for `date` and its new papers."""
    since = date - dt.timedelta(days=LATE_DAYS)
    return LedgerView(
        today=store.deliveries(date),
        earlier=store.unfinished_before(date, since=since),
        expired=store.unfinished_before(since),
        sent=store.sent_for_papers(p.id for p in result.new),  # one query for everybody
        suppressions=store.suppressions(),
        unrecorded=[_stored_day(store, day) for day in store.unrecorded_days(date, since=since)],
        resent=store.resent_unknown(since=since),
        held=_held(store, date),
        last_run=store.last_recorded(before=date),
    )


def _held(store: Store, date: dt.date) -> dict[str, list[Digest]]:
    """Weekly readers' held days before `date`, as digests (`digest.cadence`)."""
    held = store.held(before=date)
    papers = store.papers({pid for days in held.values() for day in days for pid in day.papers})
    return {
        email: [
            Digest(
                Subscriber(email),
                day.date,
                tuple(
                    explained(papers[pid], day.explanations.get(pid)) for pid in day.papers if pid in papers
                ),
                day.total,
                similar={pid: near for pid in day.papers if (near := similar_of(day.explanations.get(pid)))},
            )
            for day in days
        ]
        for email, days in held.items()
    }


def _stored_day(store: Store, date: dt.date) -> StoredDay:
    """An earlier stored day whose digests were never recorded: its new papers, as its own run
    would have seen them, and what of them was emailed since."""
    result = new_on(store, date)
    papers = result.new if result is not None else []
    sent = store.sent_for_papers(p.id for p in papers)
    return StoredDay(date, papers, rows=store.deliveries(date), sent=sent)


def _record(
    settings: Settings,
    store: Store,
    plan: Plan,
    summary: RunSummary,
    now: dt.datetime,
    timer: Timer,
    *,
    dry_run: bool,
) -> TldrBook:
    """The plan recorded (`recording`: one transaction) and reported, and the TL;DRs of the
    papers it sends ([summaries]); then runners of the date may join it (PostgreSQL)."""
    _report_plan(summary, plan)
    if not dry_run:
        with timer("record"):
            record_plan(store, plan, now)
    tldrs = summarize_sends(settings, store, plan.sends, summary, timer, dry_run=dry_run)
    store.planned(summary.date)  # the TL;DRs are made
    return tldrs


def _fetch(
    summary: RunSummary,
    settings: Settings,
    store: Store,
    date: dt.date,
    now: dt.datetime,
    dry_run: bool,
    transport: Any,
    progress: Progress,
    before_store: Callable[[], object],
) -> DiffResult:
    """The fetch stage (`fetching.fetch_day`); what it found of each source goes into the summary."""
    fetched = fetch_day(
        settings, store, date, now, dry_run=dry_run, transport=transport, progress=progress, plans=True,
        before_store=before_store,
    )  # fmt: skip
    result = fetched.result
    summary.new, summary.updates = len(result.new), len(result.updates)
    summary.failed_sources, summary.stale_sources = fetched.failed, fetched.stale
    summary.source_notes = fetched.notes
    summary.malformed_items, summary.duplicate_ids = fetched.malformed_items, fetched.duplicate_ids
    return result


def _extra_inputs(
    summary: RunSummary,
    settings: Settings,
    store: Store,
    subscribers: list[Subscriber],
    date: dt.date,
    now: dt.datetime,
    result: DiffResult,
    dry_run: bool,
    transport: Any,
) -> tuple[dict[str, TrendingList], Tastes]:
    """What the plan needs besides the day's papers and the ledger: the due trending readers'
    lists (a list's source that failed is reported; its readers wait) and the readers' tastes."""
    lists = due_lists(settings, store, subscribers, date, dry_run=dry_run, transport=transport)
    summary.failed_sources += lists.failed
    tastes = relevance.gather(
        settings, store, subscribers, now, papers=result.new, date=date, save=not dry_run, transport=transport
    )
    return lists.lists, tastes


def _plan(
    settings: Settings,
    subscribers: list[Subscriber],
    date: dt.date,
    result: DiffResult,
    ledger: LedgerView,
    retries: tuple[bool, bool],
) -> Plan:
    """The run's plan (`digest.plan`), from the day's new papers and what the state says (`ledger`,
    with the due trending readers' lists and the readers' tastes); `retries`: --retry-unknown,
    --retry-failed."""
    retry_unknown, retry_failed = retries
    return plan_run(
        date,
        subscribers,
        result.new,
        ledger,
        retry_unknown=retry_unknown,
        unknown=settings.delivery.unknown,
        retry_failed=retry_failed,
    )


def _post_channels(settings: Settings, store: Store, plan: Plan, summary: RunSummary, timer: Timer) -> None:
    """The [[channels]] digests of the plan, posted (`pipeline.channels`)."""
    posts = [send for send in plan.sends if is_channel(send.subscriber.email)]
    if posts:
        with timer("channels"):
            posted = post_channels(settings, store, posts)
        summary.channels, summary.channel_trouble = posted.lines, posted.trouble


def _report_plan(summary: RunSummary, plan: Plan) -> None:
    summary.matched = sum(1 for d in plan.digests if d.matches and not is_channel(d.subscriber.email))
    summary.suppressed = list(plan.suppressed)
    summary.failed += plan.failed  # the late ones given up come first, then the send's failures
    summary.unknown += plan.unknown
    summary.skipped += plan.skipped
    summary.recovered = list(plan.recovered)
    summary.resent = [f"{email}: {day}" for day, email in plan.resends]
    summary.held = sum(1 for held in plan.holds if held.date == summary.date)


def _render_only(summary: RunSummary, jobs: list[Any], progress: Progress) -> None:
    """A dry run renders every digest it would send (a template error shows here) and sends none."""
    advance = progress.stage("render", len(jobs))
    for job in jobs:
        job.build()
        summary.rendered += 1
        advance(job.subscriber.email)


def _publish_and_finish(
    settings: Settings,
    store: Store,
    key: bytes,
    subscribers: list[Subscriber],
    summary: RunSummary,
    now: dt.datetime,
    timer: Timer,
) -> None:
    try:
        with timer("publish"):
            summary.outputs = publishing.publish(settings, store, key, subscribers, summary.date, now)
    except (DigestError, OSError) as exc:
        summary.publish_error = str(exc)
    status = RunStatus.OK if summary.exit_code == 0 else RunStatus.PARTIAL
    store.finish_run(summary.date, status, summary.as_dict(), utcnow())
    # Last, once the run is recorded: days past [state] keep_days are compacted in one
    # transaction. A failure (a full disk while vacuuming) changes nothing; the next run retries.
    try:
        with timer("retention"):
            retention.apply(settings, store, summary.date, now)
    except StoreError as exc:
        _log.warning("state retention skipped: %s", exc)
