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

This module compiles the profiles (terms, follows, the automaton); `digest.matching.scan` reads the
papers, `digest.matching.rank` decides each reader; the bit-set and bit-plane helpers are in
`digest.matching.bitsets`, and the tricks that lean on CPython's internals in `digest.core.speed`.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence

import ahocorasick

from digest.core.models import Digest, Match, Paper, Subscriber
from digest.core.speed import gc_paused
from digest.matching.query import atoms, parse_query
from digest.matching.rank import Profile, Run
from digest.matching.scan import word_encoder
from digest.matching.scoring import field_planes, score_hits, tie_break_key
from digest.matching.terms import AuthorName, CompiledTerm, author_name, compile_term

# field_planes, score_hits, tie_break_key: re-exported, the import path tests and older code use.
__all__ = ["Matcher", "build_digest", "field_planes", "score_hits", "tie_break_key"]


def build_digest(subscriber: Subscriber, matches: Sequence[Match], date: dt.date) -> Digest:
    """The subscriber's best `max_papers` matches (given best first) and how many there were."""
    return Digest(
        subscriber=subscriber,
        date=date,
        matches=tuple(matches[: subscriber.max_papers]),
        total_matched=len(matches),
    )


class Matcher:
    """Compile every profile once; then `top` (or `match`) any number of paper lists."""

    def __init__(self, subscribers: Sequence[Subscriber]) -> None:
        self.terms: list[CompiledTerm] = []
        self.term_ids: dict[str, int] = {}
        self.follows: list[tuple[str, AuthorName]] = []
        self.follow_ids: dict[str, int] = {}
        with gc_paused():
            self.profiles = [self._compile(sub) for sub in subscribers]
            self.automaton = self._build_automaton()

    def _term(self, text: str) -> int | None:
        tid = self.term_ids.get(text)
        if tid is None and (compiled := compile_term(text)) is not None:
            tid = self.term_ids[text] = len(self.terms)
            self.terms.append(compiled)
        return tid

    def _follow(self, text: str) -> int | None:
        fid = self.follow_ids.get(text)
        if fid is None and (name := author_name(text)) is not None:
            fid = self.follow_ids[text] = len(self.follows)
            self.follows.append((text, name))
        return fid

    def _compile(self, sub: Subscriber) -> Profile:
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
        return Profile(
            sub=sub,
            keywords=ids(sub.keywords, self.term_ids, self._term),
            exclude=ids(sub.exclude, self.term_ids, self._term),
            follows=ids(sub.authors, self.follow_ids, self._follow),
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

        Each distinct term word (its comparison key) gets a code of `CODE_WIDTH` characters
        (`word_codes`), and a term is its words' codes joined by spaces; a run writes every text
        the same way (see `Scan._scan`). So a key can only match whole words, never "graph" inside
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
        for tid, term in enumerate(self.terms):
            by_key[term.keys][term.exact].append(tid)
        self.group_tids: list[tuple[int, ...]] = []
        self.tid_group = [0] * len(self.terms)
        words = dict.fromkeys(key for keys in by_key for key in keys)
        encode = word_encoder(len(words) + 1)  # one more for every word no term has
        self.word_codes = {word: encode(i) for i, word in enumerate(words)}
        self.other_code = encode(len(words))
        if not by_key:
            return None
        automaton = ahocorasick.Automaton(ahocorasick.STORE_ANY, ahocorasick.KEY_STRING)
        for keys, by_exact in by_key.items():
            plain: tuple[int, str] = (-1, "")
            exact_groups = []
            for exact, tids in by_exact.items():
                group = len(self.group_tids)
                self.group_tids.append(tuple(tids))
                for tid in tids:
                    self.tid_group[tid] = group
                first = self.terms[tids[0]].text
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
        with gc_paused():
            run = Run(self, papers)
            # Profiles that ask for the same thing (every `all = true` reader, say) are decided once.
            decided: dict[tuple[object, ...], tuple[list[Match], int]] = {}
            out = {}
            for profile in self.profiles:
                k = cap(profile.sub)
                key = (k, *profile.signature)
                found = decided.get(key)
                if found is None:
                    found = decided[key] = run.decide(profile, k)
                out[profile.sub.email] = (list(found[0]), found[1])
            return out
