"""Channel deliveries: a digest posted to a team chat through Apprise (Slack, Discord, Mattermost,
Matrix, Telegram, Teams, ntfy, generic JSON and form webhooks and some hundred more), beside email.

`chat_text` (in `chat_message`) makes the message; `ChatTransport.send` posts it to one channel's
URL and says what became of it as an `Outcome` (`post`: with how many parts went):

- sent: the service took every part (a 2xx for each request).
- retry: nothing more was taken, for now: the service answered 5xx, 408, 425 or 429, the
  connection could not be made, or Apprise failed without saying why. The next run tries again.
- failed: trying again cannot help until the configuration changes: the URL is not one Apprise
  can use, or the service refused the request for good (any other 4xx: 404 is a webhook that
  is gone or mistyped, 401/403 a revoked token, 400 a message it will never take). As with an
  SMTP 5xx, the day is given up and reported; the next day's message goes to the fixed URL.
- unknown: a request went out and no reply came within the timeout: the part may be on the
  channel. Never resent blindly (like SMTP's lost reply after the data).

A message longer than the service takes is sent in parts, split between papers
(`chat_message.split_parts`) and measured as the service will see it (after Apprise's conversion
of the Markdown to the service's format). `ChatOutcome.delivered` counts the parts the service
took; `post(..., resume=n)` skips the first n, so a retry does not repeat what a channel already
shows (when the digest is rebuilt the same, as the ledger's explanations make it).

Webhook URLs are secrets: no reply, exception or log line names more of one than its scheme.
Apprise logs URLs and tokens (at ERROR for a URL it cannot parse, at DEBUG for every request, as
urllib3 does); `_redacting` puts the URL's parts in a context variable and `_RedactFilter`,
installed on those loggers, cuts them out of every record made in that context (Apprise runs
each request in a worker thread under a copy of the caller's context).

Apprise is synchronous. `send` keeps no state between calls (a new plugin instance per call), so
threads may share one transport. Each request has a total deadline (`timeout`, Apprise's
`notify(timeout=...)`); the socket's read timeout is longer, so a stall always ends at the
deadline and reads as "unknown", while a connection error (refused, unreachable, the connect
timeout) reads as "retry". Apprise cannot stop a stalled request: its worker thread lives until
the read timeout.
"""

from __future__ import annotations

import contextlib
import logging
import re
import socket
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass, field
from urllib.parse import unquote

from apprise import Apprise, AppriseResult, AppriseResultStatus, NotificationManager, NotifyBase, NotifyFormat
from apprise.common import OverflowMode
from apprise.conversion import convert_between

from digest.deliver import Outcome, printable
from digest.deliver.chat_message import chat_text, split_parts

__all__ = [
    "ChatOutcome",
    "ChatTransport",
    "chat_text",
    "check_url",
    "message_parts",
    "redact",
    "secret_parts",
]

CONNECT_TIMEOUT = 10.0  # seconds; at most half the request's deadline
READ_GRACE = 5.0  # the socket read timeout is the deadline plus this: the deadline decides first
TITLE_GAP = 4  # what a service that puts the title in the body adds between them ("\r\n", "# ")
_COUNTER = " (99/99)"  # the widest part counter, for measuring the title of a split message

# 4xx answers that say "later", not "never".
_TRANSIENT_4XX = frozenset({408, 425, 429})
# Apprise's plugins end a refusal's log line with "error=<status>".
_HTTP_STATUS = re.compile(r"\berror=(\d{3})\b")
_SCHEME = re.compile(r"\s*([A-Za-z][A-Za-z0-9+.-]{0,31})://")
_ANY_URL = re.compile(r"\b([A-Za-z][A-Za-z0-9+.-]{0,31})://[^\s'\"<>)]*")
_URL_PART_SEPARATORS = re.compile(r"[/:@?&=#,;\s]+")
_SECRET_MIN = 4  # shorter URL parts are left in logs ("json", ports are 4-5 digits and go too)


# -- secrets ----------------------------------------------------------------------------------------


def secret_parts(url: str) -> tuple[str, ...]:
    """Every part of `url` after its scheme (host, user, password, path segments, query values,
    not query keys) of 4 characters or more, as written and percent-decoded, longest first."""
    rest = url.partition("://")[2] or url
    location, _, query = rest.partition("?")
    values = [pair.partition("=")[2] for pair in query.split("&")]
    pieces = [*_URL_PART_SEPARATORS.split(location), *values]
    parts = {p for p in pieces if len(p) >= _SECRET_MIN}
    parts |= {unquote(p) for p in parts if len(unquote(p)) >= _SECRET_MIN}
    return tuple(sorted(parts, key=len, reverse=True))


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    """`text` with any URL cut to its scheme and each of `secrets` replaced by "…"."""
    text = _ANY_URL.sub(lambda m: f"{m.group(1)}://…", text)
    for secret in secrets:
        text = text.replace(secret, "…")
    return text


