"""The SMTP transport: a pool of aiosmtplib connections, one per worker, kept open and reused.

Security is never opportunistic. "starttls" (the default) *requires* the upgrade: a server that
does not offer STARTTLS is refused before anything (mail or password) is sent. "tls" is implicit
TLS (port 465); "none" is clear text, which the configuration only allows to loopback hosts unless
`allow_insecure` is set. Certificates are verified unless `verify = false`.

aiosmtplib's `send_message` runs MAIL, RCPT and DATA in one call, so when the connection drops it
cannot say whether the message went out. Here the phases are separate: a failure before the
message content was written is safe to retry; once the content is on the wire and no reply comes
back, the outcome is "unknown", and the message is never resent blindly.

The unknown window is the transaction and nothing else: the rate token is taken and the
connection made ready (TLS, EHLO, AUTH) first, then the sender's `ready` is called (it commits
'sending'), then MAIL FROM. A digest larger than the SIZE the server announced is not attempted:
that ends the run (`ConnectionFailure`, permanent), since no later message can change it.
"""

from __future__ import annotations

import asyncio
import logging
import ssl
from dataclasses import dataclass, field
from types import TracebackType
from typing import Self

import aiosmtplib
from aiosmtplib.protocol import normalize_message_line_endings

from digest.config import SmtpConfig
from digest.deliver import ConnectionFailure, Outcome, OutgoingMessage, Ready, printable

log = logging.getLogger(__name__)

# What a connection that is gone looks like, depending on where it went.
_LOST = (aiosmtplib.SMTPServerDisconnected, aiosmtplib.SMTPTimeoutError, ConnectionError, OSError)


def tls_context(config: SmtpConfig) -> ssl.SSLContext:
    """The client context: the system CAs plus `ca_file` (the config calls it an *extra* bundle),
    hostname checked; no verification at all only when `verify = false`."""
    context = ssl.create_default_context()
    if config.ca_file is not None:
        context.load_verify_locations(cafile=str(config.ca_file))
    if not config.verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


class RateLimiter:
    """At most `rate` acquisitions per second over every worker, evenly spaced; 0 = no limit."""

    def __init__(self, rate: float) -> None:
        self.interval = 1.0 / rate if rate > 0 else 0.0
        self._next = 0.0

    async def wait(self) -> None:
        if not self.interval:
            return
        now = asyncio.get_running_loop().time()
        at = max(now, self._next)
        self._next = at + self.interval  # reserved before sleeping, so workers queue up fairly
        if at > now:
            await asyncio.sleep(at - now)


@dataclass(eq=False)
class _Slot:
    """One pooled connection; the lock keeps two workers off it if there are more workers than slots."""

    client: aiosmtplib.SMTP | None = None
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    def drop(self) -> None:
        if self.client is not None:
            self.client.close()
        self.client = None


