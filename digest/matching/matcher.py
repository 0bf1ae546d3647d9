"""Matching: which of today's papers each subscriber gets, why, and in which order.

A pure function of (profiles, papers); the semantics are in docs/matching.md, and `digest.matching.naive`
holds their executable specification (the obvious loop, `naive_match`); `digest.matching.scoring` the
scoring rules both share.

`Matcher` compiles every subscriber's terms once into one Aho-Corasick automaton, scans each
paper's normalised text once, and then decides each subscriber with bit-set algebra over the
papers (one Python int per term, category, author, source), so the cost grows with the number of
hits and of papers kept, not with subscribers × papers × terms:

- bit p stands for the paper ranked p-th by the tie-break order (upvotes, date, id), so among
  papers of equal score the lower bit is the better one;
- a subscriber's scores are summed bit-sliced: plane b holds bit b of every paper's score in half
  points, one big-int addition per term rather than one per (term, paper);
- `top` picks each reader's best k from the planes (a radix select, most significant plane
  first), and only the papers kept get their `Match`;
- a hit belongs to a (paper, term), not to a reader: each term's hits in each paper are made once
  and shared by every reader with that term (and by alike Matches); terms that hit the same
  places ("LLM", "LLMs") are one group, whose first term's hits are made during the scan and the
  others' the first time a kept paper needs them.

The bit-set and bit-plane helpers are in `digest.matching.bitsets`.
"""

from __future__ import annotations

import datetime as dt
import gc
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import accumulate
from typing import cast

import ahocorasick

from digest.core.models import Digest, Field, Hit, Match, Paper, Subscriber
from digest.matching.bitsets import Planes, add, best, constant_planes, mask, set_bits
from digest.matching.query import And, Node, Not, Term, atoms, parse_query
from digest.matching.scoring import AUTHOR_WEIGHT, score_hits, text_fields, tie_break_key
from digest.matching.terms import (
    GAP_RE,
    AuthorName,
    CompiledTerm,
    SurnameFilter,
    author_name,
    category_keys,
    category_matches,
    compile_term,
    fold_plural,
    given_compatible,
    joined_offsets,
    token_matches,
)

__all__ = ["Matcher", "build_digest", "score_hits", "tie_break_key"]


def build_digest(subscriber: Subscriber, matches: Sequence[Match], date: dt.date) -> Digest:
    """The subscriber's best `max_papers` matches (given best first) and how many there were."""
    return Digest(
        subscriber=subscriber,
        date=date,
        matches=tuple(matches[: subscriber.max_papers]),
        total_matched=len(matches),
    )


# -- compiled profiles -----------------------------------------------------------------------------


@dataclass(slots=True, eq=False)  # not frozen: made per reader, and a frozen __init__ is slower
class _Profile:
    sub: Subscriber
    keywords: tuple[int, ...]  # term ids
    exclude: tuple[int, ...]
    follows: tuple[int, ...]  # follow ids
    categories: tuple[tuple[str, str], ...]  # (as written, lower case), without repeats
    query: Node | None
    query_atoms: tuple[tuple[Term, bool], ...]
    signature: tuple[object, ...]  # everything that decides the matches