@dataclass
class _Guard:
    """What the log filter knows in one call's context: the secrets, and the warnings it saw."""

    secrets: tuple[str, ...]
    warnings: list[str] = field(default_factory=list)


_GUARD: ContextVar[_Guard | None] = ContextVar("digest_chat_guard", default=None)
# Apprise's own logger, and urllib3's, which logs each request line (path and query) at DEBUG.
_GUARDED_LOGGERS = ("apprise", "urllib3.connectionpool")


class _RedactFilter(logging.Filter):
    """Cuts URLs and the current call's secrets out of a record; keeps its warnings for the reply."""

    def filter(self, record: logging.LogRecord) -> bool:
        guard = _GUARD.get()
        if guard is None and not record.name.startswith("apprise"):
            return True  # urllib3 serving someone else: their log, not ours to change
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # arguments that do not fit the format: shown as nothing
            message = f"(a log line of {record.name} that could not be formatted)"
        clean = redact(message, guard.secrets if guard else ())
        if clean != record.msg or record.args:
            record.msg, record.args = clean, None
        if guard is not None and record.levelno >= logging.WARNING:
            guard.warnings.append(clean)
        return True


_FILTER = _RedactFilter()


@contextlib.contextmanager
def _redacting(url: str) -> Iterator[_Guard]:
    """Within: every record of Apprise and urllib3 made in this context has `url`'s parts cut out."""
    for name in _GUARDED_LOGGERS:
        logger = logging.getLogger(name)
        if _FILTER not in logger.filters:  # once per process; the filter itself holds no state
            logger.addFilter(_FILTER)
    guard = _Guard(secret_parts(url))
    token = _GUARD.set(guard)
    try:
        yield guard
    finally:
        _GUARD.reset(token)


# -- the URL --------------------------------------------------------------------------------------


def _scheme(url: str) -> str | None:
    found = _SCHEME.match(url)
    return found.group(1).lower() if found else None


def _plugin(url: str, guard: _Guard) -> NotifyBase | str:
    """Apprise's plugin for `url`, or a one-line problem that names only the scheme."""
    scheme = _scheme(url)
    if scheme is None:
        return "the channel URL is not of the form scheme://... (slack://, discord://, json://, ...)"
    if scheme not in ("http", "https") and scheme not in NotificationManager():
        return f"{scheme}://: not a service Apprise knows (its URL schemes are listed at appriseit.com)"
    plugin = Apprise.instantiate(url)
    if plugin is None:
        said = f" (Apprise: {printable(guard.warnings[0], 200)})" if guard.warnings else ""
        hint = (
            "; a generic webhook is json://host/path or form://host/path"
            if scheme in ("http", "https")
            else ""
        )
        return f"{scheme}://: Apprise cannot use this URL{said}{hint}"
    if not plugin.enabled:
        return f"{scheme}:// ({plugin.service_name}): not available here (a package it needs is missing)"
    return plugin


def check_url(url: str) -> str | None:
    """None when Apprise can send to `url`, else the problem on one line, naming only the scheme.
    Sends nothing: for checking the configuration."""
    with _redacting(url) as guard:
        found = _plugin(url, guard)
    return found if isinstance(found, str) else None


# -- the parts ------------------------------------------------------------------------------------


def _measure(plugin: NotifyBase) -> Callable[[str], int]:
    """How long a Markdown text is once Apprise has converted it for `plugin`'s service: to its
    format (HTML for some), then to its dialect (Slack's mrkdwn escapes &, < and >)."""
    target = plugin.resolve_format(NotifyFormat.MARKDOWN)
    dialect = type(plugin).dialect_convert is not NotifyBase.dialect_convert

    def measure(text: str) -> int:
        converted = convert_between(NotifyFormat.MARKDOWN, target, text)
        if dialect:
            converted = plugin.dialect_convert(converted, target)
        return len(converted)

    return measure


def message_parts(plugin: NotifyBase, title: str, body: str) -> list[tuple[str, str]]:
    """(title, body) of each message `body` takes at `plugin`'s service, split between papers.

    The service's `body_maxlen` is for the body as converted; a service without a title field
    (Mattermost, Telegram) or that counts the title in the body (Discord) has the title's share
    taken off. A split message's titles say "(2/3)"."""
    measure = _measure(plugin)
    limit = plugin.body_maxlen
    if limit > 0 and (plugin.title_maxlen <= 0 or plugin.overflow_amalgamate_title):
        limit = max(1, limit - measure(title + _COUNTER) - TITLE_GAP)
    bodies = split_parts(body, limit, measure)
    if len(bodies) == 1:
        return [(title, bodies[0])]
    return [(f"{title} ({n}/{len(bodies)})", part) for n, part in enumerate(bodies, start=1)]


# -- sending --------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ChatOutcome:
    """What became of one channel message: the `Outcome` for the ledger, and how far it got."""

    outcome: Outcome
    parts: int  # messages the text was split into for this service (0: the URL is unusable)
    delivered: int  # parts the service took, counting those skipped by `resume`


