"""Highlighting: where a profile's terms occur in a text, and that text escaped with them marked.

The spans follow the matcher's word rules (docs/matching.md: whole words, plurals folded,
acronyms in capitals only), found with `str.find` on lower-cased text where that gives what a
regex would, since a run has thousands of distinct terms. Used by the paper views (`views.py`)
and the feeds; holds no business logic.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup, escape

from digest.core.speed import escape_text, markup_unchecked
from digest.matching.terms import GAP_CHARS, TOKEN_CHARS, compile_term, token_matches

__all__ = ["MARK_CLOSE", "MARK_OPEN", "for_words", "highlight", "marked", "term_spans", "word_spans"]

MARK_OPEN = '<mark style="background-color:#fff1a8;color:#1f2328">'
MARK_CLOSE = "</mark>"


@lru_cache(maxsize=2048)
def _pattern(term: str) -> re.Pattern[str] | None:
    # Compiled once per term: `re`'s own cache holds 512 patterns, and a run has thousands of terms.
    words = term.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    if words[0][0].isalnum():
        pattern = r"(?<![\w\u0300-\u036f])" + pattern
    return re.compile(pattern, re.IGNORECASE)


@lru_cache(maxsize=4096)  # only texts or terms `str.find` cannot do go here: few
def _spans_of(text: str, term: str) -> tuple[tuple[int, int], ...]:
    pattern = _pattern(term)
    return tuple(m.span() for m in pattern.finditer(text)) if pattern is not None else ()


# Most texts and terms are ASCII, and there the pattern above says no more than: the term's words,
# lower-cased and one space apart, not right after a letter, digit or underscore. `str.find` on
# the lower-cased text finds that without compiling a pattern per term, which would be most of
# the cost of highlighting on a day with thousands of distinct terms.


@lru_cache(maxsize=65536)
def _needle(term: str) -> tuple[str, bool] | None:
    """The term as `str.find` looks for it, and whether it must start a word; None: use the regex."""
    words = term.split()
    if not words or not term.isascii():
        return None
    return " ".join(words).lower(), words[0][0].isalnum()


# What makes `str.find` and the regex disagree: whitespace but single spaces (the regex's \s+), and
# the letters IGNORECASE matches to ASCII ones that lower() does not (dotless i, long s, Kelvin,
# and the dotted capital I, whose lower case is two characters).
_NOT_PLAIN = re.compile("[^\\S ]| {2}|[\u0130\u0131\u017f\u212a]")
# Those letters but the dotted capital I, which the length test in `_plain_lower` catches.
_ODD_LETTERS = ("\u0131", "\u017f", "\u212a")


def _plain_lower(text: str) -> str | None:
    """`text` lower-cased, where `_find` gives what the regex would; else None.

    Not cached here: a view keeps it for each of its paper's texts (`_Base`).
    """
    lower = text.lower()
    if len(lower) != len(text):
        return None
    if text.isprintable():
        # The same test without the regex, which was a tenth of the time of building the views:
        # printable text has no whitespace but " ", and ASCII text none of those letters.
        if "  " in text or (not text.isascii() and any(c in text for c in _ODD_LETTERS)):
            return None
        return lower
    return None if _NOT_PLAIN.search(text) else lower


def _find(lower: str, needle: str, at_word: bool) -> list[tuple[int, int]]:
    spans = []
    size = len(needle)
    i = lower.find(needle)
    while i >= 0:
        before = lower[i - 1] if i else " "
        # inside a word: after a letter, digit, "_" or a combining accent (a decomposed "é")
        if at_word and (before.isalnum() or before == "_" or "\u0300" <= before <= "\u036f"):
            i = lower.find(needle, i + 1)
            continue
        spans.append((i, i + size))
        i = lower.find(needle, i + size)
    return spans


def term_spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """Where each term occurs in `text`, case-insensitively, starting at a word boundary."""
    lower = _plain_lower(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        spans += _term_spans(text, lower, term)
    return spans


def _term_spans(text: str, lower: str | None, term: str) -> Sequence[tuple[int, int]]:
    """`term_spans` for one term, with `_plain_lower(text)` computed by the caller."""
    needle = _needle(term) if lower is not None else None
    if needle is None or lower is None:
        return _spans_of(text, term)
    return _find(lower, *needle) if needle[0] in lower else ()


class _WordTerm(NamedTuple):
    needle: str  # what `_term_spans` looks for: the first folded word, without a final "y"
    others: tuple[str, ...]  # the other words so: a text without one of them cannot match
    tokens: re.Pattern[str]  # as many tokens as the term has words, from a candidate on
    words: tuple[tuple[str, str | None], ...]  # (key, exact) per word, for `token_matches`
    # The needle is the term's one word as compared, not an acronym: where it ends a word in the
    # lower-cased text, that word is the term's (folding a folded word changes nothing).
    whole: bool


@lru_cache(maxsize=65536)  # a run has a few thousand terms
def _word_term(term: str) -> _WordTerm | None:
    compiled = compile_term(term)
    if compiled is None:
        return None
    stems = [key[:-1] if key.endswith("y") and len(key) > 1 else key for key in compiled.keys]
    first, needle = compiled.keys[0], stems[0]
    token = f"({TOKEN_CHARS}+)"
    tokens = re.compile(token + f"(?:{GAP_CHARS}+{token})" * (len(compiled.keys) - 1))
    whole = needle == first and len(compiled.keys) == 1 and not compiled.case_sensitive
    words = tuple(zip(compiled.keys, compiled.exact, strict=True))
    return _WordTerm(needle, tuple(stems[1:]), tokens, words, whole)


# What may join the words of a phrase besides a space (terms.GAP_CHARS), each made a space.
_GAPS_AS_SPACES = str.maketrans(dict.fromkeys("-_\u2010\u2011", " "))
_NO_GAPS = re.compile("[^-_\u2010\u2011]*").fullmatch


def for_words(text: str) -> tuple[str, str | None]:
    """`text` with hyphens and underscores as spaces (one character for one: the offsets stay),
    as the matcher separates words, and its `_plain_lower`: what `word_spans` searches. Made
    once per text, not per term."""
    lower = _plain_lower(text)
    if not _NO_GAPS(text):
        text = text.translate(_GAPS_AS_SPACES)
        lower = lower.translate(_GAPS_AS_SPACES) if lower is not None else None
    return text, lower


def word_spans(text: str, lower: str | None, term: str) -> Sequence[tuple[int, int]]:
    """Where a profile term matches in a text by the matcher's rules (docs/matching.md): whole
    words, plurals folded, acronyms in capitals only. Each span covers the words matched.
    `text, lower` are `for_words(the text)`.

    The candidates are the places where the term's first folded word starts a word of the text
    (without a final "y", so that "query" finds "queries"), found by `_term_spans`; from each,
    the text's next words are checked against the term's with `token_matches`, as the matcher
    compares words. So "agent" is not marked inside "agentic", nor "SLAM" in "slam dunk" or
    "HI-SLAM2", while "model" marks all of "models", "queries" all of "query", and "vision
    language model" all of "vision-language models".
    """
    word_term = _word_term(term)
    if word_term is None:
        return ()
    if lower is not None and not all(stem in lower for stem in word_term.others):
        return ()  # most texts with a phrase's first word lack the others: no regex for them
    candidates = _term_spans(text, lower, word_term.needle)
    if not candidates:
        return ()
    spans = []
    for start, end in candidates:
        if word_term.whole and lower is not None:
            after = lower[end : end + 1]
            if not after or not (after.isalnum() or "\u0300" <= after <= "\u036f"):
                spans.append((start, end))  # the words themselves: the common case, no regex
                continue
        m = word_term.tokens.match(text, start)
        if m is not None and all(
            token_matches(word, key, exact)
            for word, (key, exact) in zip(m.groups(), word_term.words, strict=True)
        ):
            spans.append(m.span())
    return spans


def highlight(
    text: str,
    spans: Iterable[tuple[int, int]],
    *,
    mark_open: str = MARK_OPEN,
    mark_close: str = MARK_CLOSE,
) -> Markup:
    """`text` escaped, with the (possibly overlapping) spans wrapped in <mark>."""
    return marked(text, tuple(sorted(spans)), str(mark_open), str(mark_close))


def marked(text: str, spans: tuple[tuple[int, int], ...], mark_open: str, mark_close: str) -> Markup:
    merged: list[list[int]] = []
    size = len(text)
    for s, e in spans:
        start, end = max(0, s), min(size, e)
        if start >= end:
            continue
        if merged and start <= merged[-1][1]:
            merged[-1][1] = max(merged[-1][1], end)
        else:
            merged.append([start, end])
    if not merged:
        return escape(text)
    # Plain str pieces joined once: adding Markup objects escapes and allocates at every step.
    out: list[str] = []
    pos = 0
    for start, end in merged:
        out += (escape_text(text[pos:start]), mark_open, escape_text(text[start:end]), mark_close)
        pos = end
    out.append(escape_text(text[pos:]))
    return markup_unchecked("".join(out))
