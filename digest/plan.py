"""The plan: everything a run will do, decided as data. Pure.

Given the day's new papers, the readers' profiles and what the ledger says (`LedgerView`),
`plan_run` decides who is suppressed, what each reader's digest holds, which earlier digests go out
late, which are given up, which are reported as unknown, and which ledger rows change status. It
reads no database, network or clock: the pipeline gathers the inputs, applies the plan's state
changes in one transaction (`Plan.transitions`, `Plan.sends` with `record`), then sends.
(The shape of lemon24/reader's update decider: decisions as values, effects at the edge.)

The rules, one place each:
- an unsubscribe stands until `digest unsubscribe --undo`, whatever the address's case in the
  file; a refusal by the server until the profile is edited (its fingerprint changes);
- a digest already sent or failed for the date is not sent again (a failed one is, once, with
  `--retry-failed`); one caught 'sending' by a
  crash may have arrived: it becomes 'unknown', reported on every run until `--retry-unknown`
  resends it under its first Message-ID (with `[delivery] unknown = "resend"`, the next run
  resends it so once, on its own);
- a paper already emailed to a reader is never in their digest again, and the count of "more"
  papers leaves it out too;
- digests of earlier dates still pending go out late; those older than LATE_DAYS are given up;
- a reader with liked papers or feedback is ranked by similarity too (`digest.digests`); a
  trending reader gets no day's digest but, once a period, the period's list (`digest.trending`,
  fetched by the pipeline when due);
- a stored day whose digests were never recorded (its run died before recording them, or only
  `digest fetch` ran) is planned like a run date, on its own new papers, and its digests go out
  late: no stored day is skipped.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, field
from typing import Literal

from digest.cadence import due, week_digest, weekly
from digest.core.models import Delivery, Digest, Paper, Subscriber, Suppression
from digest.core.status import DeliveryStatus, SuppressionKind
from digest.digests import NO_TASTES, Tastes, digests_for
from digest.explain import explained as explained  # re-exported: the plan's record of a match
from digest.explain import explanations as explanations
from digest.profiles.channels import is_channel
from digest.trending import Period, trending, trending_digest

# How far back a run looks for digests an earlier run could not send (the SMTP server was down,
# the run was stopped): they go out late rather than never; older ones are given up.
LATE_DAYS = 14
STOPPED_WHILE_SENDING = "the previous run stopped while sending"
UnknownPolicy = Literal["report", "resend"]  # `[delivery] unknown`


@dataclass(frozen=True)
class StoredDay:
    """An earlier stored day whose digests were never recorded, as the plan needs it."""

    date: dt.date
    papers: Sequence[Paper]  # the day's new papers (its own diff)
    rows: Mapping[str, Delivery] = field(default_factory=dict)  # its ledger rows, if any
    sent: Mapping[str, set[str]] = field(default_factory=dict)  # email -> its papers already emailed


@dataclass(frozen=True)
class TrendingList:
    """A trending reader's due period (`digest.trending`): its list as fetched for the run, and
    which of its papers were emailed to the reader before."""

    period: Period
    papers: Sequence[Paper]
    already: Set[str] = frozenset()


@dataclass(frozen=True)
class LedgerView:
    """What the plan needs to know of the state, read by the pipeline before planning."""

    today: Mapping[str, Delivery] = field(default_factory=dict)  # the run date's rows by email
    earlier: Sequence[Delivery] = ()  # unfinished rows of the LATE_DAYS before the run date
    expired: Sequence[Delivery] = ()  # unfinished rows older than that
    sent: Mapping[str, set[str]] = field(default_factory=dict)  # email -> today's papers already emailed
    suppressions: Mapping[str, Suppression] = field(default_factory=dict)
    unrecorded: Sequence[StoredDay] = ()  # earlier stored days (LATE_DAYS) never planned, oldest first
    resent: Set[tuple[dt.date, str]] = frozenset()  # unknown digests already resent once on their own
    held: Mapping[str, Sequence[Digest]] = field(default_factory=dict)  # weekly readers' held days
    last_run: dt.date | None = None  # the latest day planned before the run date (`cadence.due`)
    trending: Mapping[str, TrendingList] = field(default_factory=dict)  # due trending readers' lists
    tastes: Tastes = NO_TASTES  # readers' liked papers and feedback (`digest.digests`)


@dataclass(frozen=True)
class Transition:
    """A ledger row that changes status before anything is sent."""

    date: dt.date
    email: str
    status: DeliveryStatus
    reply: str


@dataclass(frozen=True)
class Send:
    """One digest to send. Today's carry their `digest` and are recorded as pending first
    (`record`); a late one is rebuilt from the ledger row `late` when it is sent. A digest of an
    unrecorded earlier day has both: recorded as pending, then sent as that day's late digest."""

    date: dt.date
    subscriber: Subscriber
    digest: Digest | None = None
    late: Delivery | None = None
    resend_message_id: str | None = None  # a digest that may have arrived goes again under its id

    @property
    def record(self) -> bool:
        return self.digest is not None


