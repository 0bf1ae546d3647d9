"""A runner joining a run another live runner planned (a state on PostgreSQL, `[state] url`).

Several `digest run` started together (a GitHub Actions matrix, cron on several hosts) share one
state: the first to take the plan lock fetches, plans and records the day as usual, holding that
lock to its end; each one of the same date finds the day planned by that live runner
(`Store.run_lock`) and, instead of planning again, sends the digests its plan queued. Every runner, the planner included, claims its digests
a batch at a time (`Store.claim`, SELECT ... FOR UPDATE SKIP LOCKED), so each digest goes out from
exactly one runner; the ledger's order per message is the sender's, unchanged.

A joining runner sends and nothing else: the planner posts the channels, waits for the runners
that joined (`JOINERS_WAIT`), then publishes the feeds and the archive and records the run.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading

from digest.config import Settings, signing_key
from digest.core.models import Subscriber
from digest.core.progress import Progress, QuietProgress
from digest.core.status import DeliveryStatus
from digest.pipeline.render_workers import RenderWorkers
from digest.pipeline.sending import MessageBuilder, send_mail
from digest.pipeline.summarizing import summarize_sends
from digest.pipeline.summary import RunSummary, Timer
from digest.plan import Send
from digest.profiles.channels import is_channel
from digest.render.email import EmailRenderer
from digest.store import Store

# How long the planner waits for the runners that joined before it publishes anyway (their
# digests sent after that reach the feeds with the next run's publishing).
JOINERS_WAIT = 1800.0


def join_run(
    settings: Settings,
    store: Store,
    subscribers: list[Subscriber],
    renderer: EmailRenderer,
    summary: RunSummary,
    now: dt.datetime,
    *,
    stop: threading.Event | None,
    progress: Progress | None,
    signals: contextlib.ExitStack | None,
    early: RenderWorkers | None = None,
) -> RunSummary:
    """Send this runner's share of the digests the live planner of `summary.date` queued
    (rendered by `early`, the run's render workers)."""
    summary.joined = True
    timer = Timer(summary.timings)
    sends = queued_sends(store, subscribers, summary.date)
    key = signing_key(settings)
    tldrs = summarize_sends(settings, store, sends, summary, timer, dry_run=False)
    with timer("send"):
        build = MessageBuilder(renderer, settings, key, summary.date, now, tldrs)
        progress = progress or QuietProgress()
        if report := send_mail(settings, store, sends, build, run=summary.date, stop=stop, progress=progress,
                               signals=signals, early=early):  # fmt: skip
            summary.add_report(report)
    return summary


def queued_sends(store: Store, subscribers: list[Subscriber], run: dt.date) -> list[Send]:
    """The digests the plan of `run` queued and nobody sent yet, each rebuilt from its ledger row
    as a late digest is (its papers, why they matched, its total); an unknown one its plan
    resends goes under its first Message-ID. A row of a reader this runner's profiles lack (an
    edit not deployed here yet) is left to the planner."""
    by_email = {s.email: s for s in subscribers if not is_channel(s.email)}
    return [
        Send(
            row.date,
            by_email[row.email],
            late=row,
            resend_message_id=row.message_id if row.status == DeliveryStatus.UNKNOWN else None,
        )
        for row in store.queued(run)
        if row.email in by_email
    ]


def wait_for_joiners(
    settings: Settings, store: Store, summary: RunSummary, stop: threading.Event | None
) -> None:
    """The planner, before publishing: wait for the runners that joined (up to JOINERS_WAIT, or a
    stop), so the feeds and archive hold their digests. Once they are all done, what the plan
    queued and nobody sent (a runner that died after the others' last look) is pending for the
    next run, and counted so (exit 4), not taken for served."""
    if store.wait_for_runners(summary.date, JOINERS_WAIT, stop=stop) and settings.state.shared:
        left = {row.email for row in store.queued(summary.date)}
        summary.pending = sorted(left.union(summary.pending))
