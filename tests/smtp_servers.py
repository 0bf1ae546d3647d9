"""Real SMTP servers for tests (aiosmtpd in a thread on 127.0.0.1), and handlers that misbehave
the ways real servers do. Test helpers only; no product logic.

    with smtp_server(AcceptAll()) as (host, port, handler):
        ...  # send to host:port
    assert handler.recipients() == ["ada@example.org"]

- `smtp_server(handler, tls_context=..., require_starttls=..., implicit_tls=..., auth=...)`
  yields `(host, port, handler)`; `free_port()` gives a port nobody listens on.
- Handlers (thread-safe, all keep what they received): `AcceptAll`, `TempFailThenAccept`,
  `RejectRecipient`, `DropAfterData`.
- `tls_certificates(tmp_path)` makes a throwaway CA with trustme: the server's context and the
  CA's PEM file (for `[smtp] ca_file`).
"""

from __future__ import annotations

import contextlib
import email
import email.policy
import socket
import ssl
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from email.message import EmailMessage
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, Session

HOST = "127.0.0.1"


@dataclass(frozen=True)
class Received:
    """One message as the server got it."""

    mail_from: str
    rcpt_tos: tuple[str, ...]
    raw: bytes
    peer: tuple[str, int]  # the client's address and port: one per connection

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        return parsed