@dataclass
class Plan:
    active: list[Subscriber] = field(default_factory=list)
    suppressed: list[str] = field(default_factory=list)  # addresses that get nothing
    lift: list[str] = field(default_factory=list)  # suppressions an edited profile lifts
    digests: list[Digest] = field(default_factory=list)  # today's, one per active reader
    transitions: list[Transition] = field(default_factory=list)
    sends: list[Send] = field(default_factory=list)  # late ones first, then today's
    failed: list[tuple[str, str]] = field(default_factory=list)  # given up, reported
    unknown: list[tuple[str, str]] = field(default_factory=list)  # may have arrived, not resent
    skipped: int = 0  # nothing matched (and empty = "skip"), or already sent for the date
    recorded: list[dt.date] = field(default_factory=list)  # days whose digests this plan records
    recovered: list[tuple[dt.date, int]] = field(default_factory=list)  # unrecorded days: digests sent late
    resends: list[tuple[dt.date, str]] = field(default_factory=list)  # unknown ones resent on their own
    holds: list[Digest] = field(default_factory=list)  # weekly readers' days, held for the week's digest
    taken: list[str] = field(default_factory=list)  # weekly readers whose held days this run's digest takes
    periods: list[tuple[str, Period]] = field(default_factory=list)  # trending readers' periods planned

    @property
    def matched(self) -> int:
        return sum(1 for d in self.digests if d.matches)


def plan_run(
    date: dt.date,
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    ledger: LedgerView,
    *,
    retry_unknown: bool = False,
    unknown: UnknownPolicy = "report",
    retry_failed: bool = False,
) -> Plan:
    """Every decision of the run for `date` on its new `papers`.

    `retry_failed` (`--retry-failed`): the date's digests marked failed go back to pending and
    are sent (once: a sent one is not sent again). Readers suppressed by a refusal stay so.

    `retry_unknown` (`--retry-unknown`) resends every digest of unknown fate; `unknown =
    "resend"` resends each once, on its own, and reports it when it comes back unknown again."""
    plan = Plan()
    plan.active, plan.suppressed, plan.lift = split_suppressed(subscribers, ledger.suppressions)
    daily = [sub for sub in plan.active if not trending(sub)]  # trending ones: `_trending_today`
    plan.digests = digests_for(daily, papers, date, ledger.sent, ledger.tastes)
    policy = _Unknown(retry_unknown, unknown, ledger.resent)
    _plan_late(plan, date, ledger, policy)
    for day in ledger.unrecorded:
        if day.date < date:
            before = len(plan.sends)
            digests = _hold_weekly(plan, digests_for(daily, day.papers, day.date, day.sent, ledger.tastes))
            _plan_today(plan, day.date, day.rows, policy, digests, late=True)
            plan.recovered.append((day.date, len(plan.sends) - before))
            plan.recorded.append(day.date)
    listed = {p.id for p in papers}
    today = _weekly_today(plan, date, ledger, policy, listed, retry_failed=retry_failed)
    today += _trending_today(plan, date, ledger, policy, retry_failed=retry_failed)
    _plan_today(plan, date, ledger.today, policy, today, retry_failed=retry_failed)
    plan.recorded.append(date)
    return plan


def _hold_weekly(plan: Plan, digests: Sequence[Digest]) -> list[Digest]:
    """A day's digests of weekly readers are held (when they matched anything); the rest go on."""
    out = []
    for digest in digests:
        if weekly(digest.subscriber):
            if digest.matches:
                plan.holds.append(digest)
        else:
            out.append(digest)
    return out


