"""Matching: which of today's papers each subscriber gets, why, and in which order.

A pure function of (profiles, papers); the semantics are in docs/matching.md, and `digest.naive`
holds their executable specification (the scoring rules and the obvious loop, `naive_match`).

`Matcher` compiles every subscriber's terms once into one Aho-Corasick automaton, scans each
paper's normalised text once, and then decides each subscriber with bit-set algebra over the
papers (one Python int per term, category, author, source), so the cost grows with the number of
hits and matches, not with subscribers × papers × terms.
"""

from __future__ import annotations

import datetime as dt
import gc
import re
from bisect import bisect_left
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from itertools import accumulate

import ahocorasick

from digest.models import Digest, Field, Hit, Match, Paper, Subscriber
from digest.naive import AUTHOR_WEIGHT, naive_match, score_hits, term_score, text_fields, tie_break_key
from digest.query import And, Node, Not, Term, atoms, parse_query
from digest.terms import (
    GAP_RE,
    AuthorName,
    CompiledTerm,
    author_name,
    category_keys,
    category_matches,
    compile_term,
    given_compatible,
    joined_offsets,
    token_key,
    token_matches,
)

__all__ = ["Matcher", "build_digest", "naive_match", "score_hits", "tie_break_key"]

_FIELDS_SCORE = {
    frozenset(c): term_score(c)
    for c in (("title",), ("abstract",), ("keywords",), ("title", "abstract"), ("title", "keywords"),
              ("abstract", "keywords"), ("title", "abstract", "keywords"))
}  # fmt: skip


def build_digest(subscriber: Subscriber, matches: Sequence[Match], date: dt.date) -> Digest:
    """The subscriber's best `max_papers` matches (given best first) and how many there were."""
    return Digest(
        subscriber=subscriber,
        date=date,
        matches=tuple(matches[: subscriber.max_papers]),
        total_matched=len(matches),
    )


# -- the fast matcher ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Profile:
    sub: Subscriber
    keywords: tuple[int, ...]  # term ids
    exclude: tuple[int, ...]
    follows: tuple[int, ...]  # follow ids
    categories: tuple[str, ...]  # as written, without repeats
    query: Node | None
    query_atoms: tuple[tuple[Term, bool], ...]
    signature: tuple[object, ...]  # everything that decides the matches


