"""The one mail the web side sends itself: the confirmation link of a subscribe form (double
opt-in). It goes through the run's own transports (SMTP, or the outbox folder), one message, no
ledger: nothing is recorded of it but the reader's pending row. No business logic."""

from __future__ import annotations

import datetime as dt
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from digest.config import Settings
from digest.core.addresses import addr_spec, domain_of, sanitize_header, sender_address
from digest.deliver import OutgoingMessage
from digest.deliver.message import POLICY
from digest.deliver.outbox import OutboxTransport
from digest.deliver.smtp import SmtpTransport

SUBJECT = "Confirm your subscription to the paper digest"


def confirmation(settings: Settings, to: str, link: str, now: dt.datetime) -> OutgoingMessage:
    """The confirmation message for `to`, with `link` (which expires after [web] confirm_hours)."""
    msg = EmailMessage(policy=POLICY)
    msg["From"] = sanitize_header(settings.smtp.from_)
    msg["To"] = addr_spec(to)
    msg["Subject"] = SUBJECT
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = make_msgid("confirm", domain=domain_of(settings.smtp.from_))
    msg["Auto-Submitted"] = "auto-generated"
    hours = settings.web.confirm_hours
    msg.set_content(
        "Someone, hopefully you, asked for the paper digest to be sent to this address.\n\n"
        f"To confirm, open this link within {hours} hours and press Confirm:\n\n{link}\n\n"
        "If it was not you, ignore this mail: nothing will be sent to you.\n"
    )
    data = msg.as_bytes(policy=POLICY)
    return OutgoingMessage(
        sender_address(settings.smtp.from_)[1], addr_spec(to), str(msg["Message-ID"]), now, data
    )


async def send_one(settings: Settings, message: OutgoingMessage) -> bool:
    """Send `message` as the run would ([delivery] transport); True when it was taken."""
    transport = SmtpTransport(settings.smtp) if settings.transport == "smtp" else None
    if transport is None:
        async with OutboxTransport(settings.delivery.outbox) as outbox:
            return (await outbox.send(message, 0)).status == "sent"
    async with transport:
        return (await transport.send(message, 0)).status == "sent"
