"""Ranking: each reader's papers decided from a `Scan`, scored and cut to their best k.

`Run` adds to the scanned papers what each compiled profile (`Profile`) asks: which papers it
gets (`matched`: bit-set algebra over term, author, category and source sets, queries
included), their scores summed bit-sliced (`scores`: plane b holds bit b of every paper's score
in half points, one big-int addition per term rather than one per (term, paper)), the best k
picked from the planes (`digest.matching.bitsets.best`), and only for the papers kept, the
`Match`es with their hits. The rules are docs/matching.md's and `digest.matching.naive`'s.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from digest.core.models import Hit, Match, Subscriber
from digest.core.speed import tuple_maker
from digest.matching.bitsets import Planes, add, best, constant_planes, set_bits
from digest.matching.query import And, Node, Not, Term
from digest.matching.scan import Scan
from digest.matching.scoring import AUTHOR_HALVES, field_planes

__all__ = ["Profile", "Run"]


@functools.lru_cache(maxsize=4096)
def score_of(half: int) -> float:
    """A match's score from the count of half points it ranked by. The same few dozen values go
    into a run's million Matches: each one float, not one for every reader and part (300,000 of
    them, ~8 MB, at 100,000 readers)."""
    return half / 2


# Matches are NamedTuples made from a tuple of their fields (digest.core.speed.tuple_maker).
new_match = tuple_maker(Match)


@dataclass(slots=True, eq=False)  # not frozen: made per reader, and a frozen __init__ is slower
class Profile:
    """A subscriber's profile compiled against the matcher's terms and follows."""

    sub: Subscriber
    keywords: tuple[int, ...]  # term ids
    exclude: tuple[int, ...]
    follows: tuple[int, ...]  # follow ids
    categories: tuple[tuple[str, str], ...]  # (as written, lower case), without repeats
    query: Node | None
    query_atoms: tuple[tuple[Term, bool], ...]
    signature: tuple[object, ...]  # everything that decides the matches


class Run(Scan):
    """One `Matcher.top`/`match` call: the papers scanned once (`Scan`), then each profile decided."""

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
        tid = self.m.term_ids.get(term.text)
        if tid is None:
            return (0, 0, 0)
        found = self.group_fields[self.m.tid_group[tid]]
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
            fid = self.m.follow_ids.get(term.text)
            return 0 if fid is None else self.follow_mask[fid]
        t, a, k = self.atom_fields(term)
        return t | a | k

    def atom_hits(self, term: Term) -> tuple[dict[int, tuple[Hit, ...]], str | None]:
        """paper -> the hits of a query atom, and the one field they are limited to (None when
        they are not: a bare term, or a category or author atom, whose hits are its own)."""
        if term.field == "cat":
            return self.category_hits(term.text), None
        if term.field == "author":
            fid = self.m.follow_ids.get(term.text)
            return ({} if fid is None else self.follow_hits[fid]), None
        tid = self.m.term_ids.get(term.text)
        return ({} if tid is None else self.term_hits[tid]), term.field

    # -- one profile -----------------------------------------------------------------------------

    def decide(self, prof: Profile, k: int | None) -> tuple[list[Match], int]:
        """The profile's best `k` matches (all when None), best first, and how many matched."""
        matched, query_mask = self.matched(prof)
        total = matched.bit_count()
        if not matched or (k is not None and k <= 0):
            return [], total
        parts = best(self.scores(prof, matched, query_mask), matched, k)
        if prof.query is not None:
            return self.query_matches(prof, parts, query_mask), total
        return self.plain_matches(prof, parts), total

    def matched(self, prof: Profile) -> tuple[int, int]:
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

    def scores(self, prof: Profile, matched: int, query_mask: int) -> list[int]:
        """Every matched paper's score in half points, bit-sliced (see `field_planes`)."""
        units: list[tuple[int, Planes]]  # (papers, planes) of each thing that scores
        if prof.query is None:
            term_units = self.term_units
            units = [term_units[tid] for tid in prof.keywords]
            if prof.follows:
                units += [self.follow_units[fid] for fid in prof.follows]
        else:
            units = self.query_units(prof, query_mask)
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

    def query_units(self, prof: Profile, query_mask: int) -> list[tuple[int, Planes]]:
        """(papers, score planes) of each text and author that scores for a profile with a query.

        Apart from `scores` so that the hot path of the many profiles without one stays a
        list comprehension; a call per profile with a query costs nothing that shows.
        """
        units: list[tuple[int, Planes]] = []
        # A query term may repeat a keyword, and hits are counted once per term text: gather
        # each text's papers per field from the keywords and the positive query atoms first.
        texts: dict[str, list[int]] = {}
        authors: dict[str, int] = {}
        for tid in prof.keywords:
            texts[self.m.terms[tid].text] = list(self.group_fields[self.m.tid_group[tid]])
        for fid in prof.follows:
            authors[self.m.follows[fid][0]] = self.follow_mask[fid]
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
            units.append((papers, constant_planes(papers, AUTHOR_HALVES)))
        return units

    def plain_matches(self, prof: Profile, parts: list[tuple[int, int]]) -> list[Match]:
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
                score = score_of(half)
                for p in set_bits(part):
                    append(new_match(Match, (all_papers[p], score, hits_in[p])))
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
            score = score_of(half)
            for p in set_bits(part):
                append(new_match(Match, (all_papers[p], score, get(p, ()))))
        return out

    def query_matches(self, prof: Profile, parts: list[tuple[int, int]], query_mask: int) -> list[Match]:
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
            score = score_of(half)
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
                out.append(new_match(Match, (all_papers[p], score, tuple(dict.fromkeys(hits)))))
        return out
