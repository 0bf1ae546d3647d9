"""[[channels]] as readers: each team chat's profile, validated by the same schema as a reader's
(the same keys, the same words for a mistake), made into a `Subscriber` whose address is
`channel:NAME`, so the plan, the ledger and "never twice" treat a channel as one more reader."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Sequence
from typing import Any

from pydantic import ValidationError

from digest.config import ChannelConfig
from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.profiles.problems import suggest
from digest.profiles.schema import KNOWN_KEYS, MATCHING_KEYS, validate

CHANNEL_PREFIX = "channel:"
_PLACEHOLDER = "channel@example.org"  # the schema wants an address; a channel has its name instead
_NOT_FOR_CHANNELS = ("email", "name", "feed", "language", "cadence", "weekday")


def is_channel(email: str) -> bool:
    return email.startswith(CHANNEL_PREFIX)


def channel_name(email: str) -> str:
    return email.removeprefix(CHANNEL_PREFIX)


def channel_subscribers(
    channels: Sequence[ChannelConfig],
    *,
    source_names: Collection[str] | None = None,
    hf_sources: Collection[str] | None = None,
    label: str = "digest.toml",
) -> list[Subscriber]:
    """A `Subscriber` per channel; ConfigError listing every problem of every channel's profile."""
    out: list[Subscriber] = []
    problems: list[str] = []
    for channel in channels:
        where = f"{label}: [[channels]] {channel.name}: profile"
        if bad := [k for k in _NOT_FOR_CHANNELS if k in channel.profile]:
            problems.append(f"{where}: {', '.join(bad)}: not for a channel (a reader's key)")
            continue
        try:
            (sub,) = validate(
                {"subscribers": [{**channel.profile, "email": _PLACEHOLDER}]},
                {
                    "sources": None if source_names is None else set(source_names),
                    "hf_sources": None if hf_sources is None else set(hf_sources),
                    "addresses": {},
                },
            )
        except ValidationError as exc:
            problems += [f"{where}: {_where(e)}{_said(e)}" for e in exc.errors()]
            continue
        if not (sub.keywords or sub.authors or sub.categories or sub.query or sub.all or sub.trending):
            problems.append(
                f"{where}: empty: give keywords, authors, categories or a query, all = true, or trending"
            )
            continue
        out.append(dataclasses.replace(sub, email=CHANNEL_PREFIX + channel.name, name=channel.name))
    if problems:
        raise ConfigError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems in the channels", problems
        )
    return out


def _where(error: Any) -> str:
    keys = [str(part) for part in error.get("loc", ())[2:] if not isinstance(part, int)]
    return f"{'.'.join(keys)}: " if keys else ""


def _said(error: Any) -> str:
    if error.get("type") == "extra_forbidden":
        return f"unknown key{suggest(str(error['loc'][-1]), KNOWN_KEYS, MATCHING_KEYS)}"
    return str(error["msg"]).removeprefix("Value error, ")
