"""The one error hierarchy of digest.

Every failure a user can cause or meet (bad config, a feed that is down, an SMTP server that says
no) is a `DigestError` whose message is one line naming *what* went wrong, *where* (file and line,
URL, subscriber, recipient) and, where there is one, *how to fix it*. The CLI prints that line and
exits non-zero; tracebacks are for `-v`.
"""

from __future__ import annotations


class DigestError(Exception):
    """Root of every error digest raises on purpose."""

    exit_code = 1


class ConfigError(DigestError):
    """digest.toml, subscribers.toml or the environment is wrong; `problems` lists every one."""

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        self.problems = problems or [message]
        super().__init__(message)


class FetchError(DigestError):
    """A source could not be fetched (network, HTTP status, size cap)."""

    def __init__(self, url: str, message: str) -> None:
        self.url = url
        super().__init__(f"fetching {url}: {message}")


class ParseError(DigestError):
    """A fetched body is not the listing it should be (HTML error page, truncated XML, bad JSON)."""

    def __init__(self, source: str, message: str, *, url: str | None = None) -> None:
        self.source, self.reason, self.url = source, message, url
        where = f" ({url})" if url else ""
        super().__init__(f"source {source!r}{where}: {message}")

    def at(self, url: str) -> ParseError:
        """The same error naming the URL whose body it was about (parsers see only bytes)."""
        return self if self.url else ParseError(self.source, self.reason, url=url)


class StoreError(DigestError):
    """The state database is unusable, locked by another run, or from a newer digest."""


class LockedError(StoreError):
    """Another digest run holds the state lock."""

    exit_code = 3


class RenderError(DigestError):
    """A template or the MJML compiler failed; raised before anything is sent."""


class SendError(DigestError):
    """A message could not be delivered to `recipient`."""

    def __init__(self, recipient: str, message: str, *, permanent: bool = False) -> None:
        self.recipient = recipient
        self.permanent = permanent
        super().__init__(f"sending to {recipient}: {message}")
