"""The shape of one profile in subscribers.toml, as a strict pydantic schema. No file handling.

Each validator raises ValueError with the words the reader sees after "file:line: subscriber
WHO: key: "; pydantic's own type errors are worded in `digest.profiles.problems`. Strings are
checked for control characters before they are stripped, so a tab or a line break pasted into a
value is refused rather than silently eaten.
"""

from __future__ import annotations

import dataclasses
import functools
import re
from collections.abc import Callable, Mapping
from typing import Annotated, Any, Literal, Required

from email_validator import EmailNotValidError, validate_email
from pydantic import AfterValidator, ConfigDict, TypeAdapter, ValidationInfo
from pydantic_core import PydanticCustomError
from typing_extensions import TypedDict

from digest.config import check_language
from digest.core.models import Subscriber, Weekday
from digest.matching.query import QuerySyntaxError, parse_query
from digest.matching.terms import CATEGORY_RE, TOKEN_CHARS, author_name
from digest.relevance.likes import like_key

# Hosts that are fine in a test or a local setup, which email-validator rejects as special-use.
_LOCAL_DOMAINS = ("localhost",)
# Unicode category Cc, exactly: C0, DEL and C1 (one regex search instead of a category per character).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
# A local part email-validator returns as it is: a dot-atom, ASCII, and lower case, so that lowering
# a role name ("Postmaster") cannot change it. Such an address needs only its domain checked, once.
_PLAIN_LOCAL = re.compile(r"[a-z0-9_+-]+(?:\.[a-z0-9_+-]+)*")
# One letter or digit is enough to search for; TOKEN_RE would read on to the end of the word (twice
# the time, on 100,000 keywords).
_TOKEN_CHAR = re.compile(TOKEN_CHARS)
_MAX_ADDRESS = 254  # bytes, as email-validator counts the address as written, normalised, and in IDNA


def bad_chars(value: str) -> str | None:
    """What is wrong with `value` as one line of text ("a line break"), or None."""
    found = _CONTROL.search(value)
    if found is None:
        return None
    c = found.group()
    return "a line break" if c in "\r\n" else f"a control character (U+{ord(c):04X})"


def check_email(value: str) -> str:
    """The normalised address; raises ValueError with email-validator's explanation."""
    local, at, domain = value.rpartition("@")
    if at and domain.lower() in _LOCAL_DOMAINS:
        # email-validator refuses special-use names even with globally_deliverable=False; check
        # the local part against a test domain instead and keep the real one.
        checked = validate_email(
            f"{local}@test", check_deliverability=False, test_environment=True, allow_smtputf8=False
        )
        return f"{checked.local_part}@{domain.lower()}"
    if (plain := _plain_address(local, domain)) is not None:
        return plain
    try:
        # allow_smtputf8=False: the message builder refuses a non-ASCII local part (see
        # deliver.message._addr_spec), so it is refused here, where `digest check` reports it, rather
        # than at every send. A non-ASCII domain is fine (sent as IDNA).
        return validate_email(
            value, check_deliverability=False, test_environment=True, allow_smtputf8=False
        ).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


def _plain_address(local: str, domain: str) -> str | None:
    """What validate_email returns for `local@domain` when the local part is plain (see
    `_PLAIN_LOCAL`), or None: then the whole address is checked. Most of email-validator's time
    goes on the domain, which 10,000 readers share among a few: it is checked once per domain."""
    if not _PLAIN_LOCAL.fullmatch(local) or (known := _checked_domain(domain)) is None:
        return None
    normalized, ascii_domain = known
    longest = max(len(domain.encode()), len(normalized.encode()), len(ascii_domain))
    return f"{local}@{normalized}" if len(local) + 1 + longest <= _MAX_ADDRESS else None


@functools.lru_cache(maxsize=1024)
def _checked_domain(domain: str) -> tuple[str, str] | None:
    """email-validator's normalised and IDNA forms of `domain` after a plain local part, or None
    if it refuses the address."""
    try:
        checked = validate_email(
            f"a@{domain}", check_deliverability=False, test_environment=True, allow_smtputf8=False
        )
    except EmailNotValidError:
        return None
    return checked.domain, checked.ascii_domain


