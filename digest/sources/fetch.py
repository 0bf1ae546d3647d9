"""Fetch bytes over HTTP: timeouts, a total deadline, retries with backoff, conditional GET, a cap
on decoded bytes (`limits.py` holds the deadline and the bounded decoding).

The fetcher knows nothing about listings: it returns bytes and validators, and reads (never
writes) the cache of earlier validators the store hands it. The store saves the new validators in
the same transaction as the snapshot, so a failed run leaves the cache as it was.
"""

from __future__ import annotations

import datetime as dt
import email.utils
import functools
import logging
import random
import ssl
import time
from collections.abc import Callable, Iterable, Mapping
from types import TracebackType

import httpx

from digest import USER_AGENT
from digest.config import FetchConfig
from digest.core.errors import FetchError
from digest.core.models import CachedResponse, FetchResult
from digest.sources import limits
from digest.sources.limits import Deadline, PastDeadline

log = logging.getLogger(__name__)

MAX_RETRY_AFTER = 300.0  # seconds; a server asking for longer is waited on this long, then retried
ERROR_BODY_BYTES = 64 * 1024  # how much of an error response is kept for the message


class HTTPStatusError(FetchError):
    """The server answered with an error status; `body` holds the start of what it said."""

    def __init__(self, url: str, message: str, *, status: int, body: bytes = b"") -> None:
        self.status = status
        self.body = body
        super().__init__(url, message)


