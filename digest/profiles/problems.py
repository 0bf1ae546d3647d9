"""Problems in subscribers.toml, worded for the reader: `file:line: subscriber WHO: key: message`.

Pydantic reports where a value is wrong (("subscribers", 3, "keywords", 1)) and what kind of wrong
("list_type"); this module turns that into one line a reader can act on, finds the line with
`digest.core.tomlfile.locate`, and adds the two checks that span more than one value's own
validator: a duplicate address (between profiles) and an empty profile (read from the table as
written, so that a mistyped list is one problem, not also "empty profile").
"""

from __future__ import annotations

import difflib
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from pydantic_core import ErrorDetails

from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.core.tomlfile import Lines, locate
from digest.profiles.schema import ITEM_ERROR, KNOWN_KEYS, MATCHING_KEYS, bad_chars, validate

SHAPE = "subscribers: write each profile as a [[subscribers]] table"
_INTEREST = (
    "keywords",
    "authors",
    "categories",
    "query",
    "trending",
    "like",
)  # trending alone: the whole list
_TYPE_WORDS = {
    "string_type": "must be a string",
    "list_type": "must be a list of strings",
    "bool_type": "must be true or false",
    "int_type": "must be a whole number",
}

Loc = tuple[str | int, ...]


class Report:
    """The problems found so far, each with its line so that they can be listed in file order."""

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self.lines: Lines | None = None  # the text's lines and headers, found at the first problem
        self.found: list[tuple[int, str]] = []

    def add(self, loc: Loc, who: str | None, message: str) -> None:
        if self.lines is None:
            self.lines = Lines(self.text)
        line = locate(self.lines, loc) if self.text else None
        parts = [f"{self.path}:{line}" if line else str(self.path)]
        if who:
            parts.append(f"subscriber {who}")
        if len(loc) > 1 and isinstance(loc[-1], str):
            parts.append(loc[-1])
        self.found.append((line or 0, ": ".join(parts) + f": {message}"))

    def error(self) -> ConfigError | None:
        if not self.found:
            return None
        # in file order: the order of the checks is not the order a reader fixes them in
        problems = [message for _, message in sorted(self.found, key=lambda found: found[0])]
        n = len(problems)
        return ConfigError(
            problems[0] if n == 1 else f"{n} problems in {self.path}, the first: {problems[0]}", problems
        )

    def validation_error(self, exc: ValidationError, tables: Any) -> bool:
        """Word pydantic's errors; False if the file is not a list of tables at all (then nothing
        inside it is worth reporting)."""
        errors = exc.errors(include_url=False)
        top = [e for e in errors if len(e["loc"]) <= 2]
        for err in top:
            if err["type"] == "extra_forbidden" and len(err["loc"]) == 1:
                key = str(err["loc"][0])
                self.add((key,), None, f"{key}: unknown key{suggest(key, ['subscribers', 'defaults'])}")
            elif err["loc"][0] == "defaults":  # [defaults]: its key, or the table itself
                where = tuple(str(part) for part in err["loc"])
                said = (
                    "unknown key in [defaults], which takes cadence and weekday"
                    if err["type"] == "extra_forbidden"
                    else _message(err, where[-1])
                )
                self.add(where, None, f"{'[defaults] ' if len(where) == 1 else ''}{said}")
        if any(e["type"] != "extra_forbidden" and e["loc"][0] != "defaults" for e in top):
            self.add(("subscribers",), None, SHAPE)
            return False
        self._in_profiles([e for e in errors if len(e["loc"]) > 2], tables)
        return True

    def _in_profiles(self, errors: list[ErrorDetails], tables: Sequence[Mapping[str, Any]]) -> None:
        # A list with a non-string in it is one problem, whatever its strings are like.
        mistyped = {_where(e) for e in errors if len(e["loc"]) == 4 and e["type"] == "string_type"}
        later: list[tuple[Loc, str, str]] = []  # what is wrong with an item beyond its characters
        for err in errors:
            index, key = _where(err)
            if len(err["loc"]) == 4 and (index, key) in mistyped:
                continue
            who = who_is(tables[index], index)
            if err["type"] == "missing":
                self.add(("subscribers", index), who, f"{key}: required key is missing")
            elif err["type"] == ITEM_ERROR:
                control, problem = err["ctx"]["control"], err["ctx"]["problem"]
                if control:
                    self.add(("subscribers", index, key), who, control)
                if problem:
                    later.append((("subscribers", index, key), who, problem))
            else:
                self.add(("subscribers", index, key), who, _message(err, key))
        for index, key in sorted(mistyped):
            self.add(
                ("subscribers", index, key),
                who_is(tables[index], index),
                "must be a list of strings, got a list",
            )
        for loc, who, problem in later:
            self.add(loc, who, problem)

    def across_profiles(
        self,
        tables: Sequence[Mapping[str, Any]],
        addresses: Mapping[str, str],
        hf_sources: Collection[str] | None = None,
    ) -> None:
        """Duplicate addresses, empty profiles, and trending ones whose `sources` leave out every
        Hugging Face source (`hf_sources`, when known); `addresses` maps each valid address as
        written (stripped) to its normalised form."""
        seen: dict[str, int] = {}
        for index, table in enumerate(tables):
            who = who_is(table, index)
            named = table.get("sources")
            if (
                table.get("trending")
                and hf_sources
                and isinstance(named, list)
                and not set(named) & set(hf_sources)
            ):
                self.add(
                    ("subscribers", index, "sources"),
                    who,
                    f"names no Hugging Face source, and trending lists come from one ({', '.join(sorted(hf_sources))})",
                )
            if not any(table.get(k) for k in _INTEREST) and table.get("all", False) is False:
                self.add(
                    ("subscribers", index),
                    who,
                    "empty profile: give keywords, authors, categories or a query, or all = true for every paper",
                )
            email = addresses.get(who)  # a "#N" is never an address
            if email is None:
                continue
            if (first := seen.setdefault(email.lower(), index)) != index:
                self.add(
                    ("subscribers", index, "email"),
                    email,
                    f"duplicate address; subscriber #{first + 1} has it too (one profile per address)",
                )