class SmtpTransport:
    """Send over SMTP with `config.concurrency` reused connections (see the module docstring)."""

    def __init__(self, config: SmtpConfig) -> None:
        if not config.host:
            raise ConnectionFailure(
                "[smtp]", 'no host configured; set [smtp] host or [delivery] transport = "outbox"'
            )
        self.config = config
        self.server = f"{config.host}:{config.port_number}"
        self._tls = tls_context(config) if config.security != "none" else None
        self._slots = [_Slot() for _ in range(config.concurrency)]
        self._limiter = RateLimiter(config.rate)
        self.connections_opened = 0

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """QUIT every open connection (politely, briefly) and close it."""

        async def quit(slot: _Slot) -> None:
            if slot.client is not None and slot.client.is_connected:
                try:
                    await slot.client.quit(timeout=min(5.0, self.config.timeout))
                except (aiosmtplib.SMTPException, *_LOST):
                    pass
            slot.drop()

        await asyncio.gather(*(quit(s) for s in self._slots))

    # -- sending ---------------------------------------------------------------------------------
    async def send(self, message: OutgoingMessage, worker: int, ready: Ready | None = None) -> Outcome:
        if not message.sender or not message.recipient:
            return Outcome("failed", "the message has no From or no To address")
        slot = self._slots[worker % len(self._slots)]
        async with slot.lock:
            await self._limiter.wait()  # before `ready`: a digest waiting for its turn is pending
            return await self._send(slot, message, ready or _NOT_WATCHED)

    async def _send(self, slot: _Slot, message: OutgoingMessage, ready: Ready) -> Outcome:
        """MAIL, RCPT and DATA as separate phases, so a lost connection says whether it matters."""
        opened = await self._mail_from(slot, message, ready)
        if isinstance(opened, Outcome):
            return opened
        refused = await self._rcpt_and_data(slot, opened, message)
        if refused is not None:
            return refused
        return await self._content(slot, opened, message)

    async def _mail_from(
        self, slot: _Slot, message: OutgoingMessage, ready: Ready
    ) -> aiosmtplib.SMTP | Outcome:
        """MAIL FROM on the slot's connection: the client, ready for RCPT, or why not."""
        for force_new in (False, True):
            client, fresh = await self._connected(slot, force_new=force_new)
            unfit = self._unfit(client, message)
            if unfit is not None:
                return unfit
            ready()  # the transaction opens: the sender commits 'sending' now
            try:
                await client.mail(
                    message.sender, options=_mail_options(client, message), encoding=_encoding(message)
                )
            except _LOST as exc:
                slot.drop()
                if fresh:
                    return _lost_before(exc)
                # a pooled connection the server had closed: reconnect once, nothing was sent
                ready.undo(f"the server had closed the connection ({_text(exc)}); reconnecting")
                continue
            except aiosmtplib.SMTPResponseException as exc:
                if exc.code == 421 and not fresh:
                    slot.drop()  # "too many messages on this connection": a new one is fine
                    ready.undo(f"{_reply(exc.code, exc.message)}; reconnecting")
                    continue
                return await self._refused(slot, exc)
            return client
        raise AssertionError("unreachable")  # pragma: no cover - a fresh connection's pass returns

    def _unfit(self, client: aiosmtplib.SMTP, message: OutgoingMessage) -> Outcome | None:
        """Why this server cannot take this message, found from its EHLO before anything is sent.

        A message over the server's SIZE raises: every later digest is about as large, and a
        refusal for good would keep the reader from their digest after the limit is raised."""
        if message.smtputf8 and not client.supports_extension("smtputf8"):
            return Outcome("failed", "the address is not ASCII and the server does not support SMTPUTF8")
        limit = size_limit(client)
        if limit is not None and len(message.data) > limit:
            raise ConnectionFailure(
                self.server,
                f"the digest for {message.recipient} is {len(message.data)} bytes, over the "
                f"server's SIZE limit of {limit} bytes (nothing was sent); raise the limit on the "
                "server, or lower max_papers in the profiles",
                permanent=True,
            )
        return None

    async def _rcpt_and_data(
        self, slot: _Slot, client: aiosmtplib.SMTP, message: OutgoingMessage
    ) -> Outcome | None:
        """RCPT TO and the DATA command: None when the server is ready for the content."""
        try:
            await client.rcpt(message.recipient, encoding=_encoding(message))
            response = await client.execute_command(b"DATA")
        except _LOST as exc:
            slot.drop()
            return _lost_before(exc)
        except aiosmtplib.SMTPRecipientRefused as exc:
            return await self._refused(slot, exc, recipient=True)
        except aiosmtplib.SMTPResponseException as exc:
            return await self._refused(slot, exc)
        if response.code != 354:
            return await self._refused(slot, aiosmtplib.SMTPDataError(response.code, response.message))
        return None

    async def _content(self, slot: _Slot, client: aiosmtplib.SMTP, message: OutgoingMessage) -> Outcome:
        """The message itself and the server's verdict. From here on the content may have reached
        the server, so a lost connection or a garbled reply is "unknown", never "retry"."""
        protocol = client.protocol
        try:
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("connection lost")
            protocol.write(data_content(message.data, message.dots))
            response = await protocol.read_response(timeout=self.config.timeout)
        except _LOST as exc:
            slot.drop()
            if isinstance(exc, aiosmtplib.SMTPTimeoutError):
                why = f"no reply within {self.config.timeout:g} s after the message was sent"
                return Outcome("unknown", why, timeout=True)
            why = f"connection lost after the message was sent, before the server replied ({_text(exc)})"
            return Outcome("unknown", why)
        except aiosmtplib.SMTPResponseException as exc:  # a malformed reply: who knows what it meant
            slot.drop()
            return Outcome("unknown", _reply(exc.code, exc.message))
        reply = _reply(response.code, response.message)
        if 200 <= response.code < 300:
            return Outcome("sent", reply)
        if response.code == 421:
            slot.drop()
        return Outcome("retry" if 400 <= response.code < 500 else "failed", reply)

    async def _refused(
        self, slot: _Slot, exc: aiosmtplib.SMTPResponseException, *, recipient: bool = False
    ) -> Outcome:
        """A 4xx/5xx before the content: classify it and reset the envelope for the next message."""
        reply = _reply(exc.code, exc.message)
        client = slot.client
        if client is not None and client.is_connected and exc.code != 421:
            try:
                await client.rset()
            except (aiosmtplib.SMTPException, *_LOST):
                slot.drop()  # a connection we cannot reset is not worth reusing
        else:
            slot.drop()
        if 400 <= exc.code < 500:
            return Outcome("retry", reply)
        return Outcome("failed", reply, suppress=recipient and 500 <= exc.code < 600)

    # -- connecting ------------------------------------------------------------------------------
    async def _connected(self, slot: _Slot, *, force_new: bool) -> tuple[aiosmtplib.SMTP, bool]:
        """The slot's connection (reused when still open), and whether it is new."""
        if not force_new and slot.client is not None and slot.client.is_connected:
            return slot.client, False
        slot.drop()
        slot.client = await self._connect()
        return slot.client, True

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port_number,
            timeout=cfg.timeout,
            use_tls=cfg.security == "tls",
            start_tls=False,  # never aiosmtplib's opportunistic upgrade: done, and required, below
            tls_context=self._tls,
        )
        try:
            await client.connect()
            if cfg.security == "starttls":
                await client.ehlo()
                if not client.supports_extension("starttls"):
                    raise ConnectionFailure(
                        self.server,
                        'the server does not offer STARTTLS, which security = "starttls" requires '
                        "(nothing was sent); "
                        'if the server speaks TLS from the start (usually port 465) set security = "tls", '
                        'or for a local test server security = "none"',
                        permanent=True,
                    )
                await client.starttls()
            if cfg.username:
                password = cfg.password.get_secret_value() if cfg.password is not None else ""
                await client.login(cfg.username, password)
            if client.is_ehlo_or_helo_needed:  # SIZE and SMTPUTF8 are known before MAIL FROM
                await client.ehlo()
        except ConnectionFailure:
            client.close()
            raise
        except aiosmtplib.SMTPAuthenticationError as exc:
            client.close()
            raise ConnectionFailure(
                self.server,
                f"login as {cfg.username!r} refused ({_reply(exc.code, exc.message)}); "
                "check [smtp] username and DIGEST_SMTP__PASSWORD",
                permanent=exc.code >= 500,
            ) from None
        except (aiosmtplib.SMTPException, *_LOST) as exc:
            client.close()
            raise self._failure(exc) from None
        self.connections_opened += 1
        log.debug("connected to %s (%s)", self.server, self.config.security)
        return client

    def _failure(self, exc: BaseException) -> ConnectionFailure:
        text = _text(exc)
        if _is_cert_error(exc):
            return ConnectionFailure(
                self.server,
                f"the TLS certificate does not verify ({text}); for a private CA set [smtp] ca_file, "
                "or (tests only) verify = false",
                permanent=True,
            )
        if isinstance(exc, ssl.SSLError) or isinstance(exc.__cause__, ssl.SSLError):
            return ConnectionFailure(self.server, f"TLS failed: {text}{self._port_hint()}", permanent=True)
        if isinstance(exc, aiosmtplib.SMTPConnectTimeoutError) and "ready message" in text:
            return ConnectionFailure(self.server, f"cannot connect: {text}{self._port_hint()}")
        if isinstance(exc, aiosmtplib.SMTPException) and "AUTH" in text:
            fix = "remove [smtp] username or enable AUTH on the server"
            return ConnectionFailure(self.server, f"{text}; {fix}", permanent=True)
        return ConnectionFailure(self.server, f"cannot connect: {text}")

    def _port_hint(self) -> str:
        if self.config.security == "tls":
            return '; if the server expects STARTTLS (usually port 587) set security = "starttls"'
        return '; if the server speaks TLS from the first byte (usually port 465) set security = "tls"'


