"""The delivery stage: build each digest's message, hand it to a transport, keep the send ledger.

- `message.build_message`: a rendered digest → an `OutgoingMessage`, the wire bytes (pure).
- `Transport` (below): where messages go. `smtp.SmtpTransport` (a pool of reused aiosmtplib
  connections) or `outbox.OutboxTransport` (one .eml file per message).
- `sender.send_all`: drives the ledger, so each digest is sent exactly once across runs.

The small types every part shares live here, so the transports and the sender import nothing of
each other.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Literal, Protocol, Self

from digest.core.errors import DigestError, SendError

Status = Literal["sent", "retry", "failed", "unknown"]


@dataclass(frozen=True, slots=True)
class Outcome:
    """What became of one attempt to send one message.

    - sent: the server accepted it (2xx after the data).
    - retry: it was not taken, for now (4xx, or the connection dropped before the data went out).
    - failed: refused for good (5xx); `suppress` when the refusal was of the recipient itself.
    - unknown: the data went out but no reply came back; it may have been delivered. Never resend
      such a message blindly.
    """

    status: Status
    reply: str  # the server's reply, e.g. "250 2.0.0 Ok: queued" or "550 5.1.1 no such user"
    suppress: bool = False


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message ready for the wire: the envelope, and the whole message as bytes.

    `data` has CRLF line endings and is not dot-stuffed (that is the SMTP transport's job).
    `sender` and `recipient` are the addr-specs of From and To, for MAIL FROM and RCPT TO.
    """

    sender: str
    recipient: str
    message_id: str  # "<...@domain>", as in the Message-ID header
    date: dt.datetime  # as in the Date header
    data: bytes

    @property
    def smtputf8(self) -> bool:
        """An address is not ASCII: it is in the headers as UTF-8, and the server must offer SMTPUTF8."""
        return not (self.sender + self.recipient).isascii()

    def parsed(self) -> EmailMessage:
        """The message as a receiving server reads it (the stdlib parser); for tests and tools."""
        message = email.message_from_bytes(self.data, policy=email.policy.default)
        assert isinstance(message, EmailMessage)
        return message

    def as_bytes(self, policy: object = None) -> bytes:
        """`data`, under the name callers of the `EmailMessage` this replaced used (policy is moot)."""
        return self.data


class ConnectionFailure(SendError):
    """The transport could not reach its destination at all; nothing was transmitted.

    `permanent` when trying again cannot help in this run (no STARTTLS offered, a certificate that
    does not verify, a login the server refuses): the sender then stops at once.
    """

    def __init__(self, server: str, message: str, *, permanent: bool = False) -> None:
        self.server = server  # "host:port", or the outbox directory
        self.recipient = server
        self.reason = message
        self.permanent = permanent
        DigestError.__init__(self, f"{server}: {message}")


class Transport(Protocol):
    """Where messages go. `send` never raises for a problem with one message (it returns an
    `Outcome`); it raises `ConnectionFailure` when it cannot reach the destination at all."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def send(self, message: OutgoingMessage, worker: int) -> Outcome: ...


__all__ = ["ConnectionFailure", "Outcome", "OutgoingMessage", "Status", "Transport"]