class Matcher:
    """Compile every profile once; then `top` (or `match`) any number of paper lists."""

    def __init__(self, subscribers: Sequence[Subscriber]) -> None:
        self._terms: list[CompiledTerm] = []
        self._term_ids: dict[str, int] = {}
        self._follows: list[tuple[str, AuthorName]] = []
        self._follow_ids: dict[str, int] = {}
        with _gc_paused():
            self._profiles = [self._compile(sub) for sub in subscribers]
            self._automaton = self._build_automaton()

    def _term(self, text: str) -> int | None:
        tid = self._term_ids.get(text)
        if tid is None and (compiled := compile_term(text)) is not None:
            tid = self._term_ids[text] = len(self._terms)
            self._terms.append(compiled)
        return tid

    def _follow(self, text: str) -> int | None:
        fid = self._follow_ids.get(text)
        if fid is None and (name := author_name(text)) is not None:
            fid = self._follow_ids[text] = len(self._follows)
            self._follows.append((text, name))
        return fid

    def _compile(self, sub: Subscriber) -> _Profile:
        def ids(
            texts: Iterable[str], known: dict[str, int], make: Callable[[str], int | None]
        ) -> tuple[int, ...]:
            out = []
            for text in dict.fromkeys(texts):
                i = known.get(text)
                if i is None:
                    i = make(text)
                if i is not None:
                    out.append(i)
            return tuple(out)

        query = parse_query(sub.query) if sub.query else None
        query_atoms = tuple(atoms(query)) if query is not None else ()
        for term, _ in query_atoms:
            if term.field == "author":
                self._follow(term.text)
            elif term.field != "cat":
                self._term(term.text)
        categories = tuple((c, c.lower()) for c in dict.fromkeys(sub.categories))
        return _Profile(
            sub=sub,
            keywords=ids(sub.keywords, self._term_ids, self._term),
            exclude=ids(sub.exclude, self._term_ids, self._term),
            follows=ids(sub.authors, self._follow_ids, self._follow),
            categories=categories,
            query=query,
            query_atoms=query_atoms,
            # tuple(): a Subscriber built in code may carry lists
            signature=(
                tuple(sub.keywords),
                tuple(sub.exclude),
                tuple(sub.authors),
                tuple(sub.categories),
                sub.query,
                sub.all,
                sub.min_upvotes,
                tuple(sub.sources),
            ),
        )

    def _build_automaton(self) -> ahocorasick.Automaton | None:
        """One automaton for every term of every profile, over texts written as word codes.

        Each distinct term word (its comparison key) gets a code of `_CODE_WIDTH` characters
        (`word_codes`), and a term is its words' codes joined by spaces; a run writes every text
        the same way (see `_Run._scan`). So a key can only match whole words, never "graph" inside
        "paragraph"; the texts the automaton reads are shorter; and since every word is as wide as
        every other, where a match starts and ends in the text follows from where it ends in the
        codes. (Codes of one character each would be shorter still, but the automaton looks a
        character up among a node's children one by one, and the root would have thousands.)

        Terms that normalise alike ("LLM" and "LLMs") share a key; each key's terms are split into
        groups by their case-sensitive words, and a group's terms hit the same places. A key's
        value says what a run does with a match: how many words it spans, and for the group
        without case-sensitive words (-1 when there is none) and for each group with them (and
        those words), the group and the text of its first term, which the run's hits carry.
        """
        by_key: dict[tuple[str, ...], dict[tuple[str | None, ...], list[int]]] = defaultdict(
            lambda: defaultdict(list)
        )
        for tid, term in enumerate(self._terms):
            by_key[term.keys][term.exact].append(tid)
        self._group_tids: list[tuple[int, ...]] = []
        self._tid_group = [0] * len(self._terms)
        words = dict.fromkeys(key for keys in by_key for key in keys)
        encode = _word_encoder(len(words) + 1)  # one more for every word no term has
        self.word_codes = {word: encode(i) for i, word in enumerate(words)}
        self.other_code = encode(len(words))
        if not by_key:
            return None
        automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        for keys, by_exact in by_key.items():
            plain: tuple[int, str] = (-1, "")
            exact_groups = []
            for exact, tids in by_exact.items():
                group = len(self._group_tids)
                self._group_tids.append(tuple(tids))
                for tid in tids:
                    self._tid_group[tid] = group
                first = self._terms[tids[0]].text
                if any(x is not None for x in exact):
                    exact_groups.append((exact, group, first))
                else:
                    plain = (group, first)
            code = " ".join([self.word_codes[key] for key in keys])
            automaton.add_word(code, (len(keys), *plain, tuple(exact_groups)))
        automaton.make_automaton()
        return automaton

    # -- per run --------------------------------------------------------------------------------

    def top(
        self, papers: Sequence[Paper], *, extra: Mapping[str, int] | None = None
    ) -> dict[str, tuple[list[Match], int]]:
        """Each subscriber's best `max_papers + extra[email]` matches, best first, and how many
        papers matched in all.

        The same as `match` cut to length, without building the matches nobody will see: the
        pipeline asks for `extra` papers more than a reader's `max_papers` to make up for those
        it leaves out because they were already emailed.
        """
        extra = extra or {}
        return self._run(papers, lambda sub: sub.max_papers + extra.get(sub.email, 0))

    def match(self, papers: Sequence[Paper]) -> dict[str, list[Match]]:
        """Every subscriber's matches, best first and uncapped (see `top` and `build_digest`)."""
        return {email: found for email, (found, _) in self._run(papers, lambda sub: None).items()}

    def _run(
        self, papers: Sequence[Paper], cap: Callable[[Subscriber], int | None]
    ) -> dict[str, tuple[list[Match], int]]:
        with _gc_paused():
            run = _Run(self, papers)
            # Profiles that ask for the same thing (every `all = true` reader, say) are decided once.
            decided: dict[tuple[object, ...], tuple[list[Match], int]] = {}
            out = {}
            for profile in self._profiles:
                k = cap(profile.sub)
                key = (k, *profile.signature)
                found = decided.get(key)
                if found is None:
                    found = decided[key] = run.decide(profile, k)
                out[profile.sub.email] = (list(found[0]), found[1])
            return out


