"""Subscriber profiles: read subscribers.toml into validated `Subscriber`s.

Every problem in the file is reported at once, each naming the file, the line where it can be
found, the subscriber (by email, or "#N" for the N-th [[subscribers]] table) and the field, e.g.

    subscribers.toml:12: subscriber ada@example.org: keyowrds: unknown key; did you mean "keywords"?

The syntax of a profile is documented in docs/matching.md; subscribers.example.toml shows all of it.
"""

from __future__ import annotations

import difflib
import os
import re
from collections.abc import Collection
from pathlib import Path
from typing import Any

from email_validator import EmailNotValidError, validate_email

from digest.config import Settings
from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.core.tomlfile import locate, read_toml
from digest.matching.query import QuerySyntaxError, parse_query
from digest.matching.terms import CATEGORY_RE, TOKEN_RE, author_name

DEFAULT_PATH = Path("subscribers.toml")
EXAMPLE_NAME = "subscribers.example.toml"

_LIST_FIELDS = ("keywords", "exclude", "authors", "categories", "sources")
_BOOL_FIELDS = ("all", "feed")
_STR_FIELDS = ("email", "name", "query", "empty")
_INT_FIELDS = ("max_papers", "min_upvotes")
KNOWN_KEYS = ("email", "name", "keywords", "exclude", "authors", "categories", "query", "all",
              "max_papers", "min_upvotes", "sources", "feed", "empty")  # fmt: skip
# Hosts that are fine in a test or a local setup, which email-validator rejects as special-use.
_LOCAL_DOMAINS = ("localhost",)


def subscribers_path_from(explicit: str | os.PathLike[str] | None, settings: Settings | None) -> Path:
    """`--subscribers PATH`, else [subscribers] path of digest.toml, else ./subscribers.toml."""
    if explicit:
        return Path(explicit)
    if settings is not None and settings.subscribers.path:
        return Path(settings.subscribers.path)
    return DEFAULT_PATH


def load_subscribers(path: Path, *, source_names: Collection[str] | None = None) -> list[Subscriber]:
    """Read and validate subscribers.toml; raises ConfigError listing every problem.

    `source_names`, when given, are the configured sources a profile's `sources` may name.
    """
    path = Path(path)
    if not path.is_file():
        raise ConfigError(
            f"{path}: no such subscribers file; copy {EXAMPLE_NAME} to {path} and edit it, "
            "or point --subscribers (or [subscribers] path in digest.toml) at yours"
        )
    data, text = read_toml(path)
    checker = _Checker(path, text, source_names)
    subscribers = checker.check_file(data)
    if checker.problems:
        problems = checker.sorted_problems()
        n = len(problems)
        message = problems[0] if n == 1 else f"{n} problems in {path}, the first: {problems[0]}"
        raise ConfigError(message, problems)
    return subscribers


def _suggest(key: str, options: Collection[str]) -> str:
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else f"; known keys: {', '.join(options)}"


# Unicode category Cc, exactly: C0, DEL and C1 (one regex search instead of a category per character).
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def _bad_chars(value: str) -> str | None:
    found = _CONTROL.search(value)
    if found is None:
        return None
    c = found.group()
    return "a line break" if c in "\r\n" else f"a control character (U+{ord(c):04X})"


def _check_email(value: str) -> str:
    """The normalised address; raises ValueError with email-validator's explanation."""
    local, at, domain = value.rpartition("@")
    if at and domain.lower() in _LOCAL_DOMAINS:
        # email-validator refuses special-use names even with globally_deliverable=False; check
        # the local part against a test domain instead and keep the real one.
        checked = validate_email(
            f"{local}@test", check_deliverability=False, test_environment=True, allow_smtputf8=False
        )
        return f"{checked.local_part}@{domain.lower()}"
    try:
        # allow_smtputf8=False: the message builder refuses a non-ASCII local part (see
        # deliver.message._addr_spec), so it is refused here, where `digest check` reports it, rather
        # than at every send. A non-ASCII domain is fine (sent as IDNA).
        return validate_email(
            value, check_deliverability=False, test_environment=True, allow_smtputf8=False
        ).normalized
    except EmailNotValidError as exc:
        raise ValueError(str(exc)) from None


