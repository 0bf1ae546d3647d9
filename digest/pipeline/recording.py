"""Recording a plan's state changes in the ledger: one transaction, before anything is sent.

Either every change of the plan is recorded or none: lifted suppressions, status changes (a
'sending' row found unknown, a late digest given up), today's digests as pending, weekly readers'
held days and those a week's digest takes, the trending periods used, the queue of the run for
runners joining it (PostgreSQL), and that the days are recorded. A run killed before the commit
leaves the state as it was; after it, a re-run of the date or the next date's run goes on from
the rows. Recording the digests in slices while the first emails went out was tried (issue 20)
and given up: a run killed between two slices left a day with some readers' rows and held days
taken but not marked recorded, which the planner then planned again from scratch (weekly readers
got their week twice, a reader's held days could be lost), and at 10,000 readers it won nothing
end to end (BENCHMARKS.md).
"""

from __future__ import annotations

import datetime as dt

from digest.plan import Plan, explanations
from digest.profiles.channels import is_channel
from digest.store import PendingDigest, Store


def record_plan(store: Store, plan: Plan, now: dt.datetime) -> None:
    """The plan's state changes, in one transaction: either all of them are recorded or none."""
    run = plan.recorded[-1]  # the run date is the last
    with store.transaction():
        for day in plan.recorded:
            store.mark_recorded(day, now, by=run)
        for email in plan.lift:
            store.lift_suppression(email)
        for change in plan.transitions:
            store.mark_status(change.date, change.email, change.status, change.reply, now)
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
                for send in plan.sends
                if send.digest is not None
            ),
            now,
        )
        for digest in plan.holds:  # weekly readers' days, for the week's digest and their feed
            store.hold(
                digest.date,
                digest.subscriber.email,
                [m.paper.id for m in digest.matches],
                explanations=explanations(digest.matches, where=False, similar=digest.similar),
                total=digest.total_matched,
            )
        store.take_held(plan.taken, up_to=run)
        # for runners that join this run (PostgreSQL); channels are posted by this runner alone
        store.queue(
            ((s.date, s.subscriber.email) for s in plan.sends if not is_channel(s.subscriber.email)), run
        )
        for email, (kind, period) in plan.periods:  # trending readers: planned, so due no more
            store.mark_period(email, kind, period)
