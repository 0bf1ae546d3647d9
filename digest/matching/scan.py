"""Scanning: today's papers read once, every term's hits and papers found, as bit sets.

One `Scan` per `Matcher.top`/`match` call. Each paper's texts are written as word codes and run
through the matcher's Aho-Corasick automaton (`Scan._scan`); followed authors are found through
an index of the surnames followed (`Scan._scan_authors`). What comes out is, per term and per
followed author, the papers it hit (one Python int, bit p for the p-th paper in tie-break order)
and its hits in each paper, shared by every reader who has it. Deciding each reader from these
is `digest.matching.rank`. Pure: papers in, sets out.
"""

from __future__ import annotations

import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from itertools import accumulate
from typing import Protocol, cast

import ahocorasick

from digest.core.models import Field, Hit, Paper
from digest.core.speed import tuple_maker
from digest.matching.bitsets import constant_planes, mask, set_bits
from digest.matching.scoring import AUTHOR_HALVES, field_planes, text_fields, tie_break_key
from digest.matching.terms import (
    GAP_RE,
    AuthorName,
    CompiledTerm,
    SurnameFilter,
    author_name,
    category_keys,
    category_matches,
    fold_plural,
    given_compatible,
    joined_offsets,
    token_matches,
)

__all__ = ["CODE_WIDTH", "Compiled", "Scan", "word_encoder"]

_SPLIT_RE = re.compile(r"([\w\u0300-\u036f]+)")  # TOKEN_RE once "_" is gone

# Hits are NamedTuples made from a tuple of their fields (digest.core.speed.tuple_maker).
new_hit = tuple_maker(Hit)


class Compiled(Protocol):
    """What a scan reads of the compiled profiles (`digest.matching.matcher.Matcher`)."""

    terms: list[CompiledTerm]  # by term id
    term_ids: dict[str, int]  # term text -> id
    follows: list[tuple[str, AuthorName]]  # by follow id: (as written, parsed)
    follow_ids: dict[str, int]
    group_tids: list[tuple[int, ...]]  # by term group: its term ids, the first one's hits made
    tid_group: list[int]  # by term id: its group
    word_codes: dict[str, str]
    other_code: str
    automaton: ahocorasick.Automaton | None


CODE_WIDTH = 3  # characters per word code (see Matcher._build_automaton)


def word_encoder(n: int) -> Callable[[int], str]:
    """Codes for n words: `CODE_WIDTH` digits in the smallest base that has room for them,
    written with characters past Latin-1 (never a gap or a newline)."""
    base = 2
    while base**CODE_WIDTH < n:
        base += 1

    def encode(i: int) -> str:
        digits = []
        for _ in range(CODE_WIDTH):
            i, digit = divmod(i, base)
            digits.append(chr(0x100 + digit))
        return "".join(digits)

    return encode


class _Cache(dict[str, str]):
    """A dict that computes missing values, so `map(cache.__getitem__, ...)` stays in C."""

    def __init__(self, compute: Callable[[str], str]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: str) -> str:
        value = self[key] = self.compute(key)
        return value


class _Codes(dict[str, str]):
    """Text token -> the code of its word (`token_key`, written out) in `Matcher.word_codes`, or
    `other` for words no term has.

    Filled as tokens are met, so `map(codes.__getitem__, tokens)` stays in C; a run meets some
    20,000 distinct tokens, so the miss is written out rather than calling through `_Cache`.
    """

    def __init__(self, codes: dict[str, str], other: str) -> None:
        super().__init__()
        self.codes, self.other = codes, other

    def __missing__(self, token: str) -> str:
        code = self[token] = self.codes.get(fold_plural(token).lower(), self.other)
        return code


class _AlsoHits(dict[int, tuple[Hit, ...]]):
    """paper -> the hits of a term that hits where the first term of its group does (`of`),
    made on first use: the same places, with this term's text.

    For lookups only (`[p]`, `get`, `in`), which is all a run does with hits: iterating it would
    show only the papers asked about so far.
    """

    def __init__(self, of: dict[int, tuple[Hit, ...]], term: str) -> None:
        super().__init__()
        self.of, self.term = of, term

    def __missing__(self, p: int) -> tuple[Hit, ...]:
        term, of = self.term, self.of[p]
        hits: tuple[Hit, ...]
        if len(of) == 1:  # most often: no list to build
            _, field, start, end = of[0]
            hits = self[p] = (new_hit(Hit, (term, field, start, end)),)
        else:
            hits = self[p] = tuple([new_hit(Hit, (term, *h[1:])) for h in of])
        return hits

    def __contains__(self, p: object) -> bool:
        return p in self.of

    def get(self, p: int, default: tuple[Hit, ...] | None = None) -> tuple[Hit, ...] | None:  # type: ignore[override]
        return self[p] if p in self.of else default


