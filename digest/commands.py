"""The library behind the CLI's commands other than `run`: everything `digest fetch`, `check`,
`preview`, `unsubscribe` and `state` do, callable from Python, returning data. The CLI only calls these
and prints what they return; errors are `DigestError`s with one line each.
"""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from digest.config import Settings, config_path_from, load_settings, signing_key
from digest.core.errors import ConfigError
from digest.core.models import DiffResult, Subscriber, Suppression, utcnow
from digest.core.progress import Progress
from digest.core.status import SuppressionKind
from digest.core.tokens import token_from as token_from  # re-exported: `digest unsubscribe`
from digest.core.tokens import verify_unsubscribe
from digest.deliver.chat import check_url
from digest.feedback import FeedbackDone as FeedbackDone  # re-exported: the web side applies feedback
from digest.feedback import feedback as feedback
from digest.feedback import liked_notes
from digest.feedback import reset_feedback as reset_feedback
from digest.pipeline import retention, run_date
from digest.pipeline.fetching import FetchReport, fetch_day
from digest.pipeline.readers import load_readers as all_readers
from digest.pipeline.relevance import check_engine
from digest.pipeline.summary import EXIT_OK, EXIT_PARTIAL, EXIT_STALE
from digest.plan import split_suppressed
from digest.preview import PreviewDay as PreviewDay  # re-exported: `digest preview`'s result
from digest.preview import preview_profile as preview_profile
from digest.profiles import DEFAULT_PATH, load_subscribers
from digest.profiles.channels import channel_subscribers
from digest.render.email import EmailRenderer
from digest.render.templating import compile_all
from digest.store import Drop, Shrink, Store, WebReader


def load_readers(settings: Settings, subscribers_path: Path | str | None) -> tuple[Path, list[Subscriber]]:
    """The subscribers file in use and its validated readers, with the web's (`pipeline.readers`)."""
    readers = all_readers(settings, subscribers_path, warn=False)
    return readers.path, readers.all


# -- digest fetch ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class Fetched:
    date: dt.date
    report: FetchReport  # the diff, and how each source fared
    stored_before: bool  # every source's listing of the day was already stored: fetched once a day

    @property
    def result(self) -> DiffResult:
        return self.report.result

    @property
    def exit_code(self) -> int:
        """As `digest run`'s: 4 when a source failed, 5 when one was stale, else 0."""
        if self.report.failed:
            return EXIT_PARTIAL
        return EXIT_STALE if self.report.stale else EXIT_OK


def fetch(settings: Settings, date: dt.date | None = None, *, progress: Progress | None = None) -> Fetched:
    """Fetch every source, store the day's snapshot, and return what is new on `date`."""
    now = utcnow()
    day = date or run_date(settings, now)
    with Store.from_config(settings.state) as store, store.lock():
        covered = set(store.snapshot_sources(day) or [])
        report = fetch_day(settings, store, day, now, progress=progress)
    return Fetched(day, report, covered >= {s.name for s in settings.sources})


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
    sources: tuple[str, ...] = ()  # the configured sources' names
    web_readers: tuple[WebReader, ...] = ()  # every web reader, confirmed or not (digest.web)
    warnings: tuple[str, ...] = ()  # web readers left out, or shadowed by the file's
    likes: tuple[str, ...] = ()  # readers' liked papers and feedback (`digest.feedback.liked_notes`)

    def notes(self) -> list[str]:
        """What `digest check` prints under its table: suppressions, web readers, warnings."""
        held = [f"suppressed: {h.email} since {h.since}: {h.reason} ({h.what_lifts_it})" for h in self.held]
        web = [r.described for r in self.web_readers]
        return held + web + list(self.likes) + [f"warning: {w}" for w in self.warnings]

    @property
    def terms(self) -> int:
        return len(
            {
                t.lower()
                for s in self.subscribers
                for t in (*s.keywords, *s.exclude, *s.authors, *s.categories)
            }
        )


def check_files(config: Path | str | None, subscribers_path: Path | str | None = None) -> CheckReport:
    """`digest check`: load digest.toml, then `check`. When digest.toml itself is wrong, the
    subscribers file is checked all the same (its default place, without the source names) and
    every problem of both is reported at once: one run of `digest check` lists everything."""
    try:
        settings = load_settings(config)
    except ConfigError as exc:
        problems = [*exc.problems, *_profile_problems(config, subscribers_path)]
        raise ConfigError(
            problems[0] if len(problems) == 1 else f"{len(problems)} problems", problems
        ) from None
    return check(settings, subscribers_path)


def _profile_problems(config: Path | str | None, subscribers_path: Path | str | None) -> list[str]:
    """The subscribers file's problems, found without a valid digest.toml."""
    config_file = config_path_from(config)
    folder = config_file.resolve().parent if config_file is not None else Path(".")
    path = Path(subscribers_path) if subscribers_path else folder / DEFAULT_PATH
    if not path.is_file():
        return []
    try:
        load_subscribers(path)
    except ConfigError as exc:
        return list(exc.problems)
    return []


