"""digest.toml's `[web]`: the reader's side on the web (`digest serve`, `digest web`).

A section of its own module because `sections.py` is at its size limit; it is one more table of
digest.toml like the others there. The server runs only when both `listen` and `base_url` are set.
"""

from __future__ import annotations

import ipaddress
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator


class WebConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)

    # host:port the HTTP server binds; keep it on loopback behind a TLS reverse proxy (docs/web.md)
    listen: str | None = None
    # the public https URL readers reach it at: links in emails and List-Unsubscribe are made from it
    base_url: str | None = None
    # addresses or networks of the reverse proxies whose X-Forwarded-For/-Proto are believed;
    # from anyone else those headers are ignored (a client could claim any address)
    trusted_proxies: list[str] = Field(default_factory=list)
    subscribe_per_ip_hour: int = Field(default=10, ge=1, le=10_000)  # subscribe form posts per client IP
    mail_per_address_day: int = Field(default=3, ge=1, le=100)  # confirmation mails to one address
    confirm_hours: int = Field(default=48, ge=1, le=24 * 30)  # how long a confirmation link works
    manage_days: int = Field(default=60, ge=1, le=3660)  # how long the manage link of an email works
    preview_days: int = Field(default=14, ge=1, le=60)  # stored days the live preview looks at
    max_body: int = Field(default=16_384, ge=1024, le=1_000_000)  # bytes a request body may have

    @property
    def enabled(self) -> bool:
        return bool(self.listen and self.base_url)

    @property
    def host_port(self) -> tuple[str, int]:
        host, _, port = (self.listen or "").rpartition(":")
        return host.strip("[]") or "127.0.0.1", int(port)

    @field_validator("listen")
    @classmethod
    def _listen(cls, value: str | None) -> str | None:
        if value is None:
            return None
        host, sep, port = value.rpartition(":")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f'{value!r} is not host:port; write it as listen = "127.0.0.1:8080"')
        return value

    @field_validator("base_url")
    @classmethod
    def _base_url(cls, value: str | None) -> str | None:
        if value is None:
            return None
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError(
                f"{value!r} is not an http(s) URL without ?query or #fragment; write it as "
                "https://digest.example.org/ (https: one-click unsubscribe needs it)"
            )
        return value.rstrip("/") + "/"

    @field_validator("trusted_proxies")
    @classmethod
    def _proxies(cls, value: list[str]) -> list[str]:
        for item in value:
            try:
                ipaddress.ip_network(item, strict=False)
            except ValueError:
                raise ValueError(f'{item!r} is not an IP address or network, e.g. "127.0.0.1"') from None
        return value
