"""The channels' deliveries: each [[channels]] digest posted to its team chat, exactly once.

A channel is planned like a reader (`digest.profiles.channels`: its ledger address is
`channel:NAME`), so the plan decides its digest, its late digests and "never twice" as for
anyone. Here the send: the ledger is marked `sending` before the post, `sent` when the service
took it; a post that failed goes back to pending (the next run retries it, LATE_DAYS at most), a
post whose answer never came is `unknown` (it may have arrived: reported, not posted again), a
destination that cannot work (no URL, one Apprise cannot read) fails. Channels go after the
emails and nothing of theirs stops them.
"""

from __future__ import annotations

import datetime as dt
import functools
import logging
import secrets
from collections.abc import Sequence
from dataclasses import dataclass, field

from digest.config import Settings
from digest.core.models import Paper, utcnow
from digest.core.status import DeliveryStatus
from digest.deliver import Outcome
from digest.deliver.chat import ChatTransport
from digest.deliver.chat_message import chat_text
from digest.pipeline.sending import late_digest
from digest.plan import Send
from digest.profiles.channels import channel_name
from digest.render.archive import archive_url
from digest.store import Store

log = logging.getLogger(__name__)
_NEXT = {
    "sent": DeliveryStatus.SENT,
    "retry": DeliveryStatus.PENDING,
    "failed": DeliveryStatus.FAILED,
    "unknown": DeliveryStatus.UNKNOWN,
}


@dataclass
class ChannelReport:
    """How each channel's posts went, one line each for the run summary."""

    lines: list[str] = field(default_factory=list)
    trouble: bool = False  # a post failed, is unknown or waits for the next run


def post_channels(
    settings: Settings, store: Store, sends: Sequence[Send], transport: ChatTransport | None = None
) -> ChannelReport:
    """Post each channel send of the plan; the ledger says how each ended."""
    report = ChannelReport()
    chat = transport or ChatTransport()
    snapshots: dict[dt.date, dict[str, Paper]] = {}
    for send in sends:
        try:
            _post_one(settings, store, chat, send, snapshots, report)
        except Exception as exc:
            # the row is left as it is: pending goes again next run, 'sending' becomes unknown
            log.exception("channel post failed")
            report.lines.append(
                f"channel {channel_name(send.subscriber.email)}: {send.date}: not posted: {exc}"
            )
            report.trouble = True
    return report


def _post_one(
    settings: Settings,
    store: Store,
    chat: ChatTransport,
    send: Send,
    snapshots: dict[dt.date, dict[str, Paper]],
    report: ChannelReport,
) -> None:
    """One channel send: posted, and its ledger row and summary line written."""
    name = channel_name(send.subscriber.email)
    digest = send.digest if send.late is None else late_digest(store, send, snapshots)
    assert digest is not None
    url = settings.channel_url(name)
    done = None
    if url is None:
        outcome = Outcome("retry", f"no destination: set DIGEST_CHANNEL_URLS__{name.upper()}")
    else:
        title, body = chat_text(digest, archive_url=archive_url(settings, send.date))
        message_id = send.resend_message_id or f"<{send.date}.{secrets.token_hex(12)}@channel.{name}>"
        # 'sending' committed right before the first request goes out (never for a URL that
        # cannot work): a kill after it leaves the post unknown, never posted twice
        mark = functools.partial(store.mark_sending, send.date, send.subscriber.email, message_id, utcnow())
        # a post split in parts that stopped half-way resumes at the first part not taken
        resume = store.parts_done(send.date, send.subscriber.email)
        posted = chat.post(url, title, body, resume=resume, ready=mark)
        outcome, done = posted.outcome, posted.delivered
    _record(store, send, outcome, done)
    report.lines.append(_line(name, send.date, outcome))
    report.trouble |= outcome.status != "sent"


def _record(store: Store, send: Send, outcome: Outcome, done: int | None) -> None:
    if outcome.status == "sent":
        store.mark_sent(send.date, send.subscriber.email, outcome.reply, utcnow())
    else:
        status = _NEXT[outcome.status]
        store.mark_status(send.date, send.subscriber.email, status, outcome.reply, utcnow(), parts_done=done)


def _line(name: str, date: dt.date, outcome: Outcome) -> str:
    what = {
        "sent": "posted",
        "retry": "not posted, the next run retries",
        "failed": "failed",
        "unknown": "may have been posted (no answer); not posted again",
    }[outcome.status]
    return f"channel {name}: {date}: {what}" + ("" if outcome.status == "sent" else f": {outcome.reply}")
