"""Recording a plan's state changes in the ledger, in slices that overlap the sending.

Recording 100,000 readers' pending digests takes seconds to tens of seconds (their explanations
and paper lists packed, the rows written), and used to come whole before the first message. The
SMTP connections spend most of a run waiting on the server, so the recording now fills those
waits: `PlanRecorder.head` records what has to come first, then the sends are recorded in slices
in the order they are sent, each before any of its digests is claimed (`through`, called by the
sender as it reaches them) or in between messages (`record_in_background`), and the days are
marked recorded last (`finish`).

What a crash can leave, slice by slice, and why nothing is lost or sent twice:

- each slice is one transaction: a reader's pending digest, its place on the queue, the held
  days its week's digest takes and the trending period it uses are recorded together or not;
- a digest is never claimed or sent before its slice is recorded (`through`), so the ledger's
  order (pending → sending → sent) is the same as when the plan was recorded whole;
- the days are marked recorded only after the last slice: a run killed before that leaves its
  date unrecorded, so a re-run of the date plans every reader again (those with a row go on
  from their row, as they always did) and a later date's run plans the day as a late one.

A run that ends, stopped or not, records the rest before it returns (`finish`): after a run
the whole plan is in the ledger, as before.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
from collections.abc import Callable, Sequence

from digest.plan import Plan, Send, explanations
from digest.profiles.channels import is_channel
from digest.store import PendingDigest, Store

SLICE = 64  # sends recorded at once: ~10 ms of the event loop's time at 0.15 ms a send


def record_plan(store: Store, plan: Plan, now: dt.datetime) -> None:
    """The plan's state changes, all at once (what a dry comparison or a tool needs)."""
    recorder = PlanRecorder(store, plan, now)
    recorder.head()
    recorder.finish()


class PlanRecorder:
    """Records `plan` in `head`, then slices of its mail sends (in the order `mail` lists them),
    then `finish`. `mail` is the plan's email sends, the order the sender takes them in."""

    def __init__(
        self,
        store: Store,
        plan: Plan,
        now: dt.datetime,
        *,
        slice_size: int | None = None,
        on_finish: Callable[[], None] | None = None,
    ) -> None:
        self.store, self.plan, self.now = store, plan, now
        self.on_finish = on_finish  # PostgreSQL: runners of the date may join (`Store.planned`)
        # The email sends in the sender's order (`jobs`); today's digests among them are recorded
        # in slices, the rest (channels, late digests, an earlier unrecorded day's, which the
        # sender rebuilds from their rows) by `head`.
        self.jobs = [s for s in plan.sends if not is_channel(s.subscriber.email)]
        self.mail = [s for s in self.jobs if s.late is None]
        self.rest = [s for s in plan.sends if s.late is not None or is_channel(s.subscriber.email)]
        # job i needs the first needed[i] of `mail` recorded
        self.needed = list(itertools.accumulate(s.late is None for s in self.jobs))
        self.slice_size = slice_size or SLICE
        self.recorded = 0  # how many of `mail` are recorded
        # A week's held days and a trending period go with the reader's digest of the date, in
        # its slice; a reader whose digest is not sent (nothing matched) has them in `head`.
        sliced = {s.subscriber.email for s in self.mail}
        self.taken = {email for email in plan.taken if email in sliced}
        self.periods = {email: period for email, period in plan.periods if email in sliced}
        self.head_taken = [email for email in plan.taken if email not in sliced]
        self.head_periods = [(email, period) for email, period in plan.periods if email not in sliced]
        self.done = False

    @property
    def run(self) -> dt.date:
        return self.plan.recorded[-1]  # the run date is the last

    def head(self) -> None:
        """What comes before any slice, in one transaction: lifted suppressions, status changes,
        weekly readers' held days, and the sends that are not sliced."""
        plan = self.plan
        with self.store.transaction():
            for email in plan.lift:
                self.store.lift_suppression(email)
            for change in plan.transitions:
                self.store.mark_status(change.date, change.email, change.status, change.reply, self.now)
            for digest in plan.holds:  # weekly readers' days, for the week's digest and their feed
                self.store.hold(
                    digest.date,
                    digest.subscriber.email,
                    [m.paper.id for m in digest.matches],
                    explanations=explanations(digest.matches, where=False, similar=digest.similar),
                    total=digest.total_matched,
                )
            self.store.unqueue(self.run)  # a re-run of the date: only this plan's digests are queued
            self._record(self.rest, uses=False)
            if self.head_taken:
                self.store.take_held(self.head_taken, up_to=self.run)
            for email, (kind, period) in self.head_periods:
                self.store.mark_period(email, kind, period)

    def through(self, job: int) -> None:
        """Every slice up to the one holding `jobs[job]` is recorded (before it is claimed)."""
        while self.recorded < self.needed[job]:
            self._next_slice()

    async def record_in_background(self) -> None:
        """Slice after slice, giving the event loop back between them (the sender's waits), then
        the days (`finish`)."""
        while self.recorded < len(self.mail):
            self._next_slice()
            await asyncio.sleep(0)
        self.finish()

    def finish(self) -> None:
        """The slices left, then the days marked recorded: the plan is whole in the ledger."""
        if self.done:
            return
        while self.recorded < len(self.mail):
            self._next_slice()
        with self.store.transaction():
            for day in self.plan.recorded:
                self.store.mark_recorded(day, self.now, by=self.run)
        self.done = True
        if self.on_finish is not None:
            self.on_finish()

    def _next_slice(self) -> None:
        part = self.mail[self.recorded : self.recorded + self.slice_size]
        with self.store.transaction():
            self._record(part)
        self.recorded += len(part)

    def _record(self, sends: Sequence[Send], *, uses: bool = True) -> None:
        """`sends`' pending digests, their place on the queue, and (`uses`) what each reader's
        digest of the date uses up (a week's held days, a trending period), in the caller's
        transaction."""
        store = self.store
        store.mark_pending_many(
            (
                PendingDigest(
                    send.date,
                    send.subscriber.email,
                    tuple(m.paper.id for m in send.digest.matches),
                    # where=False: the views find where again
                    explanations(send.digest.matches, where=False, similar=send.digest.similar),
                    send.digest.total_matched,
                    keep_explanations=send.subscriber.feed,  # once sent, only a private feed reads them
                )
                for send in sends
                if send.digest is not None
            ),
            self.now,
        )
        emails = [send.subscriber.email for send in sends] if uses else []
        if taken := [email for email in emails if email in self.taken]:
            store.take_held(taken, up_to=self.run)
        for email in emails:
            if (period := self.periods.get(email)) is not None:  # trending: due no more
                store.mark_period(email, *period)
        # for runners that join this run (PostgreSQL); channels are posted by this runner alone
        store.enqueue(
            ((s.date, s.subscriber.email) for s in sends if not is_channel(s.subscriber.email)), self.run
        )
