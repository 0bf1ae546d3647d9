"""The delivery stage: build each digest's message, hand it to a transport, keep the send ledger.

- `message.build_message`: a rendered digest → an `EmailMessage` (pure).
- `Transport` (below): where messages go. `smtp.SmtpTransport` (a pool of reused aiosmtplib
  connections) or `outbox.OutboxTransport` (one .eml file per message).
- `sender.send_all`: drives the ledger, so each digest is sent exactly once across runs.

The small types every part shares live here, so the transports and the sender import nothing of
each other.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage
from types import TracebackType
from typing import Literal, Protocol, Self

from digest.errors import DigestError, SendError

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

    async def send(self, message: EmailMessage, worker: int) -> Outcome: ...


__all__ = ["ConnectionFailure", "Outcome", "Status", "Transport"]
