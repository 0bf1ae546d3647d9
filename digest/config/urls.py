"""The URLs a configuration names, checked: http(s) endpoints and the PostgreSQL state's URL,
and how a URL is shown without its password. No business logic."""

from __future__ import annotations

from urllib.parse import urlsplit


def http_url(value: str, example: str = "https://host/path") -> str:
    """`value`, when it is an http(s) URL with a host; else a ValueError saying how to write one."""
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL; write it as {example}")
    return value


def redacted(url: str) -> str:
    """`url` without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[1]
    return parts._replace(netloc=f"{parts.username}:***@{host}").geturl()


def postgres_url(value: str) -> str:
    """`value`, when it is a PostgreSQL URL; else a ValueError saying how to write one."""
    scheme = urlsplit(value).scheme
    if scheme not in ("postgresql", "postgres"):
        raise ValueError(
            f"{scheme + '://' if scheme else 'this'} is not a PostgreSQL URL; write it as "
            "postgresql://user:password@host:5432/database (or leave it out for the SQLite file at path)"
        )
    return value
