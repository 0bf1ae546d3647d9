"""The typed data model every stage shares.

Stages never pass raw feedparser dicts or JSON around: sources produce `Paper`s, the store keeps
them, the diff sorts them into new and updated, the matcher turns a `Subscriber`'s profile and the
new papers into `Match`es, and a `Digest` (one subscriber, one day) is what the renderer and the
transport see. Everything is frozen; datetimes are timezone-aware UTC.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import operator
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Literal, NamedTuple

from digest.core.status import DeliveryStatus, SuppressionKind

REPLACEMENT_TYPES = frozenset({"replace", "replace-cross"})


@dataclass(frozen=True, slots=True)
class Paper:
    """One paper as a listing describes it.

    `id` is the bare arXiv id without version ("2411.17700", "hep-ph/9912567") for arXiv papers,
    otherwise the feed's guid or link. The same paper from several sources is one `Paper`
    (see `merge`).
    """

    id: str
    title: str
    abstract: str = ""
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    version: int | None = None
    url: str | None = None  # the abstract page
    pdf_url: str | None = None
    published: dt.datetime | None = None  # when the paper itself was published (UTC)
    sources: tuple[str, ...] = ()  # names of the configured sources that listed it
    # What particular sources add:
    announce_type: str | None = None  # arXiv RSS: new, cross, replace, replace-cross
    is_replacement: bool = False  # a new version of an old paper, never "new" (see diff)
    upvotes: int | None = None  # Hugging Face
    comments: int | None = None  # Hugging Face
    ai_summary: str | None = None  # Hugging Face
    ai_keywords: tuple[str, ...] = ()  # Hugging Face
    github_url: str | None = None
    project_url: str | None = None
    doi: str | None = None
    journal_ref: str | None = None
    # What readers are shown for `sources`: each source's display name (`[[sources]] display_name`),
    # set by `fetch_listing`. Empty for papers made elsewhere; render then falls back to the names.
    source_labels: tuple[str, ...] = ()
    # The announcement day of a paper fetched late, by a backfill of a day no run fetched (the
    # arXiv API for a missed arXiv day, an earlier `date=` for Hugging Face); None otherwise.
    announced: dt.date | None = None

    def merge(self, other: Paper) -> Paper:
        """The same paper as seen by two sources: keep what either knows.

        Scalars prefer this paper's value and fall back to the other's; tuples are unioned in
        order; counters take the maximum; it is a replacement only if both say so.
        """
        if other.id != self.id:
            raise ValueError(f"cannot merge {self.id} with {other.id}")
        changes: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            mine, theirs = getattr(self, f.name), getattr(other, f.name)
            if f.name == "is_replacement":
                changes[f.name] = mine and theirs
            elif f.name in ("upvotes", "comments", "version"):
                known = [v for v in (mine, theirs) if v is not None]
                changes[f.name] = max(known) if known else None
            elif isinstance(mine, tuple):
                changes[f.name] = tuple(dict.fromkeys((*mine, *theirs)))
            elif mine in (None, ""):
                changes[f.name] = theirs
        return dataclasses.replace(self, **changes)

    # -- serialisation for the snapshot store -------------------------------------------------
    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            if value is None or value == () or value is False or value == "":
                continue
            if isinstance(value, dt.date):  # a datetime is a date too
                value = value.isoformat()
            elif isinstance(value, tuple):
                value = list(value)
            out[f.name] = value
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Paper:
        kwargs: dict[str, Any] = {}
        for f in dataclasses.fields(cls):
            if f.name not in data:
                continue
            value = data[f.name]
            if f.name == "published" and value is not None:
                value = dt.datetime.fromisoformat(value)
            elif f.name == "announced" and value is not None:
                value = dt.date.fromisoformat(value)
            elif isinstance(value, list):
                value = tuple(value)
            kwargs[f.name] = value
        return cls(**kwargs)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), ensure_ascii=False, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> Paper:
        return cls.from_dict(json.loads(text))


def merge_papers(papers: Iterable[Paper]) -> list[Paper]:
    """Collapse duplicates by id (first occurrence keeps its place), merging what each knows."""
    by_id: dict[str, Paper] = {}
    for paper in papers:
        seen = by_id.get(paper.id)
        by_id[paper.id] = paper if seen is None else seen.merge(paper)
    return list(by_id.values())


@dataclass(frozen=True, slots=True)
class Listing:
    """What one source listed for one run date."""

    source: str
    papers: tuple[Paper, ...]
    fetched_at: dt.datetime
    skipped: int = 0  # malformed items left out (each logged when parsed)
    duplicates: int = 0  # items left out for repeating an earlier item's id in the same response
    # The announcement days the papers come from, oldest first: the feed's own date for arXiv,
    # the `date=` days for Hugging Face (empty for a feed without one). The store keeps them per
    # source, so the next run knows which days it missed.
    days: tuple[dt.date, ...] = ()
    announced: dt.date | None = None  # the day the listing says it is of (arXiv's channel date)
    backfilled: tuple[dt.date, ...] = ()  # missed days fetched late (in `days` too)
    cut: tuple[dt.date, ...] = ()  # missed days older than `[fetch] backfill_days`: not fetched
    # why the missed days could not be fetched (the arXiv API down): the day's own listing is
    # kept, `days` is empty, so the next run finds the same days missed and tries them again
    backfill_failed: str | None = None


@dataclass(frozen=True, slots=True)
class DiffResult:
    """The outcome of comparing today's listing with everything seen before."""

    new: tuple[Paper, ...]
    updates: tuple[Paper, ...]  # seen before, listed again (a new version or an arXiv replacement)