def check(settings: Settings, subscribers_path: Path | str | None = None) -> CheckReport:
    """Validate the subscribers file, every template (compiled with MJML) and the state, and list
    the suppressed addresses with what lifts each (the same rule a run applies)."""
    readers = all_readers(settings, subscribers_path, warn=False)
    path, subs = readers.path, readers.all
    check_channels(settings)
    retention.check_window(settings)  # [state] keep_days covers the feeds and late digests
    check_engine(settings)  # [relevance] engine is installed
    EmailRenderer(settings)  # compiles the email's templates (yours in [templates] dir) with MJML
    compile_all(settings.templates.dir)  # and the archive's and feeds
    held: dict[str, Suppression] = {}
    web: list[WebReader] = []
    if settings.state.exists():
        with Store.from_config(settings.state) as store:
            held, web = store.suppressions(), store.web_readers()
    sources, warnings = tuple(s.name for s in settings.sources), tuple(readers.warnings)
    likes = tuple(liked_notes(settings, subs))  # resolves liked papers: an unknown id is an error
    return CheckReport(path, subs, describe_suppressions(subs, held), sources, tuple(web), warnings, likes)


def check_channels(settings: Settings) -> None:
    """ConfigError listing each [[channels]] problem: its profile (as a reader's is checked), and
    a destination that is missing or that Apprise cannot use (nothing is posted)."""
    problems: list[str] = []
    try:
        channel_subscribers(
            settings.channels,
            source_names=[s.name for s in settings.sources],
            hf_sources=settings.hf_source_names,
        )
    except ConfigError as exc:
        problems += exc.problems
    for channel in settings.channels:
        url = settings.channel_url(channel.name)
        what = "no destination" if url is None else check_url(url)
        if what is not None:
            problems.append(
                f"[[channels]] {channel.name}: {what}; set DIGEST_CHANNEL_URLS__{channel.name.upper()} to its "
                "Apprise URL (in the environment or the secrets dir)"
            )
    if problems:
        raise ConfigError(problems[0] if len(problems) == 1 else f"{len(problems)} problems", problems)


def describe_suppressions(
    subscribers: Sequence[Subscriber], held: dict[str, Suppression]
) -> list[HeldAddress]:
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
    return preview_profile(settings, sub, date=date, days=days)


# -- digest unsubscribe ----------------------------------------------------------------------------
@dataclass(frozen=True)
class Unsubscribed:
    email: str
    in_file: bool  # False: no longer in the subscribers file, suppressed all the same


def unsubscribe(
    settings: Settings, token: str, *, subscribers_path: Path | str | None = None
) -> Unsubscribed:
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


# -- digest state ----------------------------------------------------------------------------------
@dataclass(frozen=True)
class StateReport:
    """The state file's size by table, its window, and what compaction drops (or dropped)."""

    path: str  # the file, or the PostgreSQL database (its URL without the password)
    file_bytes: int  # the file and its WAL, or the database
    tables: dict[str, int]  # bytes by table and index, largest first
    days: int  # snapshot days stored
    oldest_full: dt.date | None  # the oldest day kept whole
    compacted_days: int  # days kept only as ids and statuses
    keep_days: int  # days kept whole: [state] keep_days, or the default window (0: everything is kept)
    drop: Drop  # what compaction would drop now, or (compacted) dropped
    shrink: Shrink | None = None  # --compact: the file before and after

    def lines(self) -> list[str]:
        """The report as `digest state` prints it."""
        full = f"oldest full day {self.oldest_full}" if self.oldest_full else "no full day"
        out = [
            f"{self.path}: {_mb(self.file_bytes)}; {self.days} days stored ({full}, "
            f"{self.compacted_days} compacted); keep_days = {self.keep_days or 'all'}",
            *(f"  {name:<34} {_mb(size):>10}" for name, size in self.tables.items() if size >= 50_000),
        ]
        d = self.drop
        verb = "compacted" if self.shrink else "retention would compact"
        if d.cutoff is None or not (d.days or d.digests or d.sent_rows or d.cache_rows):
            out.append(f"{verb}: nothing (every day is inside the window)")
        else:
            out.append(
                f"{verb}: the days before {d.cutoff}: {d.days} snapshot days ({d.snapshot_rows} papers), "
                f"{d.digests} digests, {d.sent_rows} sent-paper rows, {d.cache_rows} cached responses"
                + (f" (about {_mb(d.bytes)} of pages)" if d.bytes else "")
            )
        if self.shrink:
            s = self.shrink
            out.append(f"file: {_mb(s.before)} -> {_mb(s.after)}{' (vacuumed)' if s.vacuumed else ''}")
        return out


def _mb(n: int) -> str:
    return f"{n / 1e6:.1f} MB"


def state(settings: Settings, *, compact: bool = False, vacuum: bool = False) -> StateReport:
    """Size by table, the window, and what retention drops; `compact`: apply it now (and VACUUM
    with `vacuum`), as the end of a run does."""
    retention.check_window(settings)
    with Store.from_config(settings.state, create=False) as store, contextlib.ExitStack() as held:
        newest = store.snapshot_dates(limit=1)
        today = newest[0] if newest else run_date(settings, utcnow())
        shrink = None
        if compact:
            held.enter_context(store.lock())
            drop, shrink = retention.apply(settings, store, today, utcnow(), vacuum=vacuum)
        else:
            drop = store.preview_compaction(retention.cutoff(settings, store, today))
        return StateReport(
            path=store.where,
            file_bytes=store.file_bytes(),
            tables=store.table_sizes(),
            days=len(store.snapshot_dates()),
            oldest_full=store.oldest_full_day(),
            compacted_days=store.compacted_days(),
            keep_days=retention.window_days(settings),
            drop=drop,
            shrink=shrink,
        )