# -- one value ----------------------------------------------------------------------------------
def _one_line(value: str) -> str:
    if (what := bad_chars(value)) is not None:
        raise ValueError(f"contains {what}; write it on one line")
    return value.strip()


def _email(value: str, info: ValidationInfo) -> str:
    try:
        address = check_email(value)
    except ValueError as exc:
        raise ValueError(f"{value!r} is not a valid address: {exc}") from None
    if info.context is not None:
        # Duplicates are a matter between profiles, found after validation; a profile with other
        # problems has no result to read its address from, so the address is noted here.
        info.context["addresses"][value] = address
    return address


def _query(value: str) -> str:
    if not value:
        raise ValueError("is empty; remove it or write a query")
    try:
        parse_query(value)
    except QuerySyntaxError as exc:
        raise ValueError(str(exc)) from None
    return value


def _empty(value: str) -> str:
    if value not in ("skip", "send"):
        raise ValueError(f'must be "skip" or "send", got {value!r}')
    return value


def _at_least_one(value: int) -> int:
    if value < 1:
        raise ValueError(f"must be at least 1, got {value}")
    return value


def _not_negative(value: int) -> int:
    if value < 0:
        raise ValueError(f"must be 0 or more, got {value}")
    return value


def _trending(value: str, info: ValidationInfo) -> str:
    """Only Hugging Face Daily Papers has week and month lists to take a trending digest from."""
    known = None if info.context is None else info.context.get("hf_sources")
    if known is not None and not known:
        raise ValueError(
            'needs a Hugging Face source in digest.toml ([[sources]] kind = "hf_daily"); none is configured'
        )
    return value


# -- one item of a list: each item is its own problem, so each is validated on its own ---------
# The type of error an item raises; its context holds "control" and "problem", either may be None.
ITEM_ERROR = "profile_item"


def _letters(term: str, info: ValidationInfo) -> str | None:
    return None if _TOKEN_CHAR.search(term) else f"{term!r} has no letters or digits to search for"


def _name(name: str, info: ValidationInfo) -> str | None:
    return None if author_name(name) is not None else f"{name!r} is not a name"


def _category(category: str, info: ValidationInfo) -> str | None:
    if CATEGORY_RE.fullmatch(category):
        return None
    return f"{category!r} is not an arXiv category such as cs.CV, cs or hep-th"


def _source(source: str, info: ValidationInfo) -> str | None:
    known = None if info.context is None else info.context.get("sources")
    if known is None or source in known:
        return None
    return f"unknown source {source!r}; configured sources: {', '.join(sorted(known)) or 'none'}"


def _paper_ref(ref: str, info: ValidationInfo) -> str | None:
    try:
        like_key(ref)
    except ValueError as exc:
        return str(exc)
    return None


def _similarity(value: float) -> float:
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"must be between 0 and 1, got {value}")
    return float(value)


def _keys(refs: list[str]) -> tuple[str, ...]:
    """Each liked paper once, however it was written (an id, its abs URL, its PDF URL)."""
    return tuple(dict.fromkeys(like_key(ref) for ref in refs))


def _item(check: Callable[[str, ValidationInfo], str | None]) -> AfterValidator:
    """A string in a list, stripped, then `check`ed. A control character does not stop the check:
    both are reported, as separate problems (see `ITEM_ERROR`)."""

    def validate(value: str, info: ValidationInfo) -> str:
        item = value.strip()
        what = bad_chars(value)
        control = None if what is None else f"{value!r} contains {what}"
        problem = check(item, info)
        if control is None and problem is None:
            return item
        message = "; ".join(m for m in (control, problem) if m)
        raise PydanticCustomError(
            ITEM_ERROR, "{message}", {"message": message, "control": control, "problem": problem}
        )

    return AfterValidator(validate)