class Fetcher:
    """A small synchronous HTTP client for listings. Use as a context manager or call `close()`."""

    def __init__(
        self,
        config: FetchConfig,
        cache: Mapping[str, CachedResponse] | None = None,
        *,
        transport: httpx.BaseTransport | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self.cache: Mapping[str, CachedResponse] = cache if cache is not None else {}
        self._sleep = sleep
        self._paced: dict[str, float] = {}  # `pace` key -> when its last request was let go
        self._client = httpx.Client(
            timeout=httpx.Timeout(config.timeout),
            # A connection per request: the deadline learns the socket it cuts at connect time.
            limits=httpx.Limits(max_keepalive_connections=0),
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": limits.ACCEPT_ENCODING},
            follow_redirects=True,
            verify=_ssl_context(),
            transport=transport,
        )

    def __enter__(self) -> Fetcher:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self._client.close()

    def pace(self, key: str, interval: float) -> None:
        """Wait until `interval` seconds have passed since the last `pace(key, ...)` of this
        fetcher: a politeness delay between requests to one service (the arXiv API asks for 3 s)."""
        last = self._paced.get(key)
        if last is not None:
            wait = last + interval - time.monotonic()
            if wait > 0:
                self._sleep(wait)
        self._paced[key] = time.monotonic()

    # -----------------------------------------------------------------------------------------------
    def get(self, url: str, params: Mapping[str, str] | None = None) -> FetchResult:
        """GET `url` (with `params` added to its query); raises FetchError naming the URL."""
        try:
            full = str(httpx.URL(url).copy_merge_params(dict(params))) if params else str(httpx.URL(url))
        except (httpx.InvalidURL, TypeError, ValueError) as exc:
            raise FetchError(url, f"not a valid URL ({_one_line(exc)}); check [[sources]] url") from None
        cached = self.cache.get(full)
        headers: dict[str, str] = {}
        if cached is not None:
            if cached.etag:
                headers["If-None-Match"] = cached.etag
            if cached.last_modified:
                headers["If-Modified-Since"] = cached.last_modified

        attempts = self.config.retries + 1
        for attempt in range(attempts):
            last = attempt == attempts - 1
            deadline = Deadline(self.config.deadline)
            try:
                with deadline:
                    result, retry_after, problem = self._once(full, headers, cached, deadline)
            except (httpx.HTTPError, PastDeadline) as exc:
                # Past the deadline, whatever broke is the deadline's doing (it cut the socket).
                if deadline.expired or isinstance(exc, PastDeadline):
                    raise FetchError(full, self._past_deadline()) from None
                result, retry_after, problem = None, None, self._problem(full, exc)
            if deadline.expired:  # the cut looked like the end of a body sent until the close
                raise FetchError(full, self._past_deadline())
            if result is not None:
                return result
            if last:
                if attempts > 1:
                    problem = f"{problem} (gave up after {attempts} attempts)"
                raise FetchError(full, problem)
            delay = self._delay(attempt, retry_after)
            log.warning("fetching %s: %s; retrying in %.1f s", full, problem, delay)
            self._sleep(delay)
        raise AssertionError("unreachable")  # pragma: no cover

    def _problem(self, url: str, exc: httpx.HTTPError) -> str:
        """What went wrong, when retrying may help; raises FetchError at once when it cannot."""
        if isinstance(exc, httpx.TimeoutException):
            return (
                f"timed out after {self.config.timeout:g} s; the server is slow or unreachable, "
                "try again later or raise [fetch] timeout"
            )
        if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
            raise FetchError(url, f"not a fetchable URL ({_one_line(exc)}); check [[sources]] url") from None
        if isinstance(exc, httpx.TooManyRedirects):
            raise FetchError(url, "too many redirects; check [[sources]] url") from None
        if isinstance(exc, httpx.TransportError):
            return f"network error ({_one_line(exc)}); check the network"
        # e.g. a body that does not decompress: retrying will not help
        raise FetchError(url, f"unreadable response ({_one_line(exc)}); try again later") from None

    def _past_deadline(self) -> str:
        # Not retried: a server that drips for the whole deadline would do it again, and the
        # run would wait (retries + 1) times as long.
        return (
            f"no complete response within the [fetch] deadline of {self.config.deadline:g} s (the "
            "server sends too slowly, or a byte at a time); try again later, or raise [fetch] deadline"
        )

    # -----------------------------------------------------------------------------------------------
    def _once(
        self, url: str, headers: Mapping[str, str], cached: CachedResponse | None, deadline: Deadline
    ) -> tuple[FetchResult | None, float | None, str]:
        """One request: a result, or (None, Retry-After seconds, problem) for a retryable failure.

        Non-retryable failures raise at once.
        """
        extensions = {"trace": deadline.trace}
        with self._client.stream("GET", url, headers=headers, extensions=extensions) as resp:
            status = resp.status_code
            etag = resp.headers.get("ETag")
            last_modified = resp.headers.get("Last-Modified")
            if status == 304:
                if cached is None:
                    raise FetchError(url, "server answered 304 Not Modified to a plain GET; try again later")
                return (
                    FetchResult(
                        url=url,
                        body=cached.body,
                        status=304,
                        etag=etag or cached.etag,
                        last_modified=last_modified or cached.last_modified,
                        not_modified=True,
                    ),
                    None,
                    "",
                )
            if status == 429 or 500 <= status < 600:
                problem = f"HTTP {status} {resp.reason_phrase}; the server is busy or down, try again later"
                return None, _retry_after(resp), problem
            if status >= 300:
                snippet = _read_capped(url, resp, ERROR_BODY_BYTES, deadline, truncate=True) or b""
                message = _status_message(status, resp.reason_phrase, snippet)
                raise HTTPStatusError(url, message, status=status, body=snippet)
            body = self._read_body(url, resp, deadline)
            return FetchResult(url, body, status, etag, last_modified, False), None, ""

    def _read_body(self, url: str, resp: httpx.Response, deadline: Deadline) -> bytes:
        cap = self.config.max_bytes
        declared = resp.headers.get("Content-Length")
        if declared and declared.strip().isdigit() and int(declared) > cap:
            raise FetchError(url, _too_big(cap, declared=int(declared)))
        body = _read_capped(url, resp, cap, deadline)
        if body is None:
            applied = limits.codings(resp.headers.get("Content-Encoding"))
            raise FetchError(url, _too_big(cap, applied=applied, received=resp.num_bytes_downloaded))
        return body

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(max(retry_after, 0.0), MAX_RETRY_AFTER)
        base = self.config.backoff * (2**attempt)
        # Jitter spreads out clients that failed together so they do not retry in step.
        return base + random.uniform(0, base / 2)


def _one_line(exc: BaseException) -> str:
    detail = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {detail}" if detail else type(exc).__name__


@functools.cache
def _ssl_context() -> ssl.SSLContext:
    """httpx's default context (certifi, or SSL_CERT_FILE/DIR), built once: loading the CA bundle
    takes a noticeable fraction of a second, and a context is safe to share between clients."""
    return httpx.create_ssl_context()


def _read_capped(
    url: str, resp: httpx.Response, cap: int, deadline: Deadline, *, truncate: bool = False
) -> bytes | None:
    """Read at most `cap` decoded bytes while streaming; None when there was more (unless `truncate`).

    The body is decoded here, not by httpx, so that no encoding (stacked ones included) inflates
    more than the cap before it is counted. Raises FetchError naming the URL for a coding digest
    cannot decode within bounds, PastDeadline when the deadline passes.
    """
    if resp.is_stream_consumed:  # made in memory (an httpx.MockTransport, as the demo uses): decoded
        pieces: Iterable[bytes] = [resp.content]
    else:
        applied = limits.codings(resp.headers.get("Content-Encoding"))
        refused = limits.unsupported(applied)
        if refused:
            raise FetchError(url, f"the server sent {refused}; try again later")
        pieces = limits.decoded(resp.iter_raw(), applied)
    body = bytearray()
    for chunk in pieces:
        deadline.check()
        if len(body) + len(chunk) > cap:
            if truncate:
                body += chunk[: cap - len(body)]
                break
            return None
        body += chunk
    return bytes(body)


def _too_big(
    cap: int, *, declared: int | None = None, applied: list[str] | None = None, received: int = 0
) -> str:
    if declared is not None:
        size = f"{declared:,} bytes"
    elif applied:
        coding = ", ".join(applied)
        size = f"more than {cap:,} bytes once decoded (Content-Encoding: {coding}, from {received:,} bytes received)"
    else:
        size = f"more than {cap:,} bytes"
    return f"response is {size}, over the [fetch] max_bytes cap of {cap:,} bytes; raise max_bytes if that is expected"


def _status_message(status: int, reason: str, body: bytes) -> str:
    hint = {
        401: "the source needs credentials digest does not have",
        403: "the server refuses digest; check [[sources]] url",
        404: "no such page; check [[sources]] url",
        410: "the page is gone; check [[sources]] url",
    }.get(status, "check [[sources]] url" if status < 500 else "try again later")
    text = " ".join(body[:2000].decode("utf-8", "replace").split())
    detail = f" ({text[:200]})" if text and not text.lstrip().startswith("<") else ""
    return f"HTTP {status} {reason}{detail}; {hint}"


def _retry_after(resp: httpx.Response) -> float | None:
    """Seconds the server asks us to wait (Retry-After: seconds or an HTTP date), or None."""
    value = resp.headers.get("Retry-After")
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    # Measure against the server's own clock when it sent one, so clock skew does not matter.
    now = None
    if resp.headers.get("Date"):
        try:
            now = email.utils.parsedate_to_datetime(resp.headers["Date"])
        except (TypeError, ValueError, IndexError):
            now = None
    if now is None or now.tzinfo is None:
        now = dt.datetime.now(dt.UTC)
    return max(0.0, (when - now).total_seconds())
