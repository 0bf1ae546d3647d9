"""The plan at many readers (issue 20, "Scale"): what was made linear decides as before.

Plain values, no SQLite: many weekly readers with held days (the plan finds each reader's days
through an index now, not by scanning every hold per reader), and today's sends, which carry
their digest and no ledger row (only a late one is rebuilt from its row).
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from test_cadence import FRI, WEEKLY
from test_plan import PAPERS

from digest.core.models import Digest, Match, Subscriber
from digest.core.status import DeliveryStatus
from digest.plan import LedgerView, StoredDay, plan_run


def _weekly(i: int) -> Subscriber:
    return dataclasses.replace(WEEKLY, email=f"wes{i:03d}@example.org")


def test_each_weekly_reader_gets_only_their_own_held_days_among_many() -> None:
    readers = [_weekly(i) for i in range(60)]
    monday, thursday = FRI - dt.timedelta(days=4), FRI - dt.timedelta(days=1)
    # stored held days for every other reader, and Thursday (never recorded) held in this run
    held = {
        sub.email: [Digest(sub, monday, (Match(PAPERS[i % 2], 1.0 + i),), 1)]
        for i, sub in enumerate(readers)
        if i % 2 == 0
    }
    plan = plan_run(
        FRI,
        readers,
        PAPERS[2:],
        LedgerView(
            held=held, unrecorded=[StoredDay(thursday, PAPERS[:2])], last_run=thursday - dt.timedelta(days=1)
        ),
    )
    assert len(plan.holds) == len(readers)  # Thursday's, one a reader
    assert all(h.date == thursday for h in plan.holds)
    assert sorted(plan.taken) == sorted(s.email for s in readers)
    by_email = {s.subscriber.email: s for s in plan.sends}
    assert set(by_email) == {s.email for s in readers}
    for sub in readers:
        send = by_email[sub.email]
        assert send.digest is not None and send.digest.subscriber.email == sub.email
        ids = {m.paper.id for m in send.digest.matches}
        assert ids == {p.id for p in PAPERS}  # Thursday's two and today's, the Monday one among them
        own = [d.date for d in held.get(sub.email, ())] + [thursday]
        assert send.digest.total_matched >= len(own) - 1


def test_today_s_sends_carry_their_digest_and_a_late_one_its_row() -> None:
    daily = [Subscriber(email=f"dee{i}@example.org", keywords=("language models",)) for i in range(5)]
    thursday = FRI - dt.timedelta(days=1)
    plan = plan_run(
        FRI, daily, PAPERS, LedgerView(unrecorded=[StoredDay(thursday, PAPERS[:2])], last_run=thursday)
    )
    today = [s for s in plan.sends if s.date == FRI]
    late = [s for s in plan.sends if s.date == thursday]
    assert today and late
    for send in today:
        assert send.record and send.digest is not None and send.late is None
    for send in late:  # an unrecorded day's: recorded as pending, sent as that day's late digest
        assert send.record and send.digest is not None and send.late is not None
        assert send.late.status == DeliveryStatus.PENDING and send.late.date == thursday
        assert send.late.papers == tuple(m.paper.id for m in send.digest.matches)
