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
- `hostile_smtp(...)` yields a `HostileSmtp`: a small SMTP server of our own (asyncio, a thread)
  for what aiosmtpd will not do: reply bytes that are not UTF-8, announce any SIZE, stall before
  the greeting or after the data, and say (`wait`, `on_event`) when a client got to a point.
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


class HostileSmtp:
    """A real SMTP server (plain text, asyncio streams on 127.0.0.1) that misbehaves on purpose.

    - `data_reply`: the raw bytes answered to the end of the data (any bytes, not only UTF-8);
    - `size`: the SIZE announced in EHLO (None: no SIZE line);
    - `stall`: "greeting" (accept the connection, say nothing) or "data" (take the whole message,
      never answer); None: behave. Can be changed between runs;
    - `refuse`: addresses whose RCPT TO is answered "550 5.1.1 no such user";
    - `per_connection`: after this many messages on a connection, MAIL FROM is answered "421 too
      many messages" and the connection closed (the client must reconnect; nothing was sent).
    Events, in order: "connected", "mail" (MAIL FROM received), "data_end" (the message's final
    dot received), "replied" (the reply to it written). `wait(event)` blocks until one happens;
    `on_event(event)`, when set, is called in the server's thread the moment it does (to kill a
    client at an exact point). `received` keeps (MAIL FROM, RCPT TOs, data) of every message that
    reached its final dot, answered or not.
    """

    EVENTS = ("connected", "mail", "data_end", "replied")

    def __init__(
        self,
        *,
        data_reply: bytes = b"250 2.0.0 Ok: queued",
        size: int | None = None,
        stall: str | None = None,
    ) -> None:
        self.data_reply = data_reply
        self.size = size
        self.stall = stall
        self.refuse: set[str] = set()
        self.per_connection: int | None = None
        self.on_event: Any = None
        self.received: list[tuple[str, tuple[str, ...], bytes]] = []
        self.counts = dict.fromkeys(self.EVENTS, 0)
        self._cond = threading.Condition()
        self.port = 0
        self._loop: Any = None
        self._stopped: Any = None

    # -- what tests read --------------------------------------------------------------------------
    def recipients(self) -> list[str]:
        with self._cond:
            return [r for _, rcpts, _ in self.received for r in rcpts]

    def wait(self, event: str, count: int = 1, timeout: float = 30.0) -> bool:
        """Until `event` happened `count` times in all."""
        with self._cond:
            return self._cond.wait_for(lambda: self.counts[event] >= count, timeout)

    def _happened(self, event: str) -> None:
        with self._cond:
            self.counts[event] += 1
            self._cond.notify_all()
        if self.on_event is not None:
            self.on_event(event)

    # -- the server -------------------------------------------------------------------------------
    async def _session(self, reader: Any, writer: Any) -> None:
        self._happened("connected")
        try:
            if self.stall == "greeting":
                await self._stopped.wait()
                return
            writer.write(b"220 hostile.test ESMTP\r\n")
            mail_from, rcpts, messages = "", [], 0
            while line := await reader.readline():
                verb = line[:4].upper()
                if verb in (b"EHLO", b"HELO"):
                    extensions = [b"hostile.test", b"8BITMIME", b"SMTPUTF8"]
                    if self.size is not None:
                        extensions.append(b"SIZE %d" % self.size)
                    head = [b"250-" + e for e in extensions[:-1]] + [b"250 " + extensions[-1]]
                    writer.write(b"\r\n".join(head) + b"\r\n")
                elif verb == b"MAIL" and self.per_connection is not None and messages >= self.per_connection:
                    writer.write(b"421 4.7.0 too many messages on this connection\r\n")
                    await writer.drain()
                    break
                elif verb == b"MAIL":
                    mail_from, rcpts, messages = line[10:].decode(errors="replace").strip(), [], messages + 1
                    self._happened("mail")
                    writer.write(b"250 2.1.0 Ok\r\n")
                elif verb == b"RCPT":
                    rcpt = line[8:].decode(errors="replace").strip().split()[0].strip("<>")
                    if rcpt in self.refuse:
                        writer.write(b"550 5.1.1 no such user\r\n")
                    else:
                        rcpts.append(rcpt)
                        writer.write(b"250 2.1.5 Ok\r\n")
                elif verb == b"DATA":
                    writer.write(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    await self._data(reader, writer, mail_from, tuple(rcpts))
                elif verb == b"QUIT":
                    writer.write(b"221 2.0.0 Bye\r\n")
                    break
                else:  # RSET, NOOP
                    writer.write(b"250 2.0.0 Ok\r\n")
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    async def _data(self, reader: Any, writer: Any, mail_from: str, rcpts: tuple[str, ...]) -> None:
        lines = []
        while (line := await reader.readline()) not in (b".\r\n", b""):
            lines.append(line)
        with self._cond:
            self.received.append((mail_from, rcpts, b"".join(lines)))
        self._happened("data_end")
        if self.stall == "data":
            await self._stopped.wait()
            return
        writer.write(self.data_reply + b"\r\n")
        await writer.drain()
        self._happened("replied")

    def _serve(self, started: threading.Event) -> None:
        import asyncio

        async def main() -> None:
            self._stopped = asyncio.Event()
            server = await asyncio.start_server(self._session, HOST, 0)
            self.port = server.sockets[0].getsockname()[1]
            started.set()
            async with server:
                await self._stopped.wait()
                server.close()

        self._loop = asyncio.new_event_loop()
        try:
            self._loop.run_until_complete(main())
        finally:
            self._loop.close()

    def start(self) -> None:
        started = threading.Event()
        self._thread = threading.Thread(target=self._serve, args=(started,), daemon=True)
        self._thread.start()
        assert started.wait(5), "the hostile SMTP server did not start"

    def stop(self) -> None:
        self._loop.call_soon_threadsafe(self._stopped.set)
        self._thread.join(5)


@contextlib.contextmanager
def hostile_smtp(
    *, data_reply: bytes = b"250 2.0.0 Ok: queued", size: int | None = None, stall: str | None = None
) -> Iterator[HostileSmtp]:
    server = HostileSmtp(data_reply=data_reply, size=size, stall=stall)
    server.start()
    try:
        yield server
    finally:
        server.stop()