def _weekly_today(
    plan: Plan, date: dt.date, ledger: LedgerView, policy: _Unknown, listed: Set[str], *, retry_failed: bool
) -> list[Digest]:
    """The run date's digests as they go out: a daily reader's as matched; a weekly reader's, on
    the day it is due, the week's (`cadence.week_digest`, taking the held days), else held. A
    reader with held days who is daily now (the profile changed) gets them today, the same way,
    and a re-run of the date sends that from its row (one with papers not `listed` that day)."""
    out = []
    # The holds so far (unrecorded days') by reader: scanning them all for every digest was
    # O(readers x holds). One digest a reader: a hold this loop adds is never another's.
    holds: dict[str, list[Digest]] = {}
    for h in plan.holds:
        holds.setdefault(h.subscriber.email, []).append(h)
    for digest in plan.digests:
        sub = digest.subscriber
        row = ledger.today.get(sub.email)
        held = [*ledger.held.get(sub.email, ()), *holds.get(sub.email, ())]
        if weekly(sub) and not due(sub, date, ledger.last_run):
            _hold_weekly(plan, [digest])
        elif (
            row is not None
            and row.status != DeliveryStatus.SENT
            and (weekly(sub) or not listed >= set(row.papers))
        ):
            _resume_week(plan, sub, row, policy, retry_failed=retry_failed)  # the week's, recorded
        elif held and row is None:
            plan.taken.append(sub.email)
            out.append(week_digest(digest, held))
        else:
            out.append(digest)
    return out


def _trending_today(
    plan: Plan, date: dt.date, ledger: LedgerView, policy: _Unknown, *, retry_failed: bool
) -> list[Digest]:
    """Trending readers' digests of the run date: the due periods' (their lists fetched, in
    `ledger.trending`), else the digest an earlier run of the date recorded, if unsent."""
    out = []
    for sub in plan.active:
        if not trending(sub):
            continue
        row = ledger.today.get(sub.email)
        due = ledger.trending.get(sub.email)
        # a date holds one digest a reader: with another one of the date already out (the
        # profile turned trending since), the period waits for the next date
        if due is not None and (row is None or row.status == DeliveryStatus.PENDING):
            digest = trending_digest(sub, date, due.papers, due.already)
            plan.digests.append(digest)
            plan.periods.append((sub.email, due.period))
            out.append(digest)
        elif row is not None and row.status != DeliveryStatus.SENT:
            _resume_week(plan, sub, row, policy, retry_failed=retry_failed)
    return out


def _resume_week(plan: Plan, sub: Subscriber, row: Delivery, policy: _Unknown, *, retry_failed: bool) -> None:
    """A week's (or trending) digest an earlier run of the date recorded (and took the held days
    for): sent from its row, as a late one is, since the held days (the list) are gone."""
    if row.status == DeliveryStatus.FAILED:
        if not retry_failed:
            plan.skipped += 1
            return
        why = f"failed before, retried with --retry-failed ({row.reply or 'no reply'})"
        plan.transitions.append(Transition(row.date, sub.email, DeliveryStatus.PENDING, why))
        plan.sends.append(Send(row.date, sub, late=dataclasses.replace(row, status=DeliveryStatus.PENDING)))
        return
    _send_row(plan, sub, row, policy, dated=False)


@dataclass(frozen=True)
class _Unknown:
    """Whether a digest of unknown fate is resent: always with `--retry-unknown`, once on its
    own with `unknown = "resend"` (noted in `Plan.resends`), else reported."""

    retry: bool
    policy: UnknownPolicy
    resent: Set[tuple[dt.date, str]]

    def resend(self, plan: Plan, row: Delivery) -> bool:
        if self.retry:
            return True
        # never a channel on its own: a chat has no Message-ID to drop a second copy by
        if self.policy == "resend" and (row.date, row.email) not in self.resent and not is_channel(row.email):
            plan.resends.append((row.date, row.email))
            return True
        return False


def split_suppressed(
    subscribers: Sequence[Subscriber], suppressions: Mapping[str, Suppression]
) -> tuple[list[Subscriber], list[str], list[str]]:
    """(active readers, suppressed addresses, suppressions to lift because the profile changed)."""
    unsubscribed = {
        e.lower() for e, held in suppressions.items() if held.kind == SuppressionKind.UNSUBSCRIBED
    }
    active: list[Subscriber] = []
    suppressed: list[str] = []
    lift: list[str] = []
    for sub in subscribers:
        held = suppressions.get(sub.email)
        if sub.email.lower() in unsubscribed or (held is not None and held.fingerprint == sub.fingerprint):
            suppressed.append(sub.email)
            continue
        if held is not None:
            lift.append(sub.email)  # the profile was edited: try the address again
        active.append(sub)
    return active, suppressed, lift


def _caught_sending(plan: Plan, row: Delivery) -> Delivery:
    """A row a run left 'sending' (it died between handing the message over and hearing back):
    it may have arrived, so it is unknown from now on."""
    if row.status != DeliveryStatus.SENDING:
        return row
    plan.transitions.append(Transition(row.date, row.email, DeliveryStatus.UNKNOWN, STOPPED_WHILE_SENDING))
    return dataclasses.replace(row, status=DeliveryStatus.UNKNOWN, reply=STOPPED_WHILE_SENDING)


