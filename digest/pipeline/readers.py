"""Who gets a digest: the readers of subscribers.toml and the confirmed, unpaused readers who
subscribed on the web (`digest.web`, the state's `web_readers`). The one place both lists meet:
a run (`daily._prepare`), `digest check`, `preview` and `unsubscribe` all read readers here.

subscribers.toml is the source of truth for its own readers and is never rewritten: when a web
reader has the same address as a TOML one (whatever its case), the TOML profile wins, and a
warning says so. A stored web profile that no longer validates (a source it names was removed)
is left out with a warning rather than failing everybody's run.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path

from digest.config import Settings
from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.profiles import load_subscribers, subscribers_path_from
from digest.profiles.single import check_profile
from digest.store import Store, WebReader

log = logging.getLogger("digest.readers")


@dataclass(frozen=True)
class Readers:
    path: Path  # the subscribers file
    toml: list[Subscriber]
    web: list[Subscriber]  # confirmed, unpaused, not shadowed by a TOML reader
    warnings: list[str] = field(default_factory=list)

    @property
    def all(self) -> list[Subscriber]:
        return [*self.toml, *self.web]


def web_profile(reader: WebReader, settings: Settings) -> Subscriber:
    """A web reader's confirmed profile, validated as a run would (ConfigError when it is not)."""
    if reader.profile is None:
        raise ConfigError(f"web reader {reader.email}: not confirmed")
    return check_profile(
        {**reader.profile, "email": reader.email},
        source_names=[s.name for s in settings.sources],
        hf_sources=settings.hf_source_names,
        where=f"web reader {reader.email}",
    )


def merge(toml: list[Subscriber], web: list[Subscriber]) -> tuple[list[Subscriber], list[str]]:
    """The web readers a run serves beside `toml`, and a line for each one a TOML reader shadows."""
    taken = {s.email.lower() for s in toml}
    kept, warnings = [], []
    for sub in web:
        if sub.email.lower() in taken:
            warnings.append(
                f"{sub.email} subscribed on the web and is in the subscribers file too: the file's "
                "profile is used (remove one of them)"
            )
        else:
            kept.append(sub)
    return kept, warnings


def load_readers(settings: Settings, subscribers_path: Path | str | None, *, warn: bool = True) -> Readers:
    """The TOML readers (ConfigError on any problem, as ever) and the web readers a run serves."""
    path = subscribers_path_from(subscribers_path, settings)
    return with_web_readers(settings, path, toml_readers(settings, path), warn=warn)


def toml_readers(settings: Settings, path: Path) -> list[Subscriber]:
    """subscribers.toml's readers, checked against the configured sources (ConfigError)."""
    names = [s.name for s in settings.sources]
    return load_subscribers(path, source_names=names, hf_sources=settings.hf_source_names)


def with_web_readers(settings: Settings, path: Path, toml: list[Subscriber], *, warn: bool = True) -> Readers:
    """`toml` (the readers of the subscribers file at `path`) and the web readers beside them."""
    web: list[Subscriber] = []
    warnings: list[str] = []
    if settings.state.exists():
        with Store.from_config(settings.state, create=False) as store:
            stored = [r for r in store.web_readers() if r.active]
        for reader in stored:
            try:
                web.append(web_profile(reader, settings))
            except ConfigError as exc:
                warnings.append(f"left out: {exc.problems[0]}")
    web, shadowed = merge(toml, web)
    warnings += shadowed
    if warn:
        for line in warnings:
            log.warning("%s", line)
    return Readers(path, toml, web, warnings)
