"""Author lists as feeds write them, split into one name each. Pure string functions; they hold
no business logic.

One string may hold every author of a paper, in one of these forms:

- arXiv's `dc:creator`: "A (LORIA, CNRS), B and C", commas inside parentheses belonging to the
  affiliation;
- bioRxiv's and medRxiv's "Surname, I., Surname, I. J.": a comma between surname and initials as
  well as between authors, surnames of several words ("Pereira Mendes, M."), of two letters
  ("Ma, L."), in capitals ("LAPALU, N."), initials in lower case ("de Vries, j.");
- "Surname, Given; Surname, Given", the semicolon between authors and the comma inside each.
"""

from __future__ import annotations

import re

__all__ = ["drop_affiliation", "split_authors"]

_OPEN, _CLOSE = "([{", ")]}"
# "M.", "A. K.", "J.-P.", "Ch.", "j.": letters each closed by a dot; or up to three bare capitals
# ("MJ", "J-P"). A word of four capitals or more is an upper-case surname ("LAPALU"), not initials.
_INITIALS_RE = re.compile(r"^(?:(?:[A-Za-z][a-z]?\.[\s-]*)+|[A-Z](?:[\s-]?[A-Z]){0,2})$")
_DOTTED_RE = re.compile(r"^(?:[A-Za-z][a-z]?\.[\s-]*)+$")  # initials that cannot be a surname
_AND_RE = re.compile(r"^(?:and|&)\s+", re.I)
_TRAILING_GROUP_RE = re.compile(r"\s*\((?:[^()]|\([^()]*\))*\)\s*$")


def _ws(text: str) -> str:
    return " ".join(text.split())


def _top_level_split(text: str, separators: str, *, on_and: bool) -> list[str]:
    """`text` cut at each of `separators` (and at " and ") outside parentheses."""
    pieces: list[str] = []
    depth = start = i = 0
    while i < len(text):
        ch = text[i]
        if ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth = max(0, depth - 1)
        elif depth == 0 and ch in separators:
            pieces.append(text[start:i])
            start = i + 1
        elif on_and and depth == 0 and text.startswith(" and ", i):
            pieces.append(text[start:i])
            start = i = i + len(" and ")
            continue
        i += 1
    pieces.append(text[start:])
    return [p for p in (_AND_RE.sub("", _ws(piece)) for piece in pieces) if p]


def split_authors(text: str) -> list[str]:
    """Split one author string into names; "Surname, Initials" pairs become "Initials Surname".

    `"A (LORIA, CNRS), B and C"` -> `["A (LORIA, CNRS)", "B", "C"]`;
    `"Pereira Mendes, M., Ma, L."` -> `["M. Pereira Mendes", "L. Ma"]`;
    `"Kieffer, Jean; Ma, L."` -> `["Jean Kieffer", "L. Ma"]`.
    """
    parts = _top_level_split(text, ";", on_and=False)
    if len(parts) > 1:
        pairs = [_top_level_split(part, ",", on_and=False) for part in parts]
        if all(len(pair) == 2 for pair in pairs):
            return [f"{given} {surname}" for surname, given in pairs]
    pieces = _top_level_split(text, ",;", on_and=True)
    if _alternates(pieces):
        return [f"{pieces[i + 1]} {pieces[i]}" for i in range(0, len(pieces), 2)]
    return _greedy(pieces)


def _alternates(pieces: list[str]) -> bool:
    """Whether `pieces` read surname, initials, surname, initials, ... throughout."""
    if len(pieces) < 2 or len(pieces) % 2:
        return False
    return all(_is_pair(s, i) for s, i in zip(pieces[0::2], pieces[1::2], strict=True))


def _is_pair(surname: str, initials: str) -> bool:
    # "LI, X." is a pair, "A, B" two authors: a surname that looks like initials needs dotted ones.
    # An affiliation in parentheses follows a whole name, never a surname.
    if not _INITIALS_RE.match(initials) or _DOTTED_RE.match(surname) or set("()[]") & set(surname):
        return False
    return not _INITIALS_RE.match(surname) or bool(_DOTTED_RE.match(initials))


def _greedy(pieces: list[str]) -> list[str]:
    """A list that mixes forms: a piece of initials joins the surname before it, once."""
    names: list[str] = []
    joined = False  # whether names[-1] already has its initials
    for name in pieces:
        if names and not joined and _joins(names[-1], name):
            names[-1] = f"{name} {names[-1]}"
            joined = True
        else:
            names.append(name)
            joined = False
    return names


def _joins(before: str, initials: str) -> bool:
    """Whether `initials` are the initials of the surname `before` ("Pereira Mendes", "M.")."""
    if not _INITIALS_RE.match(initials) or _INITIALS_RE.match(before):
        return False
    # A bare capital after a name of several words is an author of its own ("A (LORIA), B").
    return " " not in before or (bool(_DOTTED_RE.match(initials)) and not set("()[]") & set(before))


def drop_affiliation(name: str) -> str:
    """`"Jean Kieffer (LORIA, CNRS)"` -> `"Jean Kieffer"`; a name that is only a group is kept."""
    stripped = name
    while True:
        shorter = _TRAILING_GROUP_RE.sub("", stripped)
        if shorter == stripped:
            break
        stripped = shorter
    return stripped.strip() or name.strip()
