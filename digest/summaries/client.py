"""One OpenAI-compatible chat-completions endpoint, asked for one answer at a time, with limits.

httpx (already how digest fetches) rather than the `openai` SDK: the protocol is one POST and one
JSON answer, and this way every call has the limits the house wants of any call out (see
docs/summaries.md): a total deadline per request (connect to last byte, not only an idle
timeout), a cap on the answer's bytes, retries with backoff on 429, 5xx, timeouts and dropped
connections that honour Retry-After (and never wait past the stage's own deadline), and no retry
of what will not get better (4xx, an answer that is not the protocol's JSON).

Nothing here raises for a failed answer: `ask` returns an `Answer` with `error` set, and the
stage falls back for that paper. No business logic: what is asked is `prompt`, what is kept is
decided by the stage.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import email.utils
import json
import random
import time
from dataclasses import dataclass
from typing import Any

import httpx

from digest import USER_AGENT
from digest.config import SummariesConfig

MAX_ANSWER_BYTES = 256 * 1024  # a chat completion of one sentence is ~1 KB
MAX_RETRY_AFTER = 300.0  # seconds; a longer Retry-After is given up on at once
RETRY_STATUSES = frozenset({408, 409, 425, 429})  # and every 5xx


@dataclass(frozen=True)
class Answer:
    text: str | None  # the message content, unchecked (see `prompt.check_answer`)
    tokens_in: int = 0
    tokens_out: int = 0
    error: str = ""  # why there is no text
    attempts: int = 1


class _Retry(Exception):
    """A try that may go better later; `after` seconds (Retry-After) or the backoff."""

    def __init__(self, why: str, after: float | None = None) -> None:
        super().__init__(why)
        self.why, self.after = why, after


class _Fail(Exception):
    """A try that will not go better by trying again."""


class ChatClient:
    """`async with ChatClient(config) as chat: answer = await chat.ask(body, until=deadline)`."""

    def __init__(self, config: SummariesConfig, *, transport: httpx.AsyncBaseTransport | None = None) -> None:
        self.config = config
        headers = {"User-Agent": USER_AGENT, "Accept": "application/json"}
        if config.api_key is not None:
            headers["Authorization"] = f"Bearer {config.api_key.get_secret_value()}"
        self._client = httpx.AsyncClient(
            base_url=config.base_url + "/",
            headers=headers,
            timeout=httpx.Timeout(config.timeout),
            limits=httpx.Limits(
                max_connections=config.concurrency, max_keepalive_connections=config.concurrency
            ),
            transport=transport,
            follow_redirects=False,  # a redirect could carry the key elsewhere
        )

    async def __aenter__(self) -> ChatClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._client.aclose()

    async def ask(self, body: dict[str, Any], *, until: float) -> Answer:
        """POST `body` to chat/completions, retrying; `until` is the stage's deadline
        (`time.monotonic()`), past which no try starts and no back-off waits."""
        why = ""
        for attempt in range(1, self.config.retries + 2):
            left = until - time.monotonic()
            if left <= 0:
                return Answer(None, error=why or "the stage's deadline passed", attempts=attempt - 1)
            try:
                async with asyncio.timeout(min(self.config.timeout, left)):
                    return await self._once(body, attempt)
            except _Fail as exc:
                return Answer(None, error=str(exc), attempts=attempt)
            except _Retry as exc:
                why, wait = exc.why, exc.after
            except TimeoutError:
                why, wait = f"no answer within {self.config.timeout:g}s", None
            except httpx.HTTPError as exc:  # connection refused or dropped, a protocol error
                why, wait = f"{type(exc).__name__}: {exc}".rstrip(": "), None
            if attempt > self.config.retries:
                break
            wait = self._backoff(attempt) if wait is None else wait
            if wait > MAX_RETRY_AFTER or time.monotonic() + wait >= until:
                return Answer(None, error=f"{why}; retry not before the deadline", attempts=attempt)
            await asyncio.sleep(wait)
        return Answer(None, error=why, attempts=self.config.retries + 1)

    def _backoff(self, attempt: int) -> float:
        base = self.config.backoff * 2 ** (attempt - 1)
        return base * random.uniform(0.8, 1.2)  # jitter: concurrent requests do not retry in step

    async def _once(self, body: dict[str, Any], attempt: int) -> Answer:
        async with self._client.stream("POST", "chat/completions", json=body) as response:
            if response.status_code in RETRY_STATUSES or response.status_code >= 500:
                raise _Retry(f"HTTP {response.status_code}", retry_after(response.headers.get("retry-after")))
            if response.status_code != 200:
                raise _Fail(f"HTTP {response.status_code}{_detail(await _read(response, 2000))}")
            raw = await _read(response, MAX_ANSWER_BYTES)
        return _parse(raw, attempt)


async def _read(response: httpx.Response, limit: int) -> bytes:
    data = bytearray()
    async for chunk in response.aiter_bytes():
        data += chunk
        if len(data) > limit:
            if limit >= MAX_ANSWER_BYTES:
                raise _Fail(f"answer larger than {limit} bytes")
            break
    return bytes(data[:limit])


def _detail(raw: bytes) -> str:
    """The error message an OpenAI-style error body carries, on one line, or nothing."""
    try:
        message = json.loads(raw)["error"]["message"]
    except (ValueError, KeyError, TypeError):
        return ""
    return ": " + " ".join(str(message).split())[:200] if message else ""


def _parse(raw: bytes, attempt: int) -> Answer:
    """The content and token counts of a chat completion; _Fail when it is not one."""
    try:
        data = json.loads(raw)
        content = data["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        raise _Fail("the answer is not a chat completion (malformed JSON)") from None
    if not isinstance(content, str):
        raise _Fail("the answer's content is not text")
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else {}
    tokens_in = _count(usage.get("prompt_tokens"))
    tokens_out = _count(usage.get("completion_tokens"))
    return Answer(content, tokens_in, tokens_out, attempts=attempt)


def _count(value: Any) -> int:
    return value if isinstance(value, int) and 0 <= value < 10_000_000 else 0


def retry_after(value: str | None, *, now: dt.datetime | None = None) -> float | None:
    """Seconds a Retry-After header asks for (delta-seconds or an HTTP date), or None."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return max(0.0, (when - (now or dt.datetime.now(dt.UTC))).total_seconds())