@contextmanager
def _gc_paused() -> Iterator[None]:
    """The cyclic garbage collector off, then restored as it was, with what the block made
    handed straight to its oldest generation.

    Compiling profiles and a run allocate many small objects and no reference cycles; left on,
    the collector re-walks the growing heap again and again (a fifth of the compile time at
    10,000 readers, more in a process that has loaded much before). Merely turned back on, its
    next young pass would still walk every object the block made (some 500,000 matches, hits
    and tuples at 10,000 readers, a tenth of the time of `top`, and as long again when the
    middle generation's turn follows), only to find no garbage among them: they are acyclic,
    and they live on (the compiled profiles for the Matcher's life, the matches until sent).
    `gc.freeze()` then `gc.unfreeze()` moves every tracked object into the oldest generation
    in constant time; full collections still walk them, as they would have once promoted.
    Skipped when the program froze objects itself, since unfreezing would undo that.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            if gc.get_freeze_count() == 0:
                gc.freeze()
                gc.unfreeze()
            gc.enable()


# -- scoring, bit-sliced -------------------------------------------------------------------------


def field_planes(title: int, abstract: int, keywords: int) -> Planes:
    """One term's score in half points, bit-sliced, from the papers it hit in each field.

    `digest.matching.naive.term_score` doubled: title 6, abstract 4, keywords 2, and 1 more for each
    further field (title + abstract 7, abstract + keywords 5, all three 8). The tests check these
    planes against `term_score` for every combination of fields.
    """
    three = title & abstract & keywords
    two = ((title & abstract) | (title & keywords) | (abstract & keywords)) & ~three
    return (two, (title & ~three) | (keywords & ~title & ~abstract), (title | abstract) & ~three, three)


_AUTHOR_HALVES = int(2 * AUTHOR_WEIGHT)


# -- one run ---------------------------------------------------------------------------------------

_SPLIT_RE = re.compile(r"([\w\u0300-\u036f]+)")  # TOKEN_RE once "_" is gone

# Hits and Matches are NamedTuples: made from a tuple of their fields directly, they skip the
# generated __new__ (a Python call), which is most of their cost.
_new_hit = cast(Callable[[type[Hit], tuple[str, Field, int, int]], Hit], tuple.__new__)
_new_match = cast(Callable[[type[Match], tuple[Paper, float, tuple[Hit, ...]]], Match], tuple.__new__)


_CODE_WIDTH = 3  # characters per word code (see Matcher._build_automaton)


def _word_encoder(n: int) -> Callable[[int], str]:
    """Codes for n words: `_CODE_WIDTH` digits in the smallest base that has room for them,
    written with characters past Latin-1 (never a gap or a newline)."""
    base = 2
    while base**_CODE_WIDTH < n:
        base += 1

    def encode(i: int) -> str:
        digits = []
        for _ in range(_CODE_WIDTH):
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
            hits = self[p] = (_new_hit(Hit, (term, field, start, end)),)
        else:
            hits = self[p] = tuple([_new_hit(Hit, (term, *h[1:])) for h in of])
        return hits

    def __contains__(self, p: object) -> bool:
        return p in self.of

    def get(self, p: int, default: tuple[Hit, ...] | None = None) -> tuple[Hit, ...] | None:  # type: ignore[override]
        return self[p] if p in self.of else default


class _Run:
    """One `Matcher.top`/`match` call: the papers scanned once, then each profile decided.

    A hit belongs to a (paper, term), not to a reader: every term's hits in a paper are made once,
    here during the scan for the first term of each group and on first use for the others
    (`_AlsoHits`), and every reader who has the term shares them.
    """

    def __init__(self, matcher: Matcher, papers: Sequence[Paper]) -> None:
        self.m = matcher
        # bit p is the paper ranked p-th among equal scores
        self.papers = sorted(papers, key=tie_break_key)
        n = len(papers)
        self.universe = (1 << n) - 1
        codes, other = matcher.word_codes, matcher.other_code
        self._codes = _Codes(codes, other)
        self._gaps = _Cache(lambda gap: " " if GAP_RE.fullmatch(gap) else "\n")
        # per term group: paper -> the hits of its first term there, by field (title, abstract,
        # keywords) and in text order within a field
        group_hits: list[dict[int, tuple[Hit, ...]]] = [{} for _ in matcher._group_tids]
        # per term group, per field: the papers it hit there
        in_field: list[tuple[list[int], list[int], list[int]]] = [([], [], []) for _ in matcher._group_tids]
        for p, paper in enumerate(self.papers):
            found: defaultdict[int, list[Hit]] = defaultdict(list)
            if matcher._automaton is not None:
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
            if matcher._group_tids[g][0] == tid
            else _AlsoHits(group_hits[g], matcher._terms[tid].text)
            for tid, g in enumerate(matcher._tid_group)
        ]
        # per term group: the papers it hit in the title, the abstract, the keywords
        self.group_fields = [(mask(t), mask(a), mask(k)) for t, a, k in in_field]
        group_units = [(t | a | k, field_planes(t, a, k)) for t, a, k in self.group_fields]
        # by term id: (papers, score planes)
        self.term_units = [group_units[g] for g in matcher._tid_group]
        self.term_mask = [m for m, _ in self.term_units]
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

    def _scan(self, found: defaultdict[int, list[Hit]], field: Field, text: str) -> set[int]:
        """Find every term in one field of one paper: append each term group's hits to
        `found[group]`, and return the term groups hit.

        The text is split into pieces [gap, token, gap, ..., token, gap] and written as the
        automaton's keys are: each token as its word's code (`Matcher.word_codes`; one shared code
        for words no term has), each gap as one character, " " when a phrase may run across it
        (spaces, hyphens) and "\\n" when not (a comma, a full stop, a bracket). Every token then
        takes `_CODE_WIDTH` + 1 characters with the gap before it, so a match's last character
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
        matches = list(cast(ahocorasick.Automaton, self.m._automaton).iter("".join(codes)))
        if not matches:
            return groups
        at = list(accumulate(map(len, pieces), initial=0))  # where each piece starts in the text
        for end, (words, plain, term, exact_groups) in matches:
            last = 2 * (end // (_CODE_WIDTH + 1)) + 1  # the piece the match ends on
            first = last - 2 * (words - 1)
            start, stop = at[first], at[last + 1]
            if plain >= 0:
                groups.add(plain)
                found[plain].append(_new_hit(Hit, (term, field, start, stop)))
            for exact, group, exact_term in exact_groups:
                if all(x is None or token_matches(pieces[first + 2 * k], "", x) for k, x in enumerate(exact)):
                    groups.add(group)
                    found[group].append(_new_hit(Hit, (exact_term, field, start, stop)))
        return groups

    def _scan_authors(self) -> None:
        # Index only the authors who share a surname with someone followed, by (surname,
        # initial): common surnames would otherwise make every follow compare hundreds of names.
        followed_surnames: set[str] = set()
        for _, followed in self.m._follows:
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
        for text, followed in self.m._follows:
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
        self.follow_units = [(m, constant_planes(m, _AUTHOR_HALVES)) for m in self.follow_mask]

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

    def query_mask(self, node: Node) -> int:
        if isinstance(node, Term):
            return self.atom_mask(node)
        if isinstance(node, Not):
            return self.universe & ~self.query_mask(node.item)
        masks = [self.query_mask(item) for item in node.items]
        out = masks[0]
        for m in masks[1:]:
            out = out & m if isinstance(node, And) else out | m
        return out

    def atom_fields(self, term: Term) -> tuple[int, int, int]:
        """A text atom's papers per field (title, abstract, keywords), limited to its fields."""
        tid = self.m._term_ids.get(term.text)
        if tid is None:
            return (0, 0, 0)
        found = self.group_fields[self.m._tid_group[tid]]
        fields = term.fields
        return (
            found[0] if "title" in fields else 0,
            found[1] if "abstract" in fields else 0,
            found[2] if "keywords" in fields else 0,
        )

    def atom_mask(self, term: Term) -> int:
        if term.field == "cat":
            return self.category_papers.get(term.text.lower(), 0)
        if term.field == "author":
            fid = self.m._follow_ids.get(term.text)
            return 0 if fid is None else self.follow_mask[fid]
        t, a, k = self.atom_fields(term)
        return t | a | k

    def atom_hits(self, term: Term) -> tuple[dict[int, tuple[Hit, ...]], str | None]:
        """paper -> the hits of a query atom, and the one field they are limited to (None when
        they are not: a bare term, or a category or author atom, whose hits are its own)."""
        if term.field == "cat":
            return self.category_hits(term.text), None
        if term.field == "author":
            fid = self.m._follow_ids.get(term.text)
            return ({} if fid is None else self.follow_hits[fid]), None
        tid = self.m._term_ids.get(term.text)
        return ({} if tid is None else self.term_hits[tid]), term.field

    # -- one profile -----------------------------------------------------------------------------

    def decide(self, prof: _Profile, k: int | None) -> tuple[list[Match], int]:
        """The profile's best `k` matches (all when None), best first, and how many matched."""
        matched, query_mask = self.matched(prof)
        total = matched.bit_count()
        if not matched or (k is not None and k <= 0):
            return [], total
        parts = best(self.scores(prof, matched, query_mask), matched, k)
        if prof.query is not None:
            return self.query_matches(prof, parts, query_mask), total
        return self.plain_matches(prof, parts), total

    def matched(self, prof: _Profile) -> tuple[int, int]:
        """The papers the profile gets, and those its query is true for."""
        sub = prof.sub
        allowed = self.universe
        if sub.sources:
            allowed = 0
            for source in sub.sources:
                allowed |= self.source_mask.get(source, 0)
        term_mask = self.term_mask
        for tid in prof.exclude:
            allowed &= ~term_mask[tid]
        followed = 0
        for fid in prof.follows:
            followed |= self.follow_mask[fid]
        topic = 0
        for tid in prof.keywords:
            topic |= term_mask[tid]
        query_mask = 0
        if prof.query is not None:
            query_mask = self.query_mask(prof.query)
            topic |= query_mask
        if sub.all or (not prof.keywords and prof.query is None and prof.categories):
            topic = self.universe
        if prof.categories:
            in_categories = 0
            for _, key in prof.categories:
                in_categories |= self.category_papers.get(key, 0)
            topic &= in_categories
        if sub.min_upvotes > 0:
            topic &= ~self.upvote_fail(sub.min_upvotes)
        return (topic | followed) & allowed, query_mask

    def scores(self, prof: _Profile, matched: int, query_mask: int) -> list[int]:
        """Every matched paper's score in half points, bit-sliced (see `field_planes`)."""
        units: list[tuple[int, Planes]] = []  # (papers, planes) of each thing that scores
        if prof.query is None:
            term_units = self.term_units
            units = [term_units[tid] for tid in prof.keywords]
            if prof.follows:
                units += [self.follow_units[fid] for fid in prof.follows]
        else:
            # A query term may repeat a keyword, and hits are counted once per term text: gather
            # each text's papers per field from the keywords and the positive query atoms first.
            texts: dict[str, list[int]] = {}
            authors: dict[str, int] = {}
            for tid in prof.keywords:
                texts[self.m._terms[tid].text] = list(self.group_fields[self.m._tid_group[tid]])
            for fid in prof.follows:
                authors[self.m._follows[fid][0]] = self.follow_mask[fid]
            for term, positive in prof.query_atoms:
                if not positive or term.field == "cat" or not query_mask:
                    continue
                if term.field == "author":
                    authors[term.text] = authors.get(term.text, 0) | (self.atom_mask(term) & query_mask)
                    continue
                fields = texts.setdefault(term.text, [0, 0, 0])
                for i, found in enumerate(self.atom_fields(term)):
                    fields[i] |= found & query_mask
            for t, a, k in texts.values():
                units.append((t | a | k, field_planes(t, a, k)))
            for papers in authors.values():
                units.append((papers, constant_planes(papers, _AUTHOR_HALVES)))
        # Units that share no matched paper with the ones before them just OR into the planes
        # (nothing to carry: most papers are brought by one term); the others are added.
        p0 = p1 = p2 = p3 = occupied = 0
        overlapping = []
        for papers, planes in units:
            papers &= matched
            if not papers:
                continue
            if papers & occupied or len(planes) != 4:
                overlapping.append(planes)
            else:
                q0, q1, q2, q3 = planes
                p0, p1, p2, p3 = p0 | q0, p1 | q1, p2 | q2, p3 | q3
            occupied |= papers
        acc = [p0, p1, p2, p3]
        for planes in overlapping:
            add(acc, planes)
        while acc and not acc[-1] & matched:
            acc.pop()
        return acc

    def plain_matches(self, prof: _Profile, parts: list[tuple[int, int]]) -> list[Match]:
        """The Matches of a profile without a query, in the order of `parts`.

        A Match shows the paper's hits of the profile's keywords (in the profile's order), then
        of its followed authors, then of its categories, every one made before: each is a source
        of hits (paper -> hits). Only the few sources with a kept paper are asked, each about
        the kept papers it has; which they are is one big-int AND per source.
        """
        chosen = 0
        for _, part in parts:
            chosen |= part
        # (paper -> hits, which kept papers it has) of each source with a kept paper, in order
        term_hits, term_mask = self.term_hits, self.term_mask
        sources = [(term_hits[tid], kept) for tid in prof.keywords if (kept := term_mask[tid] & chosen)]
        if prof.follows:
            follow_hits, follow_mask = self.follow_hits, self.follow_mask
            sources += [
                (follow_hits[fid], kept) for fid in prof.follows if (kept := follow_mask[fid] & chosen)
            ]
        if prof.categories:
            category_papers = self.category_papers
            sources += [
                (self.category_hits(c), kept)
                for c, low in prof.categories
                if (kept := category_papers.get(low, 0) & chosen)
            ]
        out: list[Match] = []
        append = out.append
        all_papers = self.papers
        if len(sources) == 1 and sources[0][1] == chosen:  # one source, in every kept paper: common
            hits_in = sources[0][0]
            for half, part in parts:
                score = half / 2
                for p in set_bits(part):
                    append(_new_match(Match, (all_papers[p], score, hits_in[p])))
            return out
        # Each kept paper's hits, source by source in the profile's order, asking each source
        # only about the kept papers it has (a bit test when it has one, as it mostly does), so
        # that a term's hits are looked up, and made if need be (`_AlsoHits`), only where shown.
        hits_of: dict[int, tuple[Hit, ...]] = {}
        get = hits_of.get
        for hits_in, kept in sources:
            if kept & (kept - 1):
                for p in set_bits(kept):
                    hits_of[p] = get(p, ()) + hits_in[p]
            else:
                p = kept.bit_length() - 1
                hits_of[p] = get(p, ()) + hits_in[p]
        for half, part in parts:
            score = half / 2
            for p in set_bits(part):
                append(_new_match(Match, (all_papers[p], score, get(p, ()))))
        return out

    def query_matches(self, prof: _Profile, parts: list[tuple[int, int]], query_mask: int) -> list[Match]:
        """The Matches of a profile with a query, in the order of `parts`: the hits of its
        keywords, then (where the query is true) of its query's positive atoms, then of its
        followed authors and its categories, each hit once."""
        term_hits, follow_hits = self.term_hits, self.follow_hits
        keywords = [term_hits[tid] for tid in prof.keywords]
        atoms = [self.atom_hits(term) for term, positive in prof.query_atoms if positive]
        rest = [follow_hits[fid] for fid in prof.follows]
        rest += [self.category_hits(c) for c, _ in prof.categories]
        out: list[Match] = []
        all_papers = self.papers
        for half, part in parts:
            score = half / 2
            for p in set_bits(part):
                hits: list[Hit] = []
                for hits_in in keywords:
                    hits += hits_in.get(p, ())
                if (query_mask >> p) & 1:
                    for hits_in, field in atoms:
                        found = hits_in.get(p, ())
                        hits += found if field is None else [h for h in found if h.field == field]
                for hits_in in rest:
                    hits += hits_in.get(p, ())
                # a query term may repeat a keyword: each hit once
                out.append(_new_match(Match, (all_papers[p], score, tuple(dict.fromkeys(hits)))))
        return out