Weekday = Literal["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
WEEKDAYS: tuple[Weekday, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


@dataclass(frozen=True, slots=True)
class Subscriber:
    """One reader's profile from subscribers.toml (validated by `digest.profiles`)."""

    email: str
    name: str = ""
    keywords: tuple[str, ...] = ()
    exclude: tuple[str, ...] = ()
    authors: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    query: str | None = None
    all: bool = False  # every new paper, no filtering
    max_papers: int = 20
    min_upvotes: int = 0
    sources: tuple[str, ...] = ()  # empty = every configured source
    feed: bool = False
    empty: Literal["skip", "send"] = "skip"
    language: str = ""  # of the reader's summaries ([summaries]); "" for the list's language
    # How often a digest goes out (`digest.cadence`): "weekly" on `weekday`. None: the list's
    # [defaults] in subscribers.toml, else daily on Monday.
    cadence: Literal["daily", "weekly"] | None = None
    weekday: Weekday | None = None
    # Hugging Face's most upvoted papers of the week or month instead of the day's new papers
    # (`digest.trending`): sent when the period closes, ranked by upvotes at send time.
    trending: Literal["week", "month"] | None = None
    # Papers like these (`digest.relevance`): canonical keys ("arxiv:2411.01234", "doi:10...."),
    # how similar a paper must be to count, and whether similarity ranks within the keyword
    # rules ("rank") or also lets papers past them ("widen"). None: the defaults.
    like: tuple[str, ...] = ()
    dislike: tuple[str, ...] = ()
    min_similarity: float | None = None
    mode: Literal["rank", "widen"] | None = None

    @property
    def display(self) -> str:
        return f"{self.name} <{self.email}>" if self.name else self.email

    @property
    def fingerprint(self) -> str:
        """A stable hash of everything in the profile: any edit gives a new fingerprint.

        Independent of Python's hash seed and of dict order, so it can be stored: a suppression
        keeps the fingerprint of the profile it was recorded for, and an edited profile lifts it.
        """
        profile = dataclasses.asdict(self)
        if not self.language:  # a key added later: unset, the fingerprints stored before still hold
            del profile["language"]
        later = (("cadence", "daily"), ("weekday", "monday"), ("trending", None), ("like", ()), ("dislike", ()),
                 ("min_similarity", None), ("mode", None))  # fmt: skip
        for key, usual in later:  # keys added later: unset, the fingerprints stored before still hold
            if profile[key] is None or profile[key] == usual:
                del profile[key]
        canonical = json.dumps(profile, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
        return hashlib.sha256(b"profile-v1\0" + canonical.encode()).hexdigest()[:32]


# A reader as plain values, the way it crosses to another process (render workers, the profiles'
# reader): its fields' values in the order `Subscriber(*values)` takes them, in one call.
SUBSCRIBER_FIELDS = tuple(f.name for f in dataclasses.fields(Subscriber))
subscriber_values = operator.attrgetter(*SUBSCRIBER_FIELDS)


Field = Literal["title", "abstract", "keywords", "author", "category"]


class Hit(NamedTuple):
    """One matched term: which profile term, in which field, where (character offsets).

    A NamedTuple, not a frozen dataclass like the rest: a run at 10,000 readers makes some 250,000
    hits and 200,000 matches, and a tuple is made three times faster (the matcher makes them with
    `tuple.__new__`, faster still). Immutable all the same; it also compares equal to a plain
    tuple of its fields, which nothing here relies on.
    """

    term: str
    field: Field
    start: int
    end: int


class Match(NamedTuple):
    """A paper a subscriber gets, with its score and the explanation of why (a NamedTuple, as Hit)."""

    paper: Paper
    score: float
    hits: tuple[Hit, ...] = ()

    @property
    def terms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys(h.term for h in self.hits))

    def why(self) -> str:
        """'matched "prompt tuning" in the title, "LLM" in the abstract'."""
        by_term: dict[str, list[str]] = {}
        for hit in self.hits:
            fields = by_term.setdefault(hit.term, [])
            if hit.field not in fields:
                fields.append(hit.field)
        if not by_term:
            return "all new papers"
        parts = [f'"{term}" in the {" and ".join(fields)}' for term, fields in by_term.items()]
        return "matched " + ", ".join(parts)


# The `similar` of every digest that has none (most: only readers who liked papers have any): one
# shared, read-only empty mapping, not a dict each (8 MB at 100,000 readers).
NOTHING_SIMILAR: Mapping[str, tuple[str, float]] = MappingProxyType({})


def _nothing_similar() -> Mapping[str, tuple[str, float]]:
    return NOTHING_SIMILAR


@dataclass(frozen=True, slots=True)
class Digest:
    """What one subscriber gets for one run date: the best matches and how many more there were."""

    subscriber: Subscriber
    date: dt.date
    matches: tuple[Match, ...]
    total_matched: int = field(default=-1)
    # paper id -> (the nearest liked paper's title, the similarity): why a paper ranked by
    # similarity to what the reader likes is there (`digest.relevance`)
    similar: Mapping[str, tuple[str, float]] = field(default_factory=_nothing_similar)

    def __post_init__(self) -> None:
        if self.total_matched < 0:
            object.__setattr__(self, "total_matched", len(self.matches))

    @property
    def more(self) -> int:
        """How many matched papers `max_papers` (or the size budget) left out."""
        return max(0, self.total_matched - len(self.matches))


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    """The content of one digest email; transports turn it into a message."""

    subject: str
    html: str
    text: str
    preheader: str = ""
    shown: int = 0  # papers actually in the email (the size budget may show fewer than matched)


def utcnow() -> dt.datetime:
    """The one place that reads the wall clock; stages get `now=` passed in."""
    return dt.datetime.now(dt.UTC)


# -- what the state keeps (the store reads and writes these; the plan step decides on them) -------
@dataclass(frozen=True)
class CachedResponse:
    """What the store keeps per URL for conditional GET."""

    url: str
    etag: str | None
    last_modified: str | None
    body: bytes


@dataclass(frozen=True)
class FetchResult:
    url: str  # the full URL fetched, including query string (this is the cache key)
    body: bytes
    status: int  # 200, or 304 when the cached body was reused
    etag: str | None
    last_modified: str | None
    not_modified: bool  # True when a 304 reused the cached body


@dataclass(frozen=True, slots=True)
class Seen:
    """What was known of a paper before some date."""

    first_seen: dt.date
    version: int | None


@dataclass(frozen=True, slots=True)
class Delivery:
    """One reader's digest for one date, as the send ledger holds it."""

    date: dt.date
    email: str
    status: DeliveryStatus
    attempts: int
    reply: str | None
    message_id: str | None
    papers: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Suppression:
    """An address that gets no mail: `kind` says why, and so what lifts it (see SuppressionKind)."""

    email: str
    reason: str  # the words shown to the operator: the server's refusal, or the reader's request
    fingerprint: str  # the profile as it was when suppressed
    at: str
    # last, with a default, so that rows built positionally before the kind existed still work
    kind: SuppressionKind = SuppressionKind.REFUSED
