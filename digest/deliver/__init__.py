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
from dataclasses import dataclass, field
from email.message import EmailMessage
from types import TracebackType
from typing import Literal, Protocol, Self

from digest.core.errors import DigestError, SendError

Status = Literal["sent", "retry", "failed", "unknown"]

_REPLY_CHARS = 500  # a reply kept or shown is cut here: a hostile server can send 8 KB lines


def printable(text: str, limit: int = _REPLY_CHARS) -> str:
    """Text from a server, safe to store in the ledger and to print on one line.

    aiosmtplib keeps the bytes of a reply that are not UTF-8 (`f\xfcr`, Latin-1 as real servers
    send) as lone surrogates, which SQLite and a terminal refuse: they become U+FFFD here. Control
    and format characters (escape sequences, bidi overrides, line breaks) become spaces, runs of
    whitespace one space, and the text is cut to `limit` characters.
    """
    try:
        raw = text.encode("utf-8", "surrogateescape")
    except UnicodeEncodeError:  # a surrogate surrogateescape did not make
        raw = text.encode("utf-8", "replace")
    decoded = raw.decode("utf-8", "replace")
    if not decoded.isprintable():  # a server's reply nearly always is: then no pass per character
        decoded = "".join(c if c.isprintable() else " " for c in decoded)
    shown = " ".join(decoded.split())
    return shown if len(shown) <= limit else shown[: limit - 1] + "…"


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
    timeout: bool = False  # no reply came within [smtp] timeout (the sender's breaker counts these)


@dataclass(frozen=True, slots=True)
class OutgoingMessage:
    """One message ready for the wire: the envelope, and the whole message as bytes.

    `data` has CRLF line endings and is not dot-stuffed (that is the SMTP transport's job).
    `sender` and `recipient` are the addr-specs of From and To, for MAIL FROM and RCPT TO.
    `dots`, when known (`dot_lines`), are where `data`'s lines that start with "." start: the SMTP
    transport doubles those dots without reading the whole message again. `build_message` finds
    them, in the render workers; the run's event loop, which drives every connection, does not.
    """

    sender: str
    recipient: str
    message_id: str  # "<...@domain>", as in the Message-ID header
    date: dt.datetime  # as in the Date header
    data: bytes
    dots: tuple[int, ...] | None = field(default=None, compare=False, repr=False)

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


def dot_lines(data: bytes, start: int = 0, *, crlf: bool = False) -> tuple[int, ...] | None:
    """The offset of each line of `data` from `start` on (a line's start) that starts with ".",
    which DATA doubles; None unless every line ending in `data` is CRLF and it ends with one
    (DATA then normalises it first). `crlf`: the caller wrote `data` so (`build_message`), and
    only the dots are looked for: a third of the time."""
    if not crlf:
        count = data.count(b"\r\n")
        if not data.endswith(b"\r\n") or data.count(b"\n") != count or data.count(b"\r") != count:
            return None
    found = [start] if data.startswith(b".", start) else []
    at = data.find(b"\r\n.", start)
    while at >= 0:
        found.append(at + 2)
        at = data.find(b"\r\n.", at + 3)
    return tuple(found)


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
        DigestError.__init__(self, printable(f"{server}: {message}", limit=1000))


class Ready(Protocol):
    """The sender's side of the unknown window, handed to `Transport.send`.

    The transport calls it once its destination is ready (SMTP: connected, TLS, EHLO, AUTH done
    and the rate token held), right before the transaction opens (MAIL FROM; the outbox: before
    writing): the sender commits 'sending' then, and only then. Waiting, connecting and
    reconnecting happen before it, so a process killed there leaves the digest 'pending'.
    """

    def __call__(self) -> None: ...

    def undo(self, why: str) -> None:
        """Nothing of the message went out after all and the transport will try again itself (a
        reused connection the server had closed): the digest is 'pending' again meanwhile."""
        ...


class Transport(Protocol):
    """Where messages go. `send` never raises for a problem with one message (it returns an
    `Outcome`); it raises `ConnectionFailure` when it cannot reach the destination at all.
    `ready` (see `Ready`) is called right before the transaction opens; a transport that returns
    or raises without calling it sent nothing."""

    async def __aenter__(self) -> Self: ...

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...

    async def send(self, message: OutgoingMessage, worker: int, ready: Ready | None = None) -> Outcome: ...


__all__ = ["ConnectionFailure", "Outcome", "OutgoingMessage", "Ready", "Status", "Transport", "printable"]