class AcceptAll:
    """Accepts every message and keeps it; counts connections (by EHLO) and DATA commands."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self.received: list[Received] = []
        self.ehlos: list[tuple[str, int]] = []  # the peer of every EHLO (STARTTLS makes a second)
        self.data_commands = 0  # every message that reached the handler, accepted or not
        self.logins: list[str] = []  # the user of every AUTH tried (with `auth=`)

    # -- what tests read --------------------------------------------------------------------------
    @property
    def connections(self) -> int:
        """Distinct client connections that said EHLO."""
        with self._lock:
            return len(set(self.ehlos))

    def messages(self) -> list[EmailMessage]:
        with self._lock:
            items = list(self.received)
        return [r.message for r in items]

    def recipients(self) -> list[str]:
        with self._lock:
            return [rcpt for r in self.received for rcpt in r.rcpt_tos]

    def wait_for(self, count: int, timeout: float = 5.0) -> bool:
        """Wait until `count` messages were received (the server thread may lag the client)."""
        with self._cond:
            return self._cond.wait_for(lambda: len(self.received) >= count, timeout)

    # -- aiosmtpd hooks ---------------------------------------------------------------------------
    async def handle_EHLO(
        self, server: Any, session: Session, envelope: Envelope, hostname: str, responses: list[str]
    ) -> list[str]:
        session.host_name = hostname
        with self._lock:
            self.ehlos.append(tuple(session.peer))
        return responses

    async def handle_RCPT(
        self, server: Any, session: Session, envelope: Envelope, address: str, rcpt_options: list[str]
    ) -> str:
        refusal = self.refuse_rcpt(address)
        if refusal:
            return refusal
        envelope.rcpt_tos.append(address)
        return "250 2.1.5 OK"

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        with self._lock:
            self.data_commands += 1
        refusal = self.refuse_data(envelope)
        if refusal:
            return refusal
        self.keep(envelope, session)
        return "250 2.0.0 Ok: queued"

    # -- what subclasses change -------------------------------------------------------------------
    def refuse_rcpt(self, address: str) -> str | None:
        return None

    def refuse_data(self, envelope: Envelope) -> str | None:
        return None

    def keep(self, envelope: Envelope, session: Session) -> None:
        raw = envelope.original_content or envelope.content or b""
        if isinstance(raw, str):
            raw = raw.encode()
        item = Received(str(envelope.mail_from), tuple(envelope.rcpt_tos), bytes(raw), tuple(session.peer))
        with self._cond:
            self.received.append(item)
            self._cond.notify_all()


class TempFailThenAccept(AcceptAll):
    """Answers `code` (451) to the first `n` DATA for each recipient, then accepts."""

    def __init__(self, n: int = 2, code: int = 451) -> None:
        super().__init__()
        self.n = n
        self.code = code
        self.refused: dict[str, int] = {}

    def refuse_data(self, envelope: Envelope) -> str | None:
        key = ",".join(envelope.rcpt_tos)
        with self._lock:
            seen = self.refused.get(key, 0)
            if seen >= self.n:
                return None
            self.refused[key] = seen + 1
        return f"{self.code} 4.3.0 try again later"


class RejectRecipient(AcceptAll):
    """Refuses RCPT TO `addr` with `code` (550, no such user); accepts everyone else."""

    def __init__(self, addr: str, code: int = 550) -> None:
        super().__init__()
        self.addr = addr.lower()
        self.code = code

    def refuse_rcpt(self, address: str) -> str | None:
        if address.lower() == self.addr:
            return f"{self.code} 5.1.1 <{address}>: no such user"
        return None


class DropAfterData(AcceptAll):
    """Takes the whole message, then hangs up without replying (for `addr`, or for everyone).

    The message *was* received (it is kept), which is exactly why the client must not resend it.
    """

    def __init__(self, addr: str | None = None) -> None:
        super().__init__()
        self.addr = addr.lower() if addr else None

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        if self.addr is not None and self.addr not in [r.lower() for r in envelope.rcpt_tos]:
            return await super().handle_DATA(server, session, envelope)
        with self._lock:
            self.data_commands += 1
        self.keep(envelope, session)
        server.transport.abort()  # no reply: the client cannot know whether it was accepted
        return "250 2.0.0 never seen by the client"


@dataclass(frozen=True)
class TlsFiles:
    """A throwaway CA, and a server context with a certificate for 127.0.0.1/localhost it signed."""

    ca_file: Path
    server_context: ssl.SSLContext


def tls_certificates(directory: Path) -> TlsFiles:
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert(HOST, "localhost")
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_context)
    ca_file = Path(directory) / "test-ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    return TlsFiles(ca_file=ca_file, server_context=server_context)


def free_port() -> int:
    """A port on 127.0.0.1 that nothing listens on (just now)."""
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


class Authenticator:
    """Accepts exactly one user and password; records the logins tried in `logins`."""

    def __init__(self, user: str, password: str, logins: list[str]) -> None:
        self.user = user.encode()
        self.password = password.encode()
        self.logins = logins

    def __call__(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        login, password = getattr(data, "login", b""), getattr(data, "password", b"")
        self.logins.append(login.decode(errors="replace"))
        ok = login == self.user and password == self.password
        # handled=False: aiosmtpd then answers "535 5.7.8 Authentication credentials invalid" itself
        return AuthResult(success=ok, handled=False, auth_data=data)


@contextlib.contextmanager
def smtp_server(
    handler: AcceptAll | None = None,
    *,
    tls_context: ssl.SSLContext | None = None,
    require_starttls: bool = False,
    implicit_tls: ssl.SSLContext | None = None,
    auth: tuple[str, str] | None = None,
) -> Iterator[tuple[str, int, AcceptAll]]:
    """Run an aiosmtpd server on 127.0.0.1 for the duration of the block.

    `tls_context` offers STARTTLS (required before MAIL with `require_starttls`); `implicit_tls`
    makes it TLS from the first byte (like port 465); `auth` = (user, password) accepts exactly
    that login, also over clear text (for plain tests).
    """
    handler = handler if handler is not None else AcceptAll()
    kwargs: dict[str, Any] = {}
    if tls_context is not None:
        kwargs.update(tls_context=tls_context, require_starttls=require_starttls)
    if auth is not None:
        kwargs.update(authenticator=Authenticator(*auth, handler.logins), auth_require_tls=False)
    controller = Controller(handler, hostname=HOST, port=free_port(), ssl_context=implicit_tls, **kwargs)
    controller.start()
    try:
        yield HOST, controller.port, handler
    finally:
        controller.stop()
