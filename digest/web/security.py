"""The web side's guards, as plumbing with no business logic: the client's address (forwarded
headers believed only from `[web] trusted_proxies`), a cap on request bodies, security headers,
CSRF tokens, and sliding-window rate limits.

Everything a request carries is from a stranger. What these guard against: a client claiming any
address in X-Forwarded-For to dodge the per-IP limit (only a configured proxy's word is taken); a
huge or endless body (refused past `[web] max_body`, counted as it arrives, whatever
Content-Length says); another site posting our forms (a signed token bound to a cookie, and the
Origin checked); pages framed, sniffed, or leaking their token-bearing URLs in a Referer to
another site.
"""

from __future__ import annotations

import collections
import ipaddress
import logging
import secrets
import time
from collections.abc import Awaitable, Callable, MutableMapping, Sequence
from typing import Any
from urllib.parse import urlsplit

from digest.core.tokens import timed_token, verify_timed

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

log = logging.getLogger("digest.web")
CSRF_COOKIE = "digest_csrf"
CSRF_HOURS = 12  # a form left open longer is submitted again, with a fresh token
# Pages hold signed links (manage, unsubscribe): no Referer leaves our origin (same-origin, not
# no-referrer: with no-referrer Chromium sends `Origin: null` on our own forms), no frame shows
# them, no script or style but ours runs on them.
PAGE_HEADERS = {
    "content-security-policy": (
        "default-src 'none'; style-src 'self'; img-src 'self' data:; form-action 'self'; "
        "frame-ancestors 'none'; base-uri 'none'"
    ),
    "referrer-policy": "same-origin",
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "cross-origin-opener-policy": "same-origin",
}


class TooLarge(Exception):
    """The request body passed `[web] max_body`."""


def client_ip(peer: str | None, forwarded_for: str | None, trusted: Sequence[str]) -> str:
    """The client's address: the peer's, unless the peer is a trusted proxy, then the nearest
    address in X-Forwarded-For that is not one of ours (the ones before it the client wrote)."""
    networks = [ipaddress.ip_network(t, strict=False) for t in trusted]

    def ours(value: str) -> bool:
        try:
            address = ipaddress.ip_address(value)
        except ValueError:
            return False
        return any(address in network for network in networks)

    if peer is None or not ours(peer) or not forwarded_for:
        return peer or "unknown"
    hops = [hop.strip() for hop in forwarded_for.split(",") if hop.strip()]
    for hop in reversed(hops):
        if not ours(hop):
            return hop[:64]
    return peer


def rate_key(ip: str) -> str:
    """What a per-IP limit counts: the address, or for IPv6 its /64 (one host's usual share)."""
    try:
        address = ipaddress.ip_address(ip)
    except ValueError:
        return ip
    return str(ipaddress.ip_network(f"{ip}/64", strict=False)) if address.version == 6 else ip


class Guard:
    """ASGI middleware: the client's address into `scope["digest.client"]`, the body cap, and the
    security headers on every response (plus HSTS when served as https)."""

    def __init__(self, app: ASGIApp, *, max_body: int, trusted: Sequence[str], https: bool) -> None:
        self.app = app
        self.max_body = max_body
        self.trusted = list(trusted)
        self.https = https

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = {k.decode("latin-1"): v.decode("latin-1") for k, v in scope["headers"]}
        client = scope.get("client")
        peer = str(client[0]) if client else None
        scope["digest.client"] = client_ip(peer, headers.get("x-forwarded-for"), self.trusted)
        length = headers.get("content-length", "0")
        if not length.isdigit() or int(length) > self.max_body:
            await _plain(send, 413, "request body too large")
            return
        started, seen, too_large = False, 0, False

        async def capped_receive() -> Message:
            nonlocal seen, too_large
            message = await receive()
            seen += len(message.get("body", b""))
            if seen > self.max_body:
                too_large = True
                raise TooLarge
            return message

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if too_large:  # Starlette's error page for the TooLarge it saw: a 413 instead
                if not started:
                    started = True
                    await _plain(send, 413, "request body too large")
                return
            if message["type"] == "http.response.start":
                started = True
                # the path only: tokens travel in the query string, addresses in the body
                log.info("%s %s %s", scope.get("method"), scope.get("path"), message.get("status"))
                extra = dict(PAGE_HEADERS)
                if self.https:
                    extra["strict-transport-security"] = "max-age=31536000"
                present = {k.lower() for k, _ in message.get("headers", [])}
                message["headers"] = [
                    *message.get("headers", []),
                    *((k.encode(), v.encode()) for k, v in extra.items() if k.encode() not in present),
                ]
            await send(message)

        try:
            await self.app(scope, capped_receive, send_with_headers)
        except TooLarge:
            if not started:
                await _plain(send, 413, "request body too large")


async def _plain(send: Send, status: int, text: str) -> None:
    body = text.encode()
    headers = [(b"content-type", b"text/plain; charset=utf-8"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in PAGE_HEADERS.items()]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def new_csrf_cookie() -> str:
    return secrets.token_urlsafe(18)


def csrf_token(key: bytes, cookie: str, now: float) -> str:
    """The hidden field of a form, bound to the browser's CSRF cookie."""
    return timed_token(key, "csrf", cookie, int(now) + CSRF_HOURS * 3600)


def csrf_ok(key: bytes, cookie: str | None, token: str, now: float) -> bool:
    return bool(cookie) and verify_timed(key, "csrf", token, now) == cookie


def same_origin(origin: str | None, base_url: str) -> bool:
    """A form post came from our own pages: no Origin (an old browser) or ours."""
    if not origin:
        return True
    ours = urlsplit(base_url)
    theirs = urlsplit(origin)
    return (theirs.scheme, theirs.netloc) == (ours.scheme, ours.netloc)


class RateLimit:
    """At most `limit` events per key in `window` seconds (a sliding window, in memory: a restart
    forgets it, which costs at most one window's worth)."""

    MAX_KEYS = 100_000  # beyond this, the oldest keys are forgotten: memory stays bounded

    def __init__(self, limit: int, window: float, clock: Callable[[], float] = time.monotonic) -> None:
        self.limit = limit
        self.window = window
        self.clock = clock
        self._hits: collections.OrderedDict[str, collections.deque[float]] = collections.OrderedDict()

    def allow(self, key: str) -> bool:
        """Count one event for `key`; False (and not counted) when the key is over its limit."""
        now = self.clock()
        hits = self._hits.setdefault(key, collections.deque())
        self._hits.move_to_end(key)
        while hits and hits[0] <= now - self.window:
            hits.popleft()
        if len(hits) >= self.limit:
            return False
        hits.append(now)
        while len(self._hits) > self.MAX_KEYS:
            self._hits.popitem(last=False)
        return True