def _plan_late(plan: Plan, date: dt.date, ledger: LedgerView, policy: _Unknown) -> None:
    """Earlier dates' digests not sent yet: pending ones go out; unknown ones are reported until
    `--retry-unknown`; those older than LATE_DAYS are given up, reported once as failed, since
    news that late is no digest (closed for readers who left too, so no run reads them again)."""
    by_email = {s.email: s for s in plan.active}
    unrecorded = {day.date for day in ledger.unrecorded}  # planned whole, below
    for row in ledger.expired:
        given_up = f"{row.date}: not sent within {LATE_DAYS} days of its date; given up"
        plan.transitions.append(Transition(row.date, row.email, DeliveryStatus.FAILED, given_up))
        if row.email in by_email:
            plan.failed.append((row.email, given_up))
    for row in ledger.earlier:
        sub = by_email.get(row.email)
        if sub is None or row.date >= date or row.date in unrecorded:
            continue  # left, or suppressed since
        _send_row(plan, sub, row, policy, dated=True)


def _send_row(plan: Plan, sub: Subscriber, row: Delivery, policy: _Unknown, *, dated: bool) -> None:
    """A digest recorded earlier goes out from its row (a late one, or a week's): a row a crash
    left 'sending' is unknown, reported unless the policy resends it under its Message-ID."""
    row = _caught_sending(plan, row)
    if row.status == DeliveryStatus.UNKNOWN and not policy.resend(plan, row):
        reply = row.reply or "delivery unknown"
        plan.unknown.append((row.email, f"{row.date}: {reply}" if dated else reply))
        return
    resend = row.message_id if row.status == DeliveryStatus.UNKNOWN else None
    plan.sends.append(Send(row.date, sub, late=row, resend_message_id=resend))


def _plan_today(
    plan: Plan,
    date: dt.date,
    today: Mapping[str, Delivery],
    policy: _Unknown,
    digests: Sequence[Digest],
    *,
    late: bool = False,
    retry_failed: bool = False,
) -> None:
    """The digests of `date` (the run date, or an unrecorded earlier day sent `late`)."""
    for digest in digests:
        row = today.get(digest.subscriber.email)
        send = _decide(plan, date, digest, row, policy, late=late, retry_failed=retry_failed)
        if send is not None:
            plan.sends.append(send)


def _decide(
    plan: Plan,
    date: dt.date,
    digest: Digest,
    row: Delivery | None,
    policy: _Unknown,
    *,
    late: bool,
    retry_failed: bool,
) -> Send | None:
    """One reader's digest of `date` given its ledger row: a send, or why not (into `plan`)."""
    sub = digest.subscriber
    retrying = retry_failed and row is not None and row.status == DeliveryStatus.FAILED
    if row is not None and row.status in (DeliveryStatus.SENT, DeliveryStatus.FAILED) and not retrying:
        plan.skipped += 1
        return None
    if row is not None:
        row = _caught_sending(plan, row)
        if row.status == DeliveryStatus.UNKNOWN and not policy.resend(plan, row):
            reply = row.reply or "delivery unknown"
            plan.unknown.append((sub.email, f"{date}: {reply}" if late else reply))
            return None
    if not digest.matches and sub.empty != "send":
        plan.skipped += 1
        return None
    if retrying and row is not None:  # pending again first: a run killed before sending keeps it due
        why = f"failed before, retried with --retry-failed ({row.reply or 'no reply'})"
        plan.transitions.append(Transition(date, sub.email, DeliveryStatus.PENDING, why))
    return _send(date, digest, row, late=late)


def _send(date: dt.date, digest: Digest, row: Delivery | None, *, late: bool) -> Send:
    """The send of a digest that goes out; a late one is built from the row recorded for it (the
    day's date on the message), and an unknown one goes again under its first Message-ID."""
    resend = row.message_id if row is not None and row.status == DeliveryStatus.UNKNOWN else None
    if not late:  # today's: sent from its digest; the row is a late send's (~290 B a reader)
        return Send(date, digest.subscriber, digest=digest, resend_message_id=resend)
    if row is None or row.status == DeliveryStatus.PENDING:
        ids = tuple(m.paper.id for m in digest.matches)
        row = Delivery(date, digest.subscriber.email, DeliveryStatus.PENDING, 0, None, None, ids)
    return Send(date, digest.subscriber, digest=digest, late=row, resend_message_id=resend)
