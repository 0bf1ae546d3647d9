"""The URLs a configuration names, checked: http(s) endpoints and the PostgreSQL state's URL,
and how a URL is shown without its password. No business logic."""

from __future__ import annotations

import re
from urllib.parse import urlsplit

_PASSWORD_PARAMETER = re.compile(r"([?&](?:ssl)?password=)[^&#]*", re.IGNORECASE)


def http_url(value: str, example: str = "https://host/path") -> str:
    """`value`, when it is an http(s) URL with a host; else a ValueError saying how to write one."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL; write it as {example}")
    return value


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs: the user info shows only its user
    (everything up to the last "@" goes, however the password was written: unencoded "/", "#" or
    "?" in it included), and `password=` / `sslpassword=` parameters show `***`."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        return "***"  # not a URL (a libpq "key=value" string, say): nothing of it is safe to show
    at = rest.rfind("@")
    if at >= 0 and ":" in rest[:at]:
        rest = rest[:at].split(":", 1)[0] + ":***" + rest[at:]
    rest = _PASSWORD_PARAMETER.sub(r"\1***", rest)
    return f"{scheme}://{rest}"


def postgres_url(value: str) -> str:
    """`value`, when it is a PostgreSQL URL; else a ValueError saying how to write one."""
    if not value:  # an unset CI secret expands to "": never fall back to a file on one runner
        raise ValueError("is set but empty; set it to postgresql://… or leave it out for the SQLite file")
    scheme = urlsplit(value).scheme
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"{scheme + '://' if scheme else 'this'} is not a PostgreSQL URL; write it as "
            "postgresql://user:password@host:5432/database (or leave it out for the SQLite file at path)"
        )
    return value