class ChatTransport:
    """Post channel messages through Apprise; `timeout` is each request's total deadline (s)."""

    def __init__(self, timeout: float = 30.0) -> None:
        if timeout <= 0:
            raise ValueError("the timeout must be positive")
        self.timeout = timeout

    def send(self, url: str, title: str, body: str, *, ready: Callable[[], object] | None = None) -> Outcome:
        """Post `title` and `body` (from `chat_text`) to the channel at `url`: `post`'s outcome."""
        return self.post(url, title, body, ready=ready).outcome

    def post(
        self, url: str, title: str, body: str, *, resume: int = 0, ready: Callable[[], object] | None = None
    ) -> ChatOutcome:
        """Post `title` and `body` to the channel at `url`, in as many parts as its service needs.

        `ready` is called once, right before the first request (an unusable URL returns before
        it: nothing was sent); `resume` skips the parts a channel already took. Never raises for
        a problem of the channel; the reply names the URL's scheme and nothing more of it."""
        with _redacting(url) as guard:
            plugin = _plugin(url, guard)
            if isinstance(plugin, str):
                return ChatOutcome(Outcome("failed", plugin), 0, 0)
            self._configure(plugin)
            parts = message_parts(plugin, title, body)
            if ready is not None:
                ready()
            name = f"{_scheme(url)}:// ({plugin.service_name})"
            return self._post_all(plugin, parts, max(0, min(resume, len(parts))), name, guard)

    def _configure(self, plugin: NotifyBase) -> None:
        plugin.socket_connect_timeout = min(CONNECT_TIMEOUT, self.timeout / 2)
        plugin.socket_read_timeout = self.timeout + READ_GRACE
        plugin.optional = False  # "optional=yes" in a URL would make Apprise call a failure a success
        plugin.overflow_mode = OverflowMode.SPLIT  # only a safety net: the parts are made to fit

    def _post_all(
        self, plugin: NotifyBase, parts: list[tuple[str, str]], start: int, name: str, guard: _Guard
    ) -> ChatOutcome:
        notifier = Apprise()
        notifier.add(plugin)  # one plugin instance for every part: Apprise paces its requests
        for index in range(start, len(parts)):
            title, body = parts[index]
            result = notifier.notify(
                body=body, title=title, body_format=NotifyFormat.MARKDOWN, timeout=self.timeout
            )
            outcome = self._verdict(result, guard, plugin)
            if outcome.status != "sent":
                where = f"part {index + 1} of {len(parts)}, {index} delivered" if len(parts) > 1 else ""
                reply = f"{name}{f' ({where})' if where else ''}: {outcome.reply}"
                return ChatOutcome(
                    Outcome(outcome.status, printable(reply), timeout=outcome.timeout), len(parts), index
                )
        taken = "1 message" if len(parts) == 1 else f"{len(parts)} messages"
        return ChatOutcome(Outcome("sent", f"{name}: {taken} delivered"), len(parts), len(parts))

    def _verdict(self, result: AppriseResult, guard: _Guard, plugin: NotifyBase) -> Outcome:
        """One request's outcome from what Apprise returned and logged (its warnings, redacted)."""
        attempts = [attempt for service in result for attempt in service]
        status = attempts[-1].status if attempts else result.status
        if status == AppriseResultStatus.SUCCESS:
            return Outcome("sent", "")
        if status == AppriseResultStatus.TIMEOUT:
            why = f"no reply within {self.timeout:g} s after the request was sent; it may have been delivered"
            return Outcome("unknown", why, timeout=True)
        logged = [e.message for e in result.logs() if e.level in ("WARNING", "ERROR", "CRITICAL")]
        said = redact(" ".join(logged), guard.secrets) or "Apprise reported a failure and logged no reason"
        found = _HTTP_STATUS.search(said)
        if found is None and _listening(plugin, min(CONNECT_TIMEOUT, self.timeout)):
            # no answer, from a server that takes connections: the request may have gone out
            # before the connection dropped (Apprise logs a refused connection the same way)
            return Outcome(
                "unknown", f"the connection dropped without an answer; it may have been delivered: {said}"
            )
        if found is None:  # no answer: the connection could not be made (or Apprise failed first)
            return Outcome("retry", said)
        code = int(found.group(1))
        permanent = 400 <= code < 500 and code not in _TRANSIENT_4XX
        return Outcome("failed" if permanent else "retry", f"HTTP {code}: {said}")


def _listening(plugin: NotifyBase, timeout: float) -> bool:
    """Whether the service's host takes a TCP connection now (False when the plugin names none)."""
    host = getattr(plugin, "host", None)
    if not isinstance(host, str) or not host:
        return False
    port = getattr(plugin, "port", None) or (443 if getattr(plugin, "secure", False) else 80)
    try:
        with socket.create_connection((host, int(port)), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False