OneLine = Annotated[str, AfterValidator(_one_line)]
# TOML arrays of strings, each item checked on its own, kept as the tuples `Subscriber` holds.
Terms = Annotated[list[Annotated[str, _item(_letters)]], AfterValidator(tuple)]
Authors = Annotated[list[Annotated[str, _item(_name)]], AfterValidator(tuple)]
Categories = Annotated[list[Annotated[str, _item(_category)]], AfterValidator(tuple)]
Sources = Annotated[list[Annotated[str, _item(_source)]], AfterValidator(tuple)]
PaperRefs = Annotated[list[Annotated[str, _item(_paper_ref)]], AfterValidator(_keys)]


class Profile(TypedDict, total=False):
    """One [[subscribers]] table. A TypedDict rather than a BaseModel: it validates into a dict
    of the keys the reader wrote, so `Subscriber`'s own defaults apply and are written once."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    email: Required[Annotated[str, AfterValidator(_one_line), AfterValidator(_email)]]
    name: OneLine
    keywords: Terms
    exclude: Terms
    authors: Authors
    categories: Categories
    query: Annotated[str, AfterValidator(_one_line), AfterValidator(_query)]
    all: bool
    max_papers: Annotated[int, AfterValidator(_at_least_one)]
    min_upvotes: Annotated[int, AfterValidator(_not_negative)]
    sources: Sources
    feed: bool
    empty: Annotated[str, AfterValidator(_one_line), AfterValidator(_empty)]
    language: Annotated[str, AfterValidator(_one_line), AfterValidator(check_language)]
    cadence: Literal["daily", "weekly"]
    weekday: Weekday
    trending: Annotated[Literal["week", "month"], AfterValidator(_trending)]
    like: PaperRefs
    dislike: PaperRefs
    min_similarity: Annotated[float, AfterValidator(_similarity)]
    mode: Literal["rank", "widen"]


def _subscriber(profile: Mapping[str, Any]) -> Subscriber:
    return Subscriber(**profile)


class Defaults(TypedDict, total=False):
    """subscribers.toml's [defaults]: what a profile that does not say gets."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    cadence: Literal["daily", "weekly"]
    weekday: Weekday


class ProfilesFile(TypedDict, total=False):
    """subscribers.toml: [[subscribers]] tables, and [defaults] for all of them."""

    __pydantic_config__ = ConfigDict(extra="forbid", strict=True)  # type: ignore[misc]

    defaults: Defaults
    subscribers: list[Annotated[Profile, AfterValidator(_subscriber)]]


KNOWN_KEYS = tuple(Profile.__annotations__)
# The keys an unknown key's message lists when no known one is close: what a paper is matched and
# sent by. The later per-reader options (language, cadence, weekday) are still suggested when close.
MATCHING_KEYS = KNOWN_KEYS[: KNOWN_KEYS.index("empty") + 1]
_FILE = TypeAdapter(ProfilesFile)


def validate(data: Mapping[str, Any], context: Mapping[str, Any]) -> list[Subscriber]:
    """The subscribers of a parsed subscribers.toml; raises pydantic's ValidationError.

    `context`: "sources", the configured source names (None: any name), and "addresses", a dict
    the email validator fills with address as written -> normalised.
    """
    # One validator for the whole file, so that the loop over 10,000 profiles runs in pydantic-core.
    parsed = _FILE.validate_python(data, context=context)
    subscribers: list[Subscriber] = parsed.get("subscribers", [])  # type: ignore[assignment]
    defaults = parsed.get("defaults")
    if defaults:  # a profile that says nothing gets the list's cadence and weekday
        subscribers = [_with_defaults(sub, defaults) for sub in subscribers]
    return subscribers


def _with_defaults(sub: Subscriber, defaults: Defaults) -> Subscriber:
    cadence = sub.cadence or defaults.get("cadence")
    weekday = sub.weekday or defaults.get("weekday")
    if (cadence, weekday) == (sub.cadence, sub.weekday):
        return sub
    return dataclasses.replace(sub, cadence=cadence, weekday=weekday)
