"""The library behind the CLI's commands other than `run`: everything `digest fetch`, `check`,
`preview` and `unsubscribe` do, callable from Python, returning data. The CLI only calls these
and prints what they return; errors are `DigestError`s with one line each.
"""

from __future__ import annotations

import datetime as dt
import urllib.parse
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.config import Settings, signing_key
from digest.core.errors import ConfigError
from digest.core.models import DiffResult, Digest, Subscriber, Suppression, utcnow
from digest.core.progress import Progress
from digest.core.status import SuppressionKind
from digest.core.tokens import verify_unsubscribe
from digest.matching.matcher import Matcher, build_digest
from digest.pipeline import fetch_and_store, new_on, run_date
from digest.plan import split_suppressed
from digest.profiles import load_subscribers, subscribers_path_from
from digest.render.email import EmailRenderer
from digest.render.templating import compile_all
from digest.store import Store


def load_readers(settings: Settings, subscribers_path: Path | str | None) -> tuple[Path, list[Subscriber]]:
    """The subscribers file in use and its validated readers."""
    path = subscribers_path_from(subscribers_path, settings)
    return path, load_subscribers(path, source_names=[s.name for s in settings.sources])


# -- digest fetch ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    date: dt.date
    result: DiffResult
    stored_before: bool  # the day's snapshot was already stored: a day's listings are fetched once


def fetch(settings: Settings, date: dt.date | None = None, *, progress: Progress | None = None) -> Fetched:
    """Fetch every source, store the day's snapshot, and return what is new on `date`."""
    now = utcnow()
    day = date or run_date(settings, now)
    with Store.from_config(settings.state) as store, store.lock():
        stored = store.snapshot_dates(until=day, limit=1) == [day]
        result = fetch_and_store(settings, store, day, now, progress=progress)
    return Fetched(day, result, stored)


# -- digest check ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class HeldAddress:
    """A suppressed address as `digest check` lists it: since when, why, and what lifts it."""

    email: str
    since: str
    reason: str
    what_lifts_it: str


@dataclass(frozen=True)
class CheckReport:
    path: Path
    subscribers: list[Subscriber]
    held: list[HeldAddress]

    @property
    def terms(self) -> int:
        return len(
            {t.lower() for s in self.subscribers for t in (*s.keywords, *s.exclude, *s.authors, *s.categories)}
        )


def check(settings: Settings, subscribers_path: Path | str | None = None) -> CheckReport:
    """Validate the subscribers file, every template (compiled with MJML) and the state, and list
    the suppressed addresses with what lifts each (the same rule a run applies)."""
    path, subs = load_readers(settings, subscribers_path)
    EmailRenderer(settings)  # compiles the email's templates (yours in [templates] dir) with MJML
    compile_all(settings.templates.dir)  # and the archive's and feeds
    held: dict[str, Suppression] = {}
    if settings.state.path.exists():
        with Store.from_config(settings.state) as store:
            held = store.suppressions()
    return CheckReport(path, subs, describe_suppressions(subs, held))


def describe_suppressions(subscribers: Sequence[Subscriber], held: dict[str, Suppression]) -> list[HeldAddress]:
    _, _, lifted = split_suppressed([s for s in subscribers if s.email in held], held)
    out = []
    for email, sup in held.items():
        if sup.kind == SuppressionKind.UNSUBSCRIBED:
            state = f"digest unsubscribe --undo {email} takes them back"
        elif email in lifted:
            state = "lifted on the next run (profile edited)"
        else:
            state = "edit the profile to try again"
        out.append(HeldAddress(email, sup.at, sup.reason, state))
    return out


# -- digest preview --------------------------------------------------------------------------------
@dataclass(frozen=True)
class PreviewDay:
    digest: Digest
    new: int  # new papers that day


def preview(
    settings: Settings,
    email: str,
    *,
    subscribers_path: Path | str | None = None,
    date: dt.date | None = None,
    days: int = 1,
) -> list[PreviewDay]:
    """What `email` would have got on each of the last `days` stored days up to `date`, oldest
    first (empty when no snapshot is stored)."""
    _, subs = load_readers(settings, subscribers_path)
    sub = next((s for s in subs if s.email.lower() == email.lower()), None)
    if sub is None:
        raise ConfigError(f"no subscriber {email!r} in the subscribers file; check the address")
    with Store.from_config(settings.state, create=False) as store:
        dates = store.snapshot_dates(until=date, limit=days)
        results = [(d, new_on(store, d)) for d in reversed(dates)]
    matcher = Matcher([sub])
    out = []
    for day, result in results:
        papers = result.new if result else []
        matches = matcher.match(papers).get(sub.email, [])
        out.append(PreviewDay(build_digest(sub, matches, day), len(papers)))
    return out


# -- digest unsubscribe ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Unsubscribed:
    email: str
    in_file: bool  # False: no longer in the subscribers file, suppressed all the same


def token_from(text: str) -> str:
    """The token from an unsubscribe mail's subject as received ("unsubscribe TOKEN", maybe
    "Re: ..."), or copied from the mailto link itself (percent-encoded)."""
    words = urllib.parse.unquote(text).split()
    return words[-1] if words else ""


def unsubscribe(settings: Settings, token: str, *, subscribers_path: Path | str | None = None) -> Unsubscribed:
    """Suppress the reader an unsubscribe token was made for, until `undo_unsubscribe`."""
    _, subs = load_readers(settings, subscribers_path)
    # create=False: a wrong --config must not record the unsubscribe in a new, unused state
    with Store.from_config(settings.state, create=False) as store:
        # keep=False: without a key yet, no token can be ours; do not make one here
        email = verify_unsubscribe(signing_key(settings, keep=False), token)
        if email is None:
            raise ConfigError(
                f"{token!r} is not an unsubscribe token of this digest (wrong or cut short, or signed "
                "with another DIGEST_SECRET); copy the whole subject of the mail"
            )
        sub = next((s for s in subs if s.email.lower() == email), None)
        store.suppress(
            sub.email if sub else email,
            "unsubscribed by the reader",
            sub.fingerprint if sub is not None else "",
            utcnow(),
            kind=SuppressionKind.UNSUBSCRIBED,
        )
    return Unsubscribed(sub.email if sub else email, sub is not None)


def undo_unsubscribe(settings: Settings, email: str) -> str:
    """Take back a reader who unsubscribed (whatever the address's case); returns the address."""
    with Store.from_config(settings.state, create=False) as store:
        held = next(
            (
                h
                for e, h in store.suppressions().items()
                if e.lower() == email.lower() and h.kind == SuppressionKind.UNSUBSCRIBED
            ),
            None,
        )
        if held is None:
            raise ConfigError(f"{email!r} did not unsubscribe; `digest check` lists who did")
        store.lift_suppression(held.email)
    return held.email