class Matcher:
    """Compile every profile once; then `match` any number of paper lists."""

    def __init__(self, subscribers: Sequence[Subscriber]) -> None:
        self._terms: list[CompiledTerm] = []
        self._term_ids: dict[str, int] = {}
        self._follows: list[tuple[str, AuthorName]] = []
        self._follow_ids: dict[str, int] = {}
        self._profiles = [self._compile(sub) for sub in subscribers]
        self._automaton = self._build_automaton()

    def _term(self, text: str) -> int | None:
        if text in self._term_ids:
            return self._term_ids[text]
        compiled = compile_term(text)
        if compiled is None:
            return None
        self._term_ids[text] = len(self._terms)
        self._terms.append(compiled)
        return self._term_ids[text]

    def _follow(self, text: str) -> int | None:
        if text in self._follow_ids:
            return self._follow_ids[text]
        name = author_name(text)
        if name is None:
            return None
        self._follow_ids[text] = len(self._follows)
        self._follows.append((text, name))
        return self._follow_ids[text]

    def _compile(self, sub: Subscriber) -> _Profile:
        def ids(texts: Iterable[str], make: object) -> tuple[int, ...]:
            found = (make(t) for t in dict.fromkeys(texts))  # type: ignore[operator]
            return tuple(i for i in found if i is not None)

        query = parse_query(sub.query) if sub.query else None
        query_atoms = tuple(atoms(query)) if query is not None else ()
        for term, _ in query_atoms:
            if term.field == "author":
                self._follow(term.text)
            elif term.field != "cat":
                self._term(term.text)
        categories = tuple(dict.fromkeys(sub.categories))
        return _Profile(
            sub=sub,
            keywords=ids(sub.keywords, self._term),
            exclude=ids(sub.exclude, self._term),
            follows=ids(sub.authors, self._follow),
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
        """One automaton for every term of every profile.

        Terms that normalise alike ("LLM" and "LLMs") share a key; each key's terms are split into
        groups by their case-sensitive words, and a run collects each group's hits in one list.
        """
        by_key: dict[str, dict[tuple[str | None, ...], list[int]]] = defaultdict(lambda: defaultdict(list))
        for tid, term in enumerate(self._terms):
            by_key[" ".join(term.keys)][term.exact].append(tid)
        self._group_tids: list[tuple[int, ...]] = []
        self._tid_group = [0] * len(self._terms)
        if not by_key:
            return None
        automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        for key, by_exact in by_key.items():
            plain, exact_groups = -1, []
            for exact, tids in by_exact.items():
                group = len(self._group_tids)
                self._group_tids.append(tuple(tids))
                for tid in tids:
                    self._tid_group[tid] = group
                if any(x is not None for x in exact):
                    exact_groups.append((exact, group))
                else:
                    plain = group
            # Keys are framed by spaces, like every token of the normalised text (see _scan), so
            # the automaton reports whole words only and never "graph" inside "paragraph".
            automaton.add_word(f" {key} ", (key.count(" ") + 1, len(key) + 2, plain, tuple(exact_groups)))
        automaton.make_automaton()
        return automaton

    # -- per run --------------------------------------------------------------------------------

    def match(self, papers: Sequence[Paper]) -> dict[str, list[Match]]:
        """Every subscriber's matches, best first and uncapped (see `build_digest`)."""
        # A run allocates millions of small tuples and no reference cycles; left on, the cyclic
        # garbage collector re-walks the growing heap again and again (half the time at 10,000
        # readers, measured). It is switched off for the run and restored as it was.
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            run = _Run(self, papers)
            # Profiles that ask for the same thing (every `all = true` reader, say) are decided once.
            decided: dict[tuple[object, ...], list[Match]] = {}
            out = {}
            for profile in self._profiles:
                found = decided.get(profile.signature)
                if found is None:
                    found = decided[profile.signature] = run.decide(profile)
                out[profile.sub.email] = list(found)
            return out
        finally:
            if gc_was_enabled:
                gc.enable()


def _set_bits(mask: int) -> list[int]:
    """The indices of the set bits, lowest first."""
    if mask.bit_count() <= 8:  # sparse: peel the lowest bit off, a few big-int operations each
        out = []
        while mask:
            low = mask & -mask
            out.append(low.bit_length() - 1)
            mask ^= low
        return out
    bits = bin(mask)[:1:-1]  # dense: one string, scanned in C
    found = []
    i = bits.find("1")
    while i >= 0:
        found.append(i)
        i = bits.find("1", i + 1)
    return found


def _mask(indices: Iterable[int]) -> int:
    m = 0
    for i in indices:
        m |= 1 << i
    return m


_SPLIT_RE = re.compile(r"([\w\u0300-\u036f]+)")  # TOKEN_RE once "_" is gone


class _Cache(dict[str, str]):
    """A dict that computes missing values, so `map(cache.__getitem__, ...)` stays in C."""

    def __init__(self, compute: Callable[[str], str]) -> None:
        super().__init__()
        self.compute = compute

    def __missing__(self, key: str) -> str:
        value = self[key] = self.compute(key)
        return value


_KeywordHit = tuple[tuple[Hit, ...], float, tuple[float, int, Match]]


class _Run:
    """One `Matcher.match` call: the papers scanned once, then each profile decided."""

    def __init__(self, matcher: Matcher, papers: Sequence[Paper]) -> None:
        self.m = matcher
        self.papers = papers
        n = len(papers)
        self.universe = (1 << n) - 1
        order = sorted(range(n), key=lambda p: tie_break_key(papers[p]))
        self.rank = [0] * n
        for r, p in enumerate(order):
            self.rank[p] = r
        self._keys = _Cache(token_key)
        self._gaps = _Cache(lambda gap: " " if GAP_RE.fullmatch(gap) else " \n ")
        # per term group: every hit as (paper, field, start, end), in text order
        self.sinks: list[list[tuple[int, Field, int, int]]] = [[] for _ in matcher._group_tids]
        if matcher._automaton is not None:
            for p, paper in enumerate(papers):
                for field, text in text_fields(paper):
                    if text:
                        self._scan(p, field, text)
        group_mask = [_mask({hit[0] for hit in sink}) for sink in self.sinks]
        self.term_mask = [group_mask[g] for g in matcher._tid_group]  # by term id
        self._keyword_hits: dict[int, dict[int, _KeywordHit]] = {}
        self._matches: dict[tuple[int, ...], tuple[float, int, Match]] = {}
        self._atom_masks: dict[tuple[int, tuple[str, ...]], int] = {}
        self._upvote_fail: dict[int, int] = {}
        self._category_hits: dict[str, dict[int, tuple[Hit, ...]]] = {}
        self.source_mask: dict[str, int] = defaultdict(int)
        self.category_papers: dict[str, int] = defaultdict(int)
        for p, paper in enumerate(papers):
            bit = 1 << p
            for source in paper.sources:
                self.source_mask[source] |= bit
            for category in paper.categories:
                for key in category_keys(category):
                    self.category_papers[key] |= bit
        self._scan_authors()

    def _scan(self, p: int, field: Field, text: str) -> None:
        """Find every term in one field of one paper.

        The normalised text is " tok tok \\n tok ... ": each token replaced by its comparison key
        (plural folded, lower case), and framed by single spaces; a gap that may not sit inside a
        phrase (a comma, a full stop, a bracket) becomes " \\n ". Vectorised on purpose: one
        re.split and a few C-level passes per field rather than a Python loop per token.
        """
        # Underscores are gaps; replacing them keeps every offset and lets the token pattern be a
        # single character class (three times faster than TOKEN_RE's alternation).
        pieces = _SPLIT_RE.split(text.replace("_", " "))  # [gap, token, gap, ..., token, gap]
        if len(pieces) < 3:
            return
        norm_pieces = pieces[:]
        norm_pieces[1::2] = map(self._keys.__getitem__, pieces[1::2])
        norm_pieces[2:-1:2] = map(self._gaps.__getitem__, pieces[2:-1:2])
        norm_pieces[0] = norm_pieces[-1] = " "
        norm_pos = list(accumulate(map(len, norm_pieces), initial=0))
        starts = norm_pos[1::2]  # where each token starts in the normalised text
        orig_pos = list(accumulate(map(len, pieces), initial=0))
        sinks = self.sinks
        for end, (ntok, klen, plain, exact_groups) in self.m._automaton.iter("".join(norm_pieces)):  # type: ignore[union-attr]
            i = bisect_left(starts, end - klen + 2)
            hit = (p, field, orig_pos[2 * i + 1], orig_pos[2 * (i + ntok)])
            if plain >= 0:
                sinks[plain].append(hit)
            for exact, group in exact_groups:
                if all(
                    x is None or token_matches(pieces[2 * (i + k) + 1], "", x) for k, x in enumerate(exact)
                ):
                    sinks[group].append(hit)

    def _scan_authors(self) -> None:
        # Index only the authors who share a surname with someone followed, by (surname,
        # initial): common surnames would otherwise make every follow compare hundreds of names.
        followed_surnames: set[str] = set()
        for _, followed in self.m._follows:
            followed_surnames |= followed.surnames
        by_initial: dict[tuple[str, str], list[tuple[int, int, AuthorName]]] = defaultdict(list)
        by_surname: dict[str, list[tuple[int, int, AuthorName]]] = defaultdict(list)
        for p, paper in enumerate(self.papers):
            for k, name in enumerate(paper.authors):
                parsed = author_name(name)
                if parsed is None or parsed.surnames.isdisjoint(followed_surnames):
                    continue
                for surname in parsed.surnames & followed_surnames:
                    by_initial[surname, parsed.initial].append((p, k, parsed))
                    by_surname[surname].append((p, k, parsed))
        self.follow_hits: list[dict[int, tuple[Hit, ...]]] = []
        self.follow_mask: list[int] = []
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
                offsets = joined_offsets(self.papers[p].authors)
                hits[p] = tuple(Hit(text, "author", *offsets[k]) for k in sorted(ks))
            self.follow_hits.append(hits)
            self.follow_mask.append(_mask(hits))

    # -- cached pieces ---------------------------------------------------------------------------

    def keyword_hits(self, tid: int) -> dict[int, _KeywordHit]:
        """paper -> the term's hits in it, what they add to the score, and the sort entry of the
        Match for a reader whom only this term brought the paper; built once per term."""
        cached = self._keyword_hits.get(tid)
        if cached is None:
            text = self.m._terms[tid].text
            by_paper: dict[int, list[Hit]] = {}
            for p, field, start, end in self.sinks[self.m._tid_group[tid]]:
                hit = Hit(text, field, start, end)
                found = by_paper.get(p)
                if found is None:
                    by_paper[p] = [hit]
                else:
                    found.append(hit)
            cached = {}
            papers, rank = self.papers, self.rank
            for p, hit_list in by_paper.items():
                hits = tuple(hit_list)
                score = _FIELDS_SCORE[frozenset(h.field for h in hits)]
                cached[p] = (hits, score, (-score, rank[p], Match(papers[p], score, hits)))
            self._keyword_hits[tid] = cached
        return cached

    def term_hits(self, tid: int, p: int, fields: tuple[str, ...]) -> tuple[Hit, ...]:
        found = self.keyword_hits(tid).get(p)
        return tuple(h for h in found[0] if h.field in fields) if found else ()

    def atom_mask(self, tid: int, fields: tuple[str, ...]) -> int:
        key = (tid, fields)
        if key not in self._atom_masks:
            sink = self.sinks[self.m._tid_group[tid]]
            self._atom_masks[key] = _mask({p for p, field, _, _ in sink if field in fields})
        return self._atom_masks[key]

    def upvote_fail(self, minimum: int) -> int:
        if minimum not in self._upvote_fail:
            self._upvote_fail[minimum] = _mask(
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
            for p in _set_bits(self.category_papers.get(category.lower(), 0)):
                cats = self.papers[p].categories
                cached[p] = tuple(
                    Hit(category, "category", s, e)
                    for pc, (s, e) in zip(cats, joined_offsets(cats), strict=True)
                    if category_matches(category, pc)
                )
            self._category_hits[category] = cached
        return cached

    def query_mask(self, node: Node) -> int:
        if isinstance(node, Term):
            return self.atom(node)
        if isinstance(node, Not):
            return self.universe & ~self.query_mask(node.item)
        masks = [self.query_mask(item) for item in node.items]
        out = masks[0]
        for mask in masks[1:]:
            out = out & mask if isinstance(node, And) else out | mask
        return out

    def atom(self, term: Term) -> int:
        if term.field == "cat":
            return self.category_papers.get(term.text.lower(), 0)
        if term.field == "author":
            return self.follow_mask[self.m._follow_ids[term.text]]
        return self.atom_mask(self.m._term_ids[term.text], term.fields)

    def atom_hits(self, term: Term, p: int) -> tuple[Hit, ...]:
        if term.field == "cat":
            return self.category_hits(term.text).get(p, ())
        if term.field == "author":
            return self.follow_hits[self.m._follow_ids[term.text]].get(p, ())
        return self.term_hits(self.m._term_ids[term.text], p, term.fields)

    # -- one profile -----------------------------------------------------------------------------

    def decide(self, prof: _Profile) -> list[Match]:
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
        followed &= allowed
        topic = once = twice = 0  # papers hit by at least one keyword, by two or more
        for tid in prof.keywords:
            mask = term_mask[tid]
            twice |= once & mask
            once |= mask
        topic = once
        query_mask = 0
        if prof.query is not None:
            query_mask = self.query_mask(prof.query)
            topic |= query_mask
        if sub.all or (not prof.keywords and prof.query is None and prof.categories):
            topic = self.universe
        if prof.categories:
            in_categories = 0
            for category in prof.categories:
                in_categories |= self.category_papers.get(category.lower(), 0)
            topic &= in_categories
        if sub.min_upvotes > 0:
            topic &= ~self.upvote_fail(sub.min_upvotes)
        matched = (topic & allowed) | followed
        if not matched:
            return []
        papers, rank = self.papers, self.rank
        positive = [t for t, pos in prof.query_atoms if pos]
        keyword_maps = [self.keyword_hits(tid) for tid in prof.keywords]
        follow_maps = [self.follow_hits[fid] for fid in prof.follows]
        category_maps = [self.category_hits(c) for c in prof.categories]
        out: list[tuple[float, int, Match]] = []
        if prof.query is not None:
            for p in _set_bits(matched):
                hits: list[Hit] = []
                for keyword_map in keyword_maps:
                    found = keyword_map.get(p)
                    if found is not None:
                        hits += found[0]
                if (query_mask >> p) & 1:
                    for term in positive:
                        hits += self.atom_hits(term, p)
                for hits_map in (*follow_maps, *category_maps):
                    hits += hits_map.get(p, ())
                # a query term may repeat a keyword: de-duplicate, and score from scratch
                final = tuple(dict.fromkeys(hits))
                score = score_hits(final)
                out.append((-score, rank[p], Match(papers[p], score, final)))
        else:
            # The hot path: a paper that exactly one keyword brought (and no followed author) gets
            # that (term, paper)'s ready-made Match, shared by every such reader; with categories,
            # the Match of that entry plus the paper's category hits, cached likewise.
            single = matched & once & ~twice & ~followed
            if single:
                cache = self._matches
                for tid, keyword_map in zip(prof.keywords, keyword_maps, strict=True):
                    mine = term_mask[tid] & single
                    if not mine:
                        continue
                    if not category_maps:
                        out += [keyword_map[p][2] for p in _set_bits(mine)]
                        continue
                    for p in _set_bits(mine):
                        base = keyword_map[p]
                        cas = [got for hits_map in category_maps if (got := hits_map.get(p)) is not None]
                        key = (-1, id(base), *map(id, cas))  # -1: never a paper index
                        entry = cache.get(key)
                        if entry is None:
                            hits = list(base[0])
                            for found_hits in cas:
                                hits += found_hits
                            entry = cache[key] = (-base[1], rank[p], Match(papers[p], base[1], tuple(hits)))
                        out.append(entry)
                matched &= ~single
            # The rest: combinations, cached by the (term, paper) entries they are made of, which
            # live as long as this run.
            cache = self._matches
            # which keywords hit each remaining paper, walking each keyword's bits of them
            found_at: dict[int, list[_KeywordHit]] = {p: [] for p in _set_bits(matched)}
            for tid, keyword_map in zip(prof.keywords, keyword_maps, strict=True):
                mine = term_mask[tid] & matched
                if mine:
                    for p in _set_bits(mine):
                        found_at[p].append(keyword_map[p])
            for p, kws in found_at.items():
                fos = [got for hits_map in follow_maps if (got := hits_map.get(p)) is not None]
                cas = [got for hits_map in category_maps if (got := hits_map.get(p)) is not None]
                key = (p, *map(id, kws), *map(id, fos), *map(id, cas))
                entry = cache.get(key)
                if entry is None:
                    hits = []
                    score = 0.0
                    for term_hits, term_score, _ in kws:
                        hits += term_hits
                        score += term_score
                    for found_hits in fos:
                        hits += found_hits
                        score += AUTHOR_WEIGHT
                    for found_hits in cas:
                        hits += found_hits
                    entry = cache[key] = (-score, rank[p], Match(papers[p], score, tuple(hits)))
                out.append(entry)
        out.sort()  # ranks are unique, so two Matches are never compared
        return [m for _, _, m in out]
