"""The profile form of the subscribe and manage pages: form fields to a [[subscribers]] table and
back, and `digest check`'s messages sorted by the field they are about. No business logic: the
table is validated by `digest.profiles.single.check_profile`, the same schema as the file's."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from digest.core.errors import ConfigError
from digest.core.models import Subscriber
from digest.profiles import KNOWN_KEYS
from digest.profiles.single import check_profile

FIELDS = ("email", "name", "keywords", "exclude", "authors", "categories", "query", "like", "cadence", "weekday")
# How each list field is written in its box: one item a line, or separated by commas too (an
# author's name may hold a comma, "Lovelace, Ada", so authors are split on lines and ";" only)
_SPLIT = {
    "keywords": r"[\n,]",
    "exclude": r"[\n,]",
    "categories": r"[\n,\s]",
    "authors": r"[\n;]",
    "like": r"[\n,\s]",  # ids and links hold no spaces
}
MAX_FIELD = 2000  # characters in one field; a profile is a few lines
MAX_ITEMS = 50  # items in one list field
PREVIEW_ADDRESS = "preview@example.org"  # stands in for an address not typed yet, for a preview only
_WHERE = "form"
_PREFIX = re.compile(rf"^{_WHERE}: (?:subscriber \S+: )?")


@dataclass
class Draft:
    """A submitted profile: what was typed (to show it again), its table and, when it is valid,
    the subscriber; `errors` by field ("" for the profile as a whole), each a `digest check` line."""

    values: dict[str, str]
    table: dict[str, Any]
    subscriber: Subscriber | None = None
    errors: dict[str, list[str]] = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.subscriber is not None and not self.errors


def values_of(table: Mapping[str, Any]) -> dict[str, str]:
    """A stored profile as the form's boxes show it."""
    out = {}
    for key in FIELDS:
        value = table.get(key, "")
        out[key] = "\n".join(value) if isinstance(value, list | tuple) else str(value or "")
    return out


def _table(values: Mapping[str, str], errors: dict[str, list[str]]) -> dict[str, Any]:
    table: dict[str, Any] = {}
    for key in FIELDS:
        raw = values.get(key, "")
        if len(raw) > MAX_FIELD:
            errors.setdefault(key, []).append(f"{key}: longer than {MAX_FIELD} characters; shorten it")
        elif key in _SPLIT:
            items = [item.strip() for item in re.split(_SPLIT[key], raw) if item.strip()]
            if len(items) > MAX_ITEMS:
                errors.setdefault(key, []).append(
                    f"{key}: more than {MAX_ITEMS} items; keep the ones that matter"
                )
            elif items:
                table[key] = items
        elif raw.strip():
            table[key] = raw.strip()
    return table


def draft(
    form: Mapping[str, str], *, source_names: list[str], hf_sources: list[str], for_preview: bool = False
) -> Draft:
    """Validate a submitted form. `for_preview`: an address not typed yet is no error."""
    # browsers send a textarea's lines with CRLF; shown again, a CR would print as a space
    values = {key: str(form.get(key, "")).replace("\r\n", "\n")[: MAX_FIELD + 1] for key in FIELDS}
    errors: dict[str, list[str]] = {}
    table = _table(values, errors)
    if for_preview and not table.get("email"):
        table["email"] = PREVIEW_ADDRESS
    if table.get("cadence") != "weekly":
        table.pop("weekday", None)  # a daily reader's weekday means nothing; the box keeps it
    subscriber = None
    try:
        subscriber = check_profile(table, source_names=source_names, hf_sources=hf_sources, where=_WHERE)
    except ConfigError as exc:
        refused = bool(errors)  # a field too long or too many items, left out of the table
        for line in exc.problems:
            message = _PREFIX.sub("", line)
            if refused and message.startswith("empty profile"):
                continue  # the profile is empty only because a field was refused: one message is enough
            key = message.split(":", 1)[0]
            errors.setdefault(key if key in KNOWN_KEYS else "", []).append(message)
    return Draft(values, table, subscriber if not errors else None, errors)