class Scan:
    """The papers of one `Matcher.top`/`match` call, scanned once for every term and author.

    A hit belongs to a (paper, term), not to a reader: every term's hits in a paper are made once,
    here during the scan for the first term of each group and on first use for the others
    (`_AlsoHits`), and every reader who has the term shares them.
    """

    def __init__(self, matcher: Compiled, papers: Sequence[Paper]) -> None:
        self.m = matcher
        # bit p is the paper ranked p-th among equal scores
        self.papers = sorted(papers, key=tie_break_key)
        n = len(papers)
        self.universe = (1 << n) - 1
        self._codes = _Codes(matcher.word_codes, matcher.other_code)
        self._gaps = _Cache(lambda gap: " " if GAP_RE.fullmatch(gap) else "\n")
        self._scan_texts()
        self._upvote_fail: dict[int, int] = {}
        self._category_hits: dict[str, dict[int, tuple[Hit, ...]]] = {}
        self.source_mask: dict[str, int] = defaultdict(int)
        self.category_papers: dict[str, int] = defaultdict(int)
        for p, paper in enumerate(self.papers):
            bit = 1 << p
            for source in paper.sources:
                self.source_mask[source] |= bit
            for category in paper.categories:
                for key in category_keys(category):
                    self.category_papers[key] |= bit
        self._scan_authors()

    def _scan_texts(self) -> None:
        """Every term's hits and papers, per field: `term_hits`, `group_fields`, `term_units`,
        `term_mask`."""
        matcher = self.m
        # per term group: paper -> the hits of its first term there, by field (title, abstract,
        # keywords) and in text order within a field
        group_hits: list[dict[int, tuple[Hit, ...]]] = [{} for _ in matcher.group_tids]
        # per term group, per field: the papers it hit there
        in_field: list[tuple[list[int], list[int], list[int]]] = [([], [], []) for _ in matcher.group_tids]
        for p, paper in enumerate(self.papers):
            found: defaultdict[int, list[Hit]] = defaultdict(list)
            if matcher.automaton is not None:
                for i, (field, text) in enumerate(text_fields(paper)):
                    if text:
                        for group in self._scan(found, field, text):
                            in_field[group][i].append(p)
            for group, hits in found.items():
                group_hits[group][p] = tuple(hits)
        # per term id: paper -> the term's hits. A group's other terms ("LLMs" beside "LLM") hit
        # the same places; their hits are made when a kept paper asks for them, since most
        # (term, paper) pairs of them are never shown (60% at 10,000 readers), and a hit per
        # term at every match was half the hits of a run.
        self.term_hits: list[dict[int, tuple[Hit, ...]]] = [
            group_hits[g]
            if matcher.group_tids[g][0] == tid
            else _AlsoHits(group_hits[g], matcher.terms[tid].text)
            for tid, g in enumerate(matcher.tid_group)
        ]
        # per term group: the papers it hit in the title, the abstract, the keywords
        self.group_fields = [(mask(t), mask(a), mask(k)) for t, a, k in in_field]
        group_units = [(t | a | k, field_planes(t, a, k)) for t, a, k in self.group_fields]
        # by term id: (papers, score planes)
        self.term_units = [group_units[g] for g in matcher.tid_group]
        self.term_mask = [m for m, _ in self.term_units]

    def _scan(self, found: defaultdict[int, list[Hit]], field: Field, text: str) -> set[int]:
        """Find every term in one field of one paper: append each term group's hits to
        `found[group]`, and return the term groups hit.

        The text is split into pieces [gap, token, gap, ..., token, gap] and written as the
        automaton's keys are: each token as its word's code (`Matcher.word_codes`; one shared code
        for words no term has), each gap as one character, " " when a phrase may run across it
        (spaces, hyphens) and "\\n" when not (a comma, a full stop, a bracket). Every token then
        takes `CODE_WIDTH` + 1 characters with the gap before it, so a match's last character
        says which token it ends on, and its offsets in the text are read off the pieces'
        lengths. Vectorised on purpose: one re.split and a few C-level passes per field rather
        than a Python loop per token.
        """
        # Underscores are gaps; replacing them keeps every offset and lets the token pattern be a
        # single character class (three times faster than TOKEN_RE's alternation).
        pieces = _SPLIT_RE.split(text.replace("_", " "))
        groups: set[int] = set()
        if len(pieces) < 3:
            return groups
        codes = pieces[:]
        codes[1::2] = map(self._codes.__getitem__, pieces[1::2])
        codes[2:-1:2] = map(self._gaps.__getitem__, pieces[2:-1:2])
        codes[0] = codes[-1] = "\n"
        matches = list(cast(ahocorasick.Automaton, self.m.automaton).iter("".join(codes)))
        if not matches:
            return groups
        at = list(accumulate(map(len, pieces), initial=0))  # where each piece starts in the text
        for end, (words, plain, term, exact_groups) in matches:
            last = 2 * (end // (CODE_WIDTH + 1)) + 1  # the piece the match ends on
            first = last - 2 * (words - 1)
            start, stop = at[first], at[last + 1]
            if plain >= 0:
                groups.add(plain)
                found[plain].append(new_hit(Hit, (term, field, start, stop)))
            for exact, group, exact_term in exact_groups:
                if all(x is None or token_matches(pieces[first + 2 * k], "", x) for k, x in enumerate(exact)):
                    groups.add(group)
                    found[group].append(new_hit(Hit, (exact_term, field, start, stop)))
        return groups

    def _scan_authors(self) -> None:
        # Index only the authors who share a surname with someone followed, by (surname,
        # initial): common surnames would otherwise make every follow compare hundreds of names.
        followed_surnames: set[str] = set()
        for _, followed in self.m.follows:
            followed_surnames |= followed.surnames
        by_initial: dict[tuple[str, str], list[tuple[int, int, AuthorName]]] = defaultdict(list)
        by_surname: dict[str, list[tuple[int, int, AuthorName]]] = defaultdict(list)
        may_match = SurnameFilter(followed_surnames).may_match
        for p, paper in enumerate(self.papers):
            for k, name in enumerate(paper.authors):
                if not may_match(name):
                    continue
                parsed = author_name(name)
                if parsed is None or parsed.surnames.isdisjoint(followed_surnames):
                    continue
                for surname in parsed.surnames & followed_surnames:
                    by_initial[surname, parsed.initial].append((p, k, parsed))
                    by_surname[surname].append((p, k, parsed))
        self.follow_hits: list[dict[int, tuple[Hit, ...]]] = []
        self.follow_mask: list[int] = []
        offsets: dict[int, list[tuple[int, int]]] = {}  # per paper, made once for all its followers
        for text, followed in self.m.follows:
            found: dict[int, set[int]] = defaultdict(set)
            for surname in followed.surnames:
                if followed.initial:
                    candidates = [
                        *by_initial.get((surname, followed.initial), ()),
                        *by_initial.get((surname, ""), ()),
                    ]
                else:
                    candidates = by_surname.get(surname, [])
                for p, k, parsed in candidates:
                    if given_compatible(followed, parsed):
                        found[p].add(k)
            hits = {}
            for p, ks in found.items():
                at = offsets.get(p)
                if at is None:
                    at = offsets[p] = joined_offsets(self.papers[p].authors)
                hits[p] = tuple([Hit(text, "author", *at[k]) for k in sorted(ks)])
            self.follow_hits.append(hits)
            self.follow_mask.append(mask(hits))
        self.follow_units = [(m, constant_planes(m, AUTHOR_HALVES)) for m in self.follow_mask]

    # -- cached pieces ---------------------------------------------------------------------------

    def upvote_fail(self, minimum: int) -> int:
        if minimum not in self._upvote_fail:
            self._upvote_fail[minimum] = mask(
                p
                for p, paper in enumerate(self.papers)
                if paper.upvotes is not None and paper.upvotes < minimum
            )
        return self._upvote_fail[minimum]

    def category_hits(self, category: str) -> dict[int, tuple[Hit, ...]]:
        """paper -> the hits of a profile category in it, built once per category."""
        cached = self._category_hits.get(category)
        if cached is None:
            cached = {}
            for p in set_bits(self.category_papers.get(category.lower(), 0)):
                cats = self.papers[p].categories
                cached[p] = tuple(
                    Hit(category, "category", s, e)
                    for pc, (s, e) in zip(cats, joined_offsets(cats), strict=True)
                    if category_matches(category, pc)
                )
            self._category_hits[category] = cached
        return cached

    # -- queries ---------------------------------------------------------------------------------