def _is_cert_error(exc: BaseException | None) -> bool:
    seen = 0
    while exc is not None and seen < 5:
        if isinstance(exc, ssl.SSLCertVerificationError) or "CERTIFICATE_VERIFY_FAILED" in str(exc):
            return True
        exc, seen = exc.__cause__ or exc.__context__, seen + 1
    return False


def data_content(data: bytes, dots: tuple[int, ...] | None = None) -> bytes:
    """`data` as DATA carries it: CRLF line endings, a "." doubled at the start of a line, and the
    closing ".".

    aiosmtplib does this with two regular expressions, ~1 ms for a 60 KB digest; `bytes.count` and
    `bytes.replace` give the same bytes in ~0.1 ms; given `dots` (`OutgoingMessage.dots`), ~5 µs.
    """
    if dots is not None and data.endswith(b"\r\n") and all(data[i : i + 1] == b"." for i in dots):
        view = memoryview(data)  # the render worker read the message already: just copy it, once
        return b".".join([view[a:b] for a, b in zip((0, *dots), (*dots, len(data)), strict=True)]) + b".\r\n"
    crlf = data.count(b"\r\n")
    if data.count(b"\n") != crlf or data.count(b"\r") != crlf:  # a bare CR or LF somewhere
        data = normalize_message_line_endings(data)
    elif not data.endswith(b"\r\n"):
        data += b"\r\n"
    stuffed = data.replace(b"\r\n.", b"\r\n..")
    if stuffed.startswith(b"."):
        stuffed = b"." + stuffed
    return stuffed + b".\r\n"


