"""Weekly cadence (digest.cadence and the plan's use of it), from plain values: no SQLite, no SMTP.

The fortnight end to end, through the CLI and a local server, is tests/test_weekly.py.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

import pytest
from test_plan import PAPERS, row

from digest.cadence import due, last_weekday, week_digest
from digest.core.models import Digest, Match, Subscriber
from digest.core.status import DeliveryStatus
from digest.plan import LedgerView, StoredDay, plan_run

FRI = dt.date(2026, 6, 12)  # a Friday
WEEKLY = Subscriber(
    email="wes@example.org", keywords=("language models", "diffusion"), cadence="weekly", weekday="friday"
)
DAILY = Subscriber(email="dee@example.org", keywords=("language models",))


@pytest.mark.parametrize(
    ("date", "last_run", "expected"),
    [
        (FRI, None, True),  # the weekday itself
        (FRI + dt.timedelta(days=1), FRI, False),  # the day after, the weekday was run
        (FRI + dt.timedelta(days=1), FRI - dt.timedelta(days=1), True),  # the weekday was skipped
        (FRI + dt.timedelta(days=3), FRI - dt.timedelta(days=2), True),  # skipped, and the weekend
        (FRI - dt.timedelta(days=1), FRI - dt.timedelta(days=2), False),  # mid-week
        (FRI - dt.timedelta(days=1), None, False),  # the first run ever, mid-week: held
    ],
    ids=["weekday", "after", "weekday-skipped", "long-gap", "mid-week", "first-run"],
)
def test_a_weekly_digest_is_due_on_its_weekday_or_the_first_run_after_it(
    date: dt.date, last_run: dt.date | None, expected: bool
) -> None:
    assert due(WEEKLY, date, last_run) is expected
    assert due(DAILY, date, last_run) is True


def test_the_weekday_before_a_date() -> None:
    assert last_weekday(FRI, WEEKLY) == FRI
    assert last_weekday(FRI + dt.timedelta(days=6), WEEKLY) == FRI
    assert last_weekday(FRI - dt.timedelta(days=1), WEEKLY) == FRI - dt.timedelta(days=7)
    assert last_weekday(FRI, DAILY) == FRI - dt.timedelta(days=4)  # Monday unless it says


def test_the_week_s_digest_ranks_every_day_s_matches_and_counts_them_all() -> None:
    sub = dataclasses.replace(WEEKLY, max_papers=2)
    monday = Digest(
        sub, FRI - dt.timedelta(days=4), (Match(PAPERS[0], 1.0), Match(PAPERS[1], 3.0)), total_matched=5
    )
    wednesday = Digest(
        sub, FRI - dt.timedelta(days=2), (Match(PAPERS[1], 9.0),), total_matched=1
    )  # again: once
    today = Digest(sub, FRI, (Match(PAPERS[2], 2.0),), total_matched=1)
    week = week_digest(today, [wednesday, monday])
    assert week.date == FRI and week.subscriber is sub
    assert [m.paper.id for m in week.matches] == [PAPERS[1].id, PAPERS[2].id]  # best two, each once
    assert week.total_matched == 7 and week.more == 5


def test_a_weekly_reader_is_held_mid_week_and_gets_the_week_on_its_weekday() -> None:
    mid = FRI - dt.timedelta(days=2)
    plan = plan_run(mid, [WEEKLY, DAILY], PAPERS, LedgerView(last_run=mid - dt.timedelta(days=1)))
    assert [s.subscriber.email for s in plan.sends] == [DAILY.email]
    assert [(h.subscriber.email, h.date) for h in plan.holds] == [(WEEKLY.email, mid)]
    assert plan.taken == []
    held = {WEEKLY.email: [dataclasses.replace(plan.holds[0], matches=plan.holds[0].matches[:1])]}
    friday = plan_run(FRI, [WEEKLY], PAPERS[2:], LedgerView(held=held, last_run=mid))
    (send,) = friday.sends
    assert send.record and send.digest is not None and send.date == FRI
    assert {m.paper.id for m in send.digest.matches} == {plan.holds[0].matches[0].paper.id, PAPERS[2].id}
    assert friday.taken == [WEEKLY.email] and friday.holds == []


def test_a_week_s_digest_recorded_by_an_earlier_run_of_the_date_goes_out_from_its_row() -> None:
    """The first run of the weekday recorded the week's digest (and took the held days) and died
    before sending: the re-run sends that row, it does not rebuild the week from nothing."""
    pending = row(WEEKLY.email, DeliveryStatus.PENDING, FRI, papers=("2406.00001", "2406.00002"))
    plan = plan_run(FRI, [WEEKLY], PAPERS, LedgerView(today={WEEKLY.email: pending}, last_run=FRI))
    (send,) = plan.sends
    assert send.late == pending and send.digest is None and not send.record
    assert plan.taken == []
    caught = row(WEEKLY.email, DeliveryStatus.SENDING, FRI, papers=("2406.00001",), reply=None)
    again = plan_run(FRI, [WEEKLY], PAPERS, LedgerView(today={WEEKLY.email: caught}, last_run=FRI))
    assert again.sends == [] and again.unknown and again.transitions[0].status == DeliveryStatus.UNKNOWN
    sent = row(WEEKLY.email, DeliveryStatus.SENT, FRI)
    assert plan_run(FRI, [WEEKLY], PAPERS, LedgerView(today={WEEKLY.email: sent})).sends == []


def test_a_healed_day_of_a_weekly_reader_is_held_not_sent() -> None:
    thursday = FRI - dt.timedelta(days=1)
    day = StoredDay(thursday, PAPERS[:2])
    plan = plan_run(
        FRI, [WEEKLY], PAPERS[2:], LedgerView(unrecorded=[day], last_run=FRI - dt.timedelta(days=2))
    )
    assert [(h.date, len(h.matches)) for h in plan.holds] == [(thursday, 2)]
    (send,) = plan.sends  # the week's digest today, which takes the held days, that one too
    assert send.date == FRI and plan.taken == [WEEKLY.email] and send.digest is not None
    assert {m.paper.id for m in send.digest.matches} == {p.id for p in PAPERS}


def test_a_reader_who_turns_daily_gets_the_held_days_with_the_next_digest() -> None:
    """Held days of a reader who was weekly until the profile changed are not lost: they go out
    with the first daily digest, which takes them."""
    mid = FRI - dt.timedelta(days=2)
    held = {WEEKLY.email: [Digest(WEEKLY, mid - dt.timedelta(days=1), (Match(PAPERS[0], 1.0),), 1)]}
    now_daily = dataclasses.replace(WEEKLY, cadence="daily")
    plan = plan_run(mid, [now_daily], PAPERS[1:2], LedgerView(held=held, last_run=mid - dt.timedelta(days=1)))
    (send,) = plan.sends
    assert send.digest is not None and {m.paper.id for m in send.digest.matches} == {PAPERS[0].id, PAPERS[1].id}
    assert plan.taken == [WEEKLY.email] and plan.holds == []


def test_retry_failed_sends_a_failed_week_s_digest_once_more_from_its_row() -> None:
    failed = row(WEEKLY.email, DeliveryStatus.FAILED, FRI, papers=("2406.00001",), reply="554 no")
    ledger = LedgerView(today={WEEKLY.email: failed}, last_run=FRI)
    assert plan_run(FRI, [WEEKLY], PAPERS, ledger).sends == []  # not without asking
    plan = plan_run(FRI, [WEEKLY], PAPERS, ledger, retry_failed=True)
    (send,) = plan.sends
    assert send.late is not None and send.late.papers == ("2406.00001",) and not send.record
    assert [(t.email, t.status) for t in plan.transitions] == [(WEEKLY.email, DeliveryStatus.PENDING)]


def test_a_channel_post_of_unknown_fate_is_never_resent_on_its_own() -> None:
    """`[delivery] unknown = "resend"` resends an email under its Message-ID (mail systems drop
    the second copy); a chat has no such thing, so a channel's unknown post is only reported."""
    channel = Subscriber(email="channel:team", keywords=("language models",))
    caught = row(channel.email, DeliveryStatus.SENDING, FRI - dt.timedelta(days=1), papers=("2406.00001",))
    plan = plan_run(FRI, [channel], [], LedgerView(earlier=[caught]), unknown="resend")
    assert plan.sends == [] and plan.resends == [] and [e for e, _ in plan.unknown] == [channel.email]
    forced = plan_run(FRI, [channel], [], LedgerView(earlier=[caught]), retry_unknown=True)
    assert [s.subscriber.email for s in forced.sends] == [channel.email]  # --retry-unknown still can
