"""Term and name normalisation shared by the matcher and its naive reference. No business logic.

These are the word-level rules of docs/matching.md, in one place so that the fast matcher
(`digest.matching.matcher.Matcher`) and the reference loop (`digest.matching.naive.naive_match`) agree by
construction on what a *word* is, while each finds words in its own way:

- a token is a run of letters and digits (Unicode; combining accents stay inside the token);
- inside a phrase, tokens may be separated only by spaces, hyphens or underscores;
- `fold_plural` folds simple English plurals, the same way on both sides;
- a term token shaped like an acronym (`SLAM`, `RAG`, `GPT4`) compares case-sensitively;
- author names compare tolerant to accents, TeX accents, initials and particles.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from dataclasses import dataclass

# A token: letters and digits, with combining accents kept inside (a decomposed "é").
TOKEN_CHARS = r"(?:[^\W_]|[\u0300-\u036f])"
TOKEN_RE = re.compile(TOKEN_CHARS + "+")
# TOKEN_RE for a text whose underscores are replaced by spaces (offsets stay): one character
# class instead of an alternation, several times faster.
_WORD_RE = re.compile(r"[\w\u0300-\u036f]+")
# What may separate the words of a phrase in the text: spaces, hyphens, underscores.
GAP_CHARS = r"[\s\-_\u2010\u2011]"
GAP_RE = re.compile(GAP_CHARS + "+")

_ACRONYM_RE = re.compile(r"[A-Z0-9]{2,5}")


@functools.lru_cache(maxsize=200_000)
def fold_plural(token: str) -> str:
    """'models' -> 'model', 'queries' -> 'query', 'classes' -> 'class', 'LLMs' -> 'LLM'.

    Deliberately simple and applied to both the term and the text, so only the rule's own
    collisions matter ('caches' folds to 'cach', which 'cache' is not). Case is kept.
    """
    low = token.lower()
    n = len(low)
    if n > 4 and low.endswith("ies"):
        return token[:-3] + ("Y" if token[-3:] == "IES" else "y")
    if n > 4 and low.endswith(("sses", "xes", "ches", "shes")):
        return token[:-2]
    if n > 3 and low.endswith("s") and not low.endswith(("ss", "us", "is")):
        return token[:-1]
    return token


def token_key(token: str) -> str:
    """The case-insensitive comparison form of a text or term token."""
    return fold_plural(token).lower()


def is_acronym(folded: str) -> bool:
    """2-5 capitals or digits with at least two letters: 'SLAM', 'RAG', 'GPT4', 'LLM' (of 'LLMs')."""
    if folded.islower():  # most words: a lower-case letter rules it out, without the regex
        return False
    return bool(_ACRONYM_RE.fullmatch(folded)) and sum(c.isalpha() for c in folded) >= 2


@dataclass(frozen=True, slots=True)
class CompiledTerm:
    """A keyword as the matcher sees it: one entry per token.

    `keys` are the case-insensitive forms; `exact[i]` is the case-sensitive form when token i is
    an acronym, else None.
    """

    text: str
    keys: tuple[str, ...]
    exact: tuple[str | None, ...]

    @property
    def case_sensitive(self) -> bool:
        return any(e is not None for e in self.exact)


@functools.lru_cache(maxsize=100_000)
def compile_term(text: str) -> CompiledTerm | None:
    """None when the term has no letters or digits at all (nothing to search for)."""
    tokens = _WORD_RE.findall(text.replace("_", " "))
    if not tokens:
        return None
    folded = list(map(fold_plural, tokens))
    return CompiledTerm(
        text=text,
        keys=tuple([f.lower() for f in folded]),
        exact=tuple([f if is_acronym(f) else None for f in folded]),
    )


def token_matches(text_token: str, key: str, exact: str | None) -> bool:
    """Does a token of the text match one token of a term?"""
    folded = fold_plural(text_token)
    return folded == exact if exact is not None else folded.lower() == key


# -- categories ------------------------------------------------------------------------------------

# What a profile may write as a category (`categories = [...]`, `cat:` in a query): an arXiv
# archive ("cs", "hep-th") or archive.subject ("cs.CV").
CATEGORY_RE = re.compile(r"[A-Za-z][A-Za-z\-]*(\.[A-Za-z][A-Za-z\-]*)?")


def category_matches(profile_category: str, paper_category: str) -> bool:
    """'cs' covers every cs.* category; 'cs.CV' only cs.CV; case does not matter."""
    want, have = profile_category.lower(), paper_category.lower()
    return have == want or have.startswith(want + ".")


def category_keys(paper_category: str) -> tuple[str, ...]:
    """The profile categories that cover a paper category: 'cs.CV' -> ('cs.cv', 'cs')."""
    low = paper_category.lower()
    return (low, *(low[:i] for i in range(len(low) - 1, 0, -1) if low[i] == "."))


# -- author names ----------------------------------------------------------------------------------

_TEX_ACCENT = re.compile(r"\\(?:[\'\"^`~=.]|[a-zA-Z]+\s*)")
_PARENS = re.compile(r"\([^)]*\)")


@dataclass(frozen=True, slots=True)
class AuthorName:
    """A name reduced for comparison: the given name and every possible surname.

    "Yann Le Cun" has initial "y", full given name "yann" and surnames {"cun", "lecun"};
    "Y. LeCun" has initial "y", no full given name (only an initial) and surnames {"lecun"}.
    A single word ("LeCun") has no given name at all and matches any.
    """

    initial: str  # "" when there is no given name
    full: str | None  # the given name when written out, None when only initials
    surnames: frozenset[str]


def _ascii_fold(text: str) -> str:
    if "\\" in text:
        text = _TEX_ACCENT.sub("", text)
    text = text.replace("{", "").replace("}", "")
    if text.isascii():  # most names: nothing to decompose, and 20 times faster
        return text.lower()
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).lower()


_NOT_ALNUM = re.compile(r"[^0-9a-z]")
_GIVEN_SPLIT = re.compile(r"[.\-'\s]+")


@functools.lru_cache(maxsize=200_000)
def author_name(name: str) -> AuthorName | None:
    """None when there is no name in it (an empty string, only an affiliation)."""
    folded = _ascii_fold(_PARENS.sub(" ", name)).replace(",", " ")
    words = [w for w in folded.split() if any(c.isalnum() for c in w)]
    if not words:
        return None
    squash = [_NOT_ALNUM.sub("", w) for w in words]
    initial, full = "", None
    if len(words) > 1:
        parts = [p for p in _GIVEN_SPLIT.split(words[0]) if p]
        initial = parts[0][0] if parts else ""
        if parts and "." not in words[0] and any(len(p) > 1 for p in parts):
            full = "".join(parts)
    start = 1 if len(words) > 1 else 0
    surnames = frozenset(s for s in ("".join(squash[i:]) for i in range(start, len(words))) if s)
    return AuthorName(initial=initial, full=full, surnames=surnames)


_NEEDS_PARSING = re.compile(r"[\\{}()]")  # TeX, braces, affiliations: see author_name


class SurnameFilter:
    """Which author names may have one of `surnames`, told without parsing most of them.

    Every surname `author_name` gives a plain ASCII name is a suffix of the whole name squashed
    (lower case, only letters and digits: "Yann Le Cun" -> "yannlecun" ends with "cun" and
    "lecun"), so a name none of `surnames` ends is known to have none of them. Names with
    accents, TeX, braces or parentheses are let through, to be parsed in full. A paper's
    authors are thousands of names, and only a few share a surname with someone followed.
    """

    def __init__(self, surnames: set[str] | frozenset[str]) -> None:
        self.surnames = frozenset(surnames)
        # the last n characters, for every length n of a surname (a slice longer than the
        # name gives all of it: a candidate only if it is a surname itself, so still a fair test)
        self.ends = tuple(slice(-n, None) for n in sorted({len(s) for s in self.surnames}))

    def may_match(self, name: str) -> bool:
        if not name.isascii() or _NEEDS_PARSING.search(name):
            return True
        squashed = _NOT_ALNUM.sub("", name.lower())
        return not self.surnames.isdisjoint(map(squashed.__getitem__, self.ends))


def given_compatible(a: AuthorName, b: AuthorName) -> bool:
    """'yann' ~ 'y.' ~ 'y'; 'yann' !~ 'yves'; a missing given name is compatible with any."""
    if not a.initial or not b.initial:
        return True
    if a.full is None or b.full is None:
        return a.initial == b.initial
    return a.full == b.full


def authors_match(followed: AuthorName, author: AuthorName) -> bool:
    return not followed.surnames.isdisjoint(author.surnames) and given_compatible(followed, author)


def joined_offsets(parts: tuple[str, ...], sep: str = ", ") -> list[tuple[int, int]]:
    """(start, end) of each part in sep.join(parts): where author and category hits point."""
    out, pos = [], 0
    for part in parts:
        out.append((pos, pos + len(part)))
        pos += len(part) + len(sep)
    return out
