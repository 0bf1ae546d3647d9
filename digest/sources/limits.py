"""Bounds on what a server can make the fetcher do: a total deadline per request, and content
decoding that never inflates more than it is asked for. Helpers for `fetch.py`; no business logic.

httpx's timeouts bound each wait for the next bytes, so a server sending a byte every few seconds
never trips them; and httpx inflates each network chunk in one call with no output limit, so a
small body compressed twice (`Content-Encoding: gzip, gzip`) becomes gigabytes before any cap can
count it. Here the deadline cuts the connection whatever phase the request is in, and the body is
decoded layer by layer in pieces of at most `STEP` bytes, pulled only as fast as the reader counts.
"""

from __future__ import annotations

import contextlib
import socket
import threading
import zlib
from collections.abc import Iterable, Iterator, Sequence
from types import TracebackType
from typing import Any

import httpx

STEP = 64 * 1024  # the most decoded bytes one layer hands on at a time
MAX_CODINGS = 3  # Content-Encoding layers decoded; nobody stacks more on purpose
# The codings digest asks for (Accept-Encoding) and decodes; zlib's window bits for each.
_GZIP_WBITS = 16 + zlib.MAX_WBITS
_WBITS = {"gzip": _GZIP_WBITS, "x-gzip": _GZIP_WBITS, "deflate": zlib.MAX_WBITS}
ACCEPT_ENCODING = "gzip, deflate"


class PastDeadline(Exception):
    """The request's total deadline passed (raised between chunks; the fetcher words it)."""


class Deadline:
    """Cuts one request's connection when `seconds` have passed since it started.

    A timer shuts the socket down (which wakes a read blocked on it; the read then fails or sees
    the end) and sets `expired`, which the fetcher checks before it believes any outcome. The
    socket is learnt from httpcore's documented `trace` request extension, at connect: so the
    client must open a connection per request (no keep-alive), or a reused one would go uncut.
    """

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.expired = False
        self._sockets: list[socket.socket] = []
        self._lock = threading.Lock()
        self._timer = threading.Timer(seconds, self._expire)
        self._timer.daemon = True

    def __enter__(self) -> Deadline:
        self._timer.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._timer.cancel()

    def trace(self, event: str, info: dict[str, Any]) -> None:
        """httpcore's trace hook: remember each socket the request connects."""
        if not event.endswith((".connect_tcp.complete", ".connect_unix_socket.complete")):
            return
        stream = info.get("return_value")
        sock = stream.get_extra_info("socket") if stream is not None else None
        if isinstance(sock, socket.socket):
            with self._lock:
                self._sockets.append(sock)
                if self.expired:  # the deadline passed while connecting
                    _shut(sock)

    def check(self) -> None:
        if self.expired:
            raise PastDeadline

    def _expire(self) -> None:
        with self._lock:
            self.expired = True
            for sock in self._sockets:
                _shut(sock)


def _shut(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already closed: the request finished as the timer fired
        sock.shutdown(socket.SHUT_RDWR)


def codings(header: str | None) -> list[str]:
    """The Content-Encoding tokens in the order the server applied them, without `identity`."""
    tokens = (t.strip().lower() for t in (header or "").split(","))
    return [t for t in tokens if t and t != "identity"]


def unsupported(applied: Sequence[str]) -> str | None:
    """Why the body cannot be decoded within bounds, or None."""
    unknown = [c for c in applied if c not in _WBITS]
    if unknown:
        return f"Content-Encoding {', '.join(unknown)}, which digest did not ask for and does not decode"
    if len(applied) > MAX_CODINGS:
        return f"Content-Encoding with {len(applied)} layers ({', '.join(applied)}); at most {MAX_CODINGS}"
    return None


def decoded(raw: Iterable[bytes], applied: Sequence[str]) -> Iterator[bytes]:
    """The body with `applied` undone (the last applied first), lazily and in bounded pieces.

    Raises httpx.DecodingError on data a coding cannot read.
    """
    stream: Iterator[bytes] = iter(raw)
    for coding in reversed(applied):
        stream = _inflate(stream, coding)
    return stream


def _inflate(chunks: Iterator[bytes], coding: str) -> Iterator[bytes]:
    wbits = _WBITS[coding]
    inflater = zlib.decompressobj(wbits)
    started = False
    try:
        for data in chunks:
            while data:
                if inflater.eof:
                    # gzip allows several members back to back; anything else after the end is
                    # ignored, as browsers and httpx do, and not read on.
                    if wbits != _GZIP_WBITS or not data.startswith(b"\x1f\x8b"):
                        return
                    inflater = zlib.decompressobj(wbits)
                try:
                    out = inflater.decompress(data, STEP)
                except zlib.error:
                    if started or coding != "deflate":
                        raise
                    # "deflate" is meant to be zlib-wrapped, but some servers send it raw.
                    inflater, wbits = zlib.decompressobj(-zlib.MAX_WBITS), -zlib.MAX_WBITS
                    out = inflater.decompress(data, STEP)
                started = True
                data = inflater.unused_data if inflater.eof else inflater.unconsumed_tail
                if out:
                    yield out
        tail = inflater.flush()  # at most what zlib still holds: a few bytes, not a bomb
        if tail:
            yield tail
    except zlib.error as exc:
        raise httpx.DecodingError(f"{coding}: {exc}") from None
