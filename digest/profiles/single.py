"""One profile on its own, as the web's subscribe and manage forms send it: validated by the same
schema and worded by the same `Report` as subscribers.toml, so a reader on the web reads the very
messages `digest check` prints, each naming the key it is about."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from pathlib import Path
from typing import Any

from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.profiles.problems import Report, validated


def check_profile(
    table: Mapping[str, Any],
    *,
    source_names: Collection[str] | None = None,
    hf_sources: Collection[str] | None = None,
    where: str = "profile",
) -> Subscriber:
    """The `Subscriber` of one [[subscribers]] table; ConfigError listing every problem, each line
    `WHERE: subscriber WHO: KEY: message` (no line numbers: there is no file)."""
    context: dict[str, Any] = {
        "sources": None if source_names is None else set(source_names),
        "hf_sources": None if hf_sources is None else set(hf_sources),
        "addresses": {},
    }
    tables = [dict(table)]
    subscribers = validated({"subscribers": tables}, tables, context, Report(Path(where), ""))
    if len(subscribers) != 1:  # validate() keeps one Subscriber per table; anything else is a bug
        raise ConfigError(f"{where}: not one profile")
    return subscribers[0]
