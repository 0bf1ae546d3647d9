"""Subscriber profiles: read subscribers.toml into validated `Subscriber`s.

Every problem in the file is reported at once, each naming the file, the line where it can be
found, the subscriber (by email, or "#N" for the N-th [[subscribers]] table) and the field, e.g.

    subscribers.toml:12: subscriber ada@example.org: keyowrds: unknown key; did you mean "keywords"?

`schema` is the strict pydantic schema of a profile; `problems` words its errors for the reader.
The syntax of a profile is documented in docs/matching.md; subscribers.example.toml shows all of it.
"""

from __future__ import annotations

import os
from collections.abc import Collection
from pathlib import Path
from typing import Any

from digest.config import Settings
from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.core.speed import gc_paused
from digest.core.tomlfile import read_toml
from digest.profiles.problems import Report, validated
from digest.profiles.schema import KNOWN_KEYS

__all__ = ["DEFAULT_PATH", "EXAMPLE_NAME", "KNOWN_KEYS", "load_subscribers", "subscribers_path_from"]

DEFAULT_PATH = Path("subscribers.toml")
EXAMPLE_NAME = "subscribers.example.toml"


def subscribers_path_from(explicit: str | os.PathLike[str] | None, settings: Settings | None) -> Path:
    """`--subscribers PATH`, else [subscribers] path of digest.toml, else ./subscribers.toml."""
    if explicit:
        return Path(explicit)
    if settings is not None and settings.subscribers.path:
        return Path(settings.subscribers.path)
    return DEFAULT_PATH


def load_subscribers(
    path: Path,
    *,
    source_names: Collection[str] | None = None,
    hf_sources: Collection[str] | None = None,
) -> list[Subscriber]:
    """Read and validate subscribers.toml; raises ConfigError listing every problem.

    `source_names`, when given, are the configured sources a profile's `sources` may name;
    `hf_sources` those of them that are Hugging Face's (a `trending` profile needs one).
    """
    path = Path(path)
    if path.is_dir():
        raise ConfigError(
            f"{path}: a folder, not a subscribers file; point --subscribers (or [subscribers] path "
            "in digest.toml) at the file itself"
        )
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such subscribers file; copy {EXAMPLE_NAME} to {path} and edit it, "
            "or point --subscribers (or [subscribers] path in digest.toml) at yours"
        )
    # Millions of small objects at 100,000 readers, which the collector would walk again and again
    # as they pile up (a quarter of the time), for no garbage: see gc_paused.
    with gc_paused():
        data, text = read_toml(path)
        tables: Any = data.get("subscribers", [])
        context: dict[str, Any] = {
            "sources": None if source_names is None else set(source_names),
            "hf_sources": None if hf_sources is None else set(hf_sources),
            "addresses": {},  # as written -> normalised, filled in by the email validator
        }
        return validated(data, tables, context, Report(path, text))