def who_is(table: Mapping[str, Any], index: int) -> str:
    """The subscriber as a message names them: the address as written, or "#N" for the N-th table."""
    raw = table.get("email")
    if isinstance(raw, str) and raw.strip() and bad_chars(raw) is None:
        return raw.strip()
    return f"#{index + 1}"


def suggest(key: str, options: Collection[str], listed: Collection[str] | None = None) -> str:
    """A close key to suggest, else the keys to list (`listed`, by default all `options`)."""
    close = difflib.get_close_matches(key, list(options), n=1, cutoff=0.6)
    return f'; did you mean "{close[0]}"?' if close else f"; known keys: {', '.join(listed or options)}"


def _where(err: ErrorDetails) -> tuple[int, str]:
    """(profile index, key) of an error inside a profile: ("subscribers", 3, "keywords", 1) -> (3, "keywords")."""
    _, index, key, *_ = err["loc"]
    return int(index), str(key)


def _message(err: ErrorDetails, key: str) -> str:
    kind, value = err["type"], err["input"]
    if kind == "value_error":
        return err["msg"].removeprefix("Value error, ")
    if kind == "extra_forbidden":
        return f"unknown key{suggest(key, KNOWN_KEYS, MATCHING_KEYS)}"
    if kind == "list_type" and isinstance(value, str):
        return f'must be a list of strings; write {key} = ["{value}"]'
    if kind in _TYPE_WORDS:
        return f"{_TYPE_WORDS[kind]}, got {_type(value)}"
    return str(err["msg"])  # pragma: no cover - a TOML value is one of the types above


def _type(value: Any) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "a list",
            dict: "a table"}.get(type(value), type(value).__name__)  # fmt: skip


def validated(
    data: Mapping[str, Any], tables: Sequence[Mapping[str, Any]], context: dict[str, Any], report: Report
) -> list[Subscriber]:
    """The profiles of `data` (a subscribers file's, or one table's); ConfigError listing every
    problem, each worded by `report` (the schema's, and those across profiles)."""
    subscribers: list[Subscriber] = []
    try:
        subscribers = validate(data, context)
        well_formed = True
    except ValidationError as exc:
        well_formed = report.validation_error(exc, tables)
    if well_formed:
        report.across_profiles(tables, context["addresses"], context.get("hf_sources"))
    if (error := report.error()) is not None:
        raise error
    return subscribers
