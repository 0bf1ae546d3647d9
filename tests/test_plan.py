"""The plan step, in-process: every decision of a run from plain data, no SQLite, no SMTP.

What the pipeline then records and sends is covered end to end in test_run.py; here each rule of
`digest.plan` is checked on its own, with the ledger's state written out as values.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.core.models import Delivery, Paper, Subscriber, Suppression
from digest.core.status import DeliveryStatus, SuppressionKind
from digest.pipeline.fetching import day_ranges
from digest.plan import (
    LATE_DAYS,
    STOPPED_WHILE_SENDING,
    LedgerView,
    Transition,
    explained,
    explanations,
    plan_run,
)

DATE = dt.date(2026, 6, 12)
PAPERS = [
    Paper(id="2406.00001", title="Prompt tuning for large language models", abstract="We tune prompts."),
    Paper(id="2406.00002", title="Diffusion models for video", abstract="Video generation with diffusion."),
    Paper(id="2406.00003", title="Language models that plan", abstract="Planning with language models."),
]
ADA = Subscriber(email="ada@example.org", keywords=("language models",))
BOB = Subscriber(email="bob@example.org", keywords=("diffusion",))
EVE = Subscriber(email="eve@example.org", keywords=("quantum gravity",))


def row(email: str, status: DeliveryStatus, date: dt.date = DATE, **kw: object) -> Delivery:
    fields: dict[str, object] = dict(
        date=date, email=email, status=status, attempts=0, reply=None, message_id=None, papers=()
    )
    fields.update(kw)
    return Delivery(**fields)  # type: ignore[arg-type]


def held(email: str, kind: SuppressionKind, fingerprint: str = "") -> Suppression:
    return Suppression(email=email, reason="x", fingerprint=fingerprint, at="2026-06-01", kind=kind)


def test_a_fresh_day_sends_each_matched_reader_their_papers_best_first() -> None:
    plan = plan_run(DATE, [ADA, BOB, EVE], PAPERS, LedgerView())
    sent = {s.subscriber.email: [m.paper.id for m in s.digest.matches] for s in plan.sends if s.digest}
    # 00003 has the phrase in its title and abstract, 00001 in its title only: 00003 ranks first
    assert sent == {"ada@example.org": ["2406.00003", "2406.00001"], "bob@example.org": ["2406.00002"]}
    assert all(s.record and s.resend_message_id is None for s in plan.sends)
    assert plan.matched == 2 and plan.skipped == 1  # Eve matched nothing and empty = "skip"
    assert plan.transitions == [] and plan.unknown == [] and plan.failed == []


def test_an_empty_digest_goes_out_when_the_reader_asked_for_it() -> None:
    eve = dataclasses.replace(EVE, empty="send")
    plan = plan_run(DATE, [eve], PAPERS, LedgerView())
    assert [(s.subscriber.email, s.digest.matches) for s in plan.sends if s.digest] == [("eve@example.org", ())]


def test_an_unsubscribe_holds_whatever_the_case_and_a_refusal_until_the_profile_changes() -> None:
    suppressions = {
        "ADA@example.org": held("ADA@example.org", SuppressionKind.UNSUBSCRIBED),
        "bob@example.org": held("bob@example.org", SuppressionKind.REFUSED, BOB.fingerprint),
        "eve@example.org": held("eve@example.org", SuppressionKind.REFUSED, "an older profile"),
    }
    plan = plan_run(DATE, [ADA, BOB, EVE], PAPERS, LedgerView(suppressions=suppressions))
    assert plan.suppressed == ["ada@example.org", "bob@example.org"]
    assert plan.lift == ["eve@example.org"]  # edited since the refusal: try the address again
    assert [s.email for s in plan.active] == ["eve@example.org"]
    # an unsubscribe is not lifted by editing the profile
    edited = dataclasses.replace(ADA, max_papers=3)
    again = plan_run(DATE, [edited], PAPERS, LedgerView(suppressions=suppressions))
    assert again.suppressed == ["ada@example.org"] and again.lift == []


def test_a_digest_already_sent_or_failed_is_not_sent_again() -> None:
    today = {
        ADA.email: row(ADA.email, DeliveryStatus.SENT),
        BOB.email: row(BOB.email, DeliveryStatus.FAILED),
    }
    plan = plan_run(DATE, [ADA, BOB], PAPERS, LedgerView(today=today))
    assert plan.sends == [] and plan.skipped == 2


def test_a_digest_caught_sending_becomes_unknown_and_goes_again_only_on_retry() -> None:
    today = {ADA.email: row(ADA.email, DeliveryStatus.SENDING, message_id="<m1@example.org>")}
    plan = plan_run(DATE, [ADA], PAPERS, LedgerView(today=today))
    assert plan.transitions == [Transition(DATE, ADA.email, DeliveryStatus.UNKNOWN, STOPPED_WHILE_SENDING)]
    assert plan.unknown == [(ADA.email, STOPPED_WHILE_SENDING)] and plan.sends == []
    retried = plan_run(DATE, [ADA], PAPERS, LedgerView(today=today), retry_unknown=True)
    assert [(s.subscriber.email, s.resend_message_id) for s in retried.sends] == [
        (ADA.email, "<m1@example.org>")
    ]


def test_papers_already_emailed_are_left_out_and_not_counted() -> None:
    plan = plan_run(DATE, [ADA], PAPERS, LedgerView(sent={ADA.email: {"2406.00001"}}))
    (send,) = plan.sends
    assert [m.paper.id for m in send.digest.matches] == ["2406.00003"]
    assert send.digest.total_matched == 1


def test_earlier_pending_digests_go_out_late_and_old_ones_are_given_up() -> None:
    yesterday = DATE - dt.timedelta(days=1)
    too_old = DATE - dt.timedelta(days=LATE_DAYS + 1)
    ledger = LedgerView(
        earlier=[
            row(ADA.email, DeliveryStatus.PENDING, yesterday, papers=("2406.00001",)),
            row(BOB.email, DeliveryStatus.UNKNOWN, yesterday, reply="timed out", message_id="<b@x>"),
            row("left@example.org", DeliveryStatus.PENDING, yesterday),
        ],
        expired=[
            row(ADA.email, DeliveryStatus.PENDING, too_old),
            row("left@example.org", DeliveryStatus.PENDING, too_old),
        ],
    )
    plan = plan_run(DATE, [ADA, BOB], PAPERS, ledger)
    late = [(s.date, s.subscriber.email, s.record) for s in plan.sends if s.late is not None]
    assert late == [(yesterday, ADA.email, False)]
    assert plan.unknown == [(BOB.email, f"{yesterday}: timed out")]
    given_up = f"{too_old}: not sent within {LATE_DAYS} days of its date; given up"
    # closed for a reader who left too, so no later run reads the row again; reported only for readers
    assert [(t.email, t.status) for t in plan.transitions] == [
        (ADA.email, DeliveryStatus.FAILED),
        ("left@example.org", DeliveryStatus.FAILED),
    ]
    assert plan.failed == [(ADA.email, given_up)]
    # late digests come before today's, as they are older news
    assert [s.date for s in plan.sends] == sorted(s.date for s in plan.sends)


def test_what_the_ledger_keeps_of_a_match_rebuilds_it() -> None:
    plan = plan_run(DATE, [ADA], PAPERS, LedgerView())
    matches = plan.sends[0].digest.matches
    kept = explanations(matches)
    assert [explained(m.paper, kept[m.paper.id]) for m in matches] == list(matches)


STATUSES = st.sampled_from([None, *DeliveryStatus])


@settings(max_examples=60, deadline=None)
@given(statuses=st.lists(STATUSES, min_size=3, max_size=3), retry=st.booleans())
def test_every_active_reader_is_accounted_for_exactly_once(statuses: list, retry: bool) -> None:
    readers = [ADA, BOB, dataclasses.replace(EVE, empty="send")]
    today = {s.email: row(s.email, status) for s, status in zip(readers, statuses, strict=True) if status}
    plan = plan_run(DATE, readers, PAPERS, LedgerView(today=today), retry_unknown=retry)
    outcomes = [s.subscriber.email for s in plan.sends] + [email for email, _ in plan.unknown]
    assert len(outcomes) == len(set(outcomes))
    assert len(outcomes) + plan.skipped == len(readers)
    for s in plan.sends:  # never a second message for a digest that was sent or refused
        assert today.get(s.subscriber.email) is None or today[s.subscriber.email].status not in (
            DeliveryStatus.SENT,
            DeliveryStatus.FAILED,
        )


def test_a_failed_digest_goes_again_once_only_when_asked() -> None:
    today = {ADA.email: row(ADA.email, DeliveryStatus.FAILED, reply="552 5.3.4 message too big")}
    plain = plan_run(DATE, [ADA], PAPERS, LedgerView(today=today))
    assert plain.sends == [] and plain.skipped == 1
    retried = plan_run(DATE, [ADA], PAPERS, LedgerView(today=today), retry_failed=True)
    assert [(s.subscriber.email, s.record) for s in retried.sends] == [(ADA.email, True)]
    # back to pending before anything is sent, so a run killed before sending keeps it due
    assert [(t.email, t.status) for t in retried.transitions] == [(ADA.email, DeliveryStatus.PENDING)]
    # a sent digest is never "retried"
    sent = {ADA.email: row(ADA.email, DeliveryStatus.SENT)}
    assert plan_run(DATE, [ADA], PAPERS, LedgerView(today=sent), retry_failed=True).sends == []


def test_missed_days_are_written_as_ranges() -> None:
    days = [dt.date(2026, 12, 1), *(dt.date(2026, 12, d) for d in range(3, 10)), dt.date(2027, 1, 5)]
    assert day_ranges(days) == "2026-12-01, 2026-12-03 to 2026-12-09, 2027-01-05"
    assert day_ranges([]) == ""