def _encoding(message: OutgoingMessage) -> str:
    return "utf-8" if message.smtputf8 else "ascii"


def _mail_options(client: aiosmtplib.SMTP, message: OutgoingMessage) -> list[str]:
    options = ["SMTPUTF8"] if message.smtputf8 else []
    if client.supports_extension("size"):
        options.append(f"SIZE={len(message.data)}")
    return options


def size_limit(client: aiosmtplib.SMTP) -> int | None:
    """The largest message the server takes, from its EHLO (RFC 1870 SIZE); None: no limit said."""
    value = client.esmtp_extensions.get("size", "") if client.supports_extension("size") else ""
    limit = value.split()[0] if value.split() else ""
    return int(limit) if limit.isdigit() and int(limit) > 0 else None  # "SIZE 0": no fixed limit


def _lost_before(exc: BaseException) -> Outcome:
    why = f"connection lost before the message was sent ({_text(exc)})"
    return Outcome("retry", why, timeout=isinstance(exc, aiosmtplib.SMTPTimeoutError))


class _NotWatched:
    """`ready` for a caller that keeps no ledger (tests, tools)."""

    def __call__(self) -> None:
        return None

    def undo(self, why: str) -> None:
        return None


_NOT_WATCHED = _NotWatched()


def _reply(code: int, message: str) -> str:
    """A reply as kept and shown: whatever its bytes, safe text on one line (see `printable`)."""
    return printable(f"{code} {message}")


def _text(exc: BaseException) -> str:
    if isinstance(exc, aiosmtplib.SMTPResponseException):
        return _reply(exc.code, exc.message)
    return printable(str(exc)) or type(exc).__name__