class _Checker:
    def __init__(self, path: Path, text: str, source_names: Collection[str] | None) -> None:
        self.path = path
        self.text = text
        self.source_names = None if source_names is None else set(source_names)
        self.problems: list[str] = []
        self.lines: list[int] = []

    def problem(self, loc: tuple[str | int, ...], who: str | None, message: str) -> None:
        line = locate(self.text, loc)
        where = f"{self.path}:{line}" if line else str(self.path)
        field = loc[-1] if isinstance(loc[-1], str) and len(loc) > 1 else None
        parts = [where]
        if who:
            parts.append(f"subscriber {who}")
        if field:
            parts.append(str(field))
        self.problems.append(": ".join(parts) + f": {message}")
        self.lines.append(line or 0)

    def sorted_problems(self) -> list[str]:
        """In file order (the order of the checks is not the order a reader fixes them in)."""
        order = sorted(range(len(self.problems)), key=self.lines.__getitem__)
        return [self.problems[i] for i in order]

    def check_file(self, data: dict[str, Any]) -> list[Subscriber]:
        for key in data:
            if key != "subscribers":
                self.problem((key,), None, f"{key}: unknown key{_suggest(key, ['subscribers'])}")
        tables = data.get("subscribers", [])
        if not isinstance(tables, list) or not all(isinstance(t, dict) for t in tables):
            self.problem(("subscribers",), None, "subscribers: write each profile as a [[subscribers]] table")
            return []
        out: list[Subscriber] = []
        seen: dict[str, int] = {}
        for index, table in enumerate(tables):
            sub, email = self.check_profile(index, table)
            if email is not None:
                key = email.lower()
                if key in seen:
                    self.problem(
                        ("subscribers", index, "email"),
                        email,
                        f"duplicate address; subscriber #{seen[key] + 1} has it too (one profile per address)",
                    )
                    continue
                seen[key] = index
            if sub is not None:
                out.append(sub)
        return out

    def check_profile(self, index: int, table: dict[str, Any]) -> tuple[Subscriber | None, str | None]:
        """The profile (None if it has problems) and its normalised email (None if invalid)."""
        before = len(self.problems)
        who = f"#{index + 1}"
        raw_email = table.get("email")
        if isinstance(raw_email, str) and raw_email.strip() and _bad_chars(raw_email) is None:
            who = raw_email.strip()

        def bad(key: str, message: str) -> None:
            self.problem(("subscribers", index, key), who, message)

        for key in table:
            if key not in KNOWN_KEYS:
                bad(key, f"unknown key{_suggest(key, KNOWN_KEYS)}")
        values: dict[str, Any] = {}
        for key in _STR_FIELDS:
            if key in table:
                value = table[key]
                if not isinstance(value, str):
                    bad(key, f"must be a string, got {_type(value)}")
                elif (what := _bad_chars(value)) is not None:
                    bad(key, f"contains {what}; write it on one line")
                else:
                    values[key] = value.strip()
        for key in _LIST_FIELDS:
            if key in table:
                value = table[key]
                if isinstance(value, str):
                    bad(key, f'must be a list of strings; write {key} = ["{value}"]')
                elif not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                    bad(key, f"must be a list of strings, got {_type(value)}")
                else:
                    for item in value:
                        if (what := _bad_chars(item)) is not None:
                            bad(key, f"{item!r} contains {what}")
                    values[key] = tuple(v.strip() for v in value)
        for key in _BOOL_FIELDS:
            if key in table:
                if isinstance(table[key], bool):
                    values[key] = table[key]
                else:
                    bad(key, f"must be true or false, got {_type(table[key])}")
        for key in _INT_FIELDS:
            if key in table:
                value = table[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    bad(key, f"must be a whole number, got {_type(value)}")
                elif key == "max_papers" and value < 1:
                    bad(key, f"must be at least 1, got {value}")
                elif key == "min_upvotes" and value < 0:
                    bad(key, f"must be 0 or more, got {value}")
                else:
                    values[key] = value

        if "email" not in table:
            self.problem(("subscribers", index), who, "email: required key is missing")
        elif "email" in values:
            try:
                values["email"] = _check_email(values["email"])
            except ValueError as exc:
                bad("email", f"{values['email']!r} is not a valid address: {exc}")
                del values["email"]
        if values.get("empty", "skip") not in ("skip", "send"):
            bad("empty", f'must be "skip" or "send", got {values["empty"]!r}')
        for key in ("keywords", "exclude"):
            for term in values.get(key, ()):
                if not TOKEN_RE.search(term):
                    bad(key, f"{term!r} has no letters or digits to search for")
        for name in values.get("authors", ()):
            if author_name(name) is None:
                bad("authors", f"{name!r} is not a name")
        for category in values.get("categories", ()):
            if not CATEGORY_RE.fullmatch(category):
                bad("categories", f"{category!r} is not an arXiv category such as cs.CV, cs or hep-th")
        if self.source_names is not None:
            for source in values.get("sources", ()):
                if source not in self.source_names:
                    known = ", ".join(sorted(self.source_names)) or "none"
                    bad("sources", f"unknown source {source!r}; configured sources: {known}")
        if values.get("query"):
            try:
                parse_query(values["query"])
            except QuerySyntaxError as exc:
                bad("query", str(exc))
        elif "query" in values:
            bad("query", "is empty; remove it or write a query")
        # from the raw table, so that a mistyped list is one problem, not also "empty profile"
        has_interest = any(table.get(k) for k in ("keywords", "authors", "categories", "query"))
        all_mistyped = "all" in table and "all" not in values
        if not has_interest and not values.get("all") and not all_mistyped:
            self.problem(
                ("subscribers", index),
                who,
                "empty profile: give keywords, authors, categories or a query, or all = true for every paper",
            )
        email = values.get("email")
        if len(self.problems) > before:
            return None, email
        return Subscriber(**values), email


def _type(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip
