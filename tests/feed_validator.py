"""The W3C Feed Validator's rules on a feed, for the tests: its own code, vendored in
third_party/feedvalidator (see PROVENANCE.md there), with the filter its web service applies."""

from __future__ import annotations

import socket
import sys
from dataclasses import dataclass
from pathlib import Path

VENDORED = Path(__file__).resolve().parent.parent / "third_party" / "feedvalidator"
sys.path.insert(0, str(VENDORED))
_timeout = socket.getdefaulttimeout()
import feedvalidator  # noqa: E402 - from the vendored folder
from feedvalidator import compatibility  # noqa: E402
from feedvalidator.formatter.text_plain import Formatter  # noqa: E402

socket.setdefaulttimeout(_timeout)  # importing it set a process-wide 10 s timeout


@dataclass(frozen=True)
class Report:
    errors: list[str]
    warnings: list[str]

    def __str__(self) -> str:
        return "\n".join(["errors:", *self.errors, "warnings:", *self.warnings])


def validate(data: bytes, url: str) -> Report:
    """What feedvalidator.org says of `data` served at `url` (errors and warnings, one line each,
    the kind of problem first)."""
    try:
        events = feedvalidator.validateString(data, firstOccurrenceOnly=0, base=url)["loggedEvents"]
    except feedvalidator.logging.ValidationFailure as failure:
        events = [failure.event]
    events = compatibility.AA(events)  # what the online validator reports
    lines = Formatter(events)
    errors = [f"{type(e).__name__}: {line}" for e, line in zip(events, lines, strict=True)
              if isinstance(e, feedvalidator.logging.Error)]  # fmt: skip
    warnings = [f"{type(e).__name__}: {line}" for e, line in zip(events, lines, strict=True)
                if isinstance(e, feedvalidator.logging.Warning)]  # fmt: skip
    return Report(errors, warnings)
