"""The reference for matching: the scoring rules and the obvious loop, by brute force.

`naive_match` decides every (subscriber, paper) pair on its own with a compiled regex per term:
slow, and simple enough to read as the executable specification of docs/matching.md. The fast
matcher (`digest.matching.matcher.Matcher`) is tested and benchmarked against it, and shares with it the
word-level rules of `digest.matching.terms`, the query parser, and the scoring and order below.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable, Sequence

from digest.core.models import Hit, Match, Paper, Subscriber
from digest.matching.query import Node, Term, atoms, evaluate, parse_query
from digest.matching.scoring import score_hits, text_fields, tie_break_key
from digest.matching.terms import (
    GAP_CHARS,
    TOKEN_CHARS,
    CompiledTerm,
    author_name,
    authors_match,
    category_matches,
    compile_term,
    joined_offsets,
    token_matches,
)

# -- the loop ------------------------------------------------------------------------------------

_NOT_AFTER = rf"(?!{TOKEN_CHARS})"
_TOKEN_CHAR = re.compile(TOKEN_CHARS)


@functools.lru_cache(maxsize=50_000)
def _term_regex(text: str) -> tuple[re.Pattern[str], re.Pattern[str], CompiledTerm] | None:
    """A loose pattern (each word's stem, then any word characters), verified per token.

    Two compilations: case-sensitive for lower-cased text (re's IGNORECASE and a leading
    look-behind each make a search some 15 times slower), IGNORECASE for the rare text whose
    lower-casing changes its length. The word boundary before the match is checked by hand.
    """
    term = compile_term(text)
    if term is None:
        return None
    words = []
    for key in term.keys:
        stem = key[:-1] if key.endswith("y") else key
        words.append(f"({re.escape(stem)}{TOKEN_CHARS}*)")
    pattern = f"{GAP_CHARS}+".join(words) + _NOT_AFTER
    return re.compile(pattern), re.compile(pattern, re.IGNORECASE), term


def _naive_text_hits(text: str, fields: Iterable[str], paper: Paper) -> list[Hit]:
    compiled = _term_regex(text)
    if compiled is None:
        return []
    lower_regex, ignorecase_regex, term = compiled
    hits = []
    for field, value in text_fields(paper):
        if field not in fields:
            continue
        haystack = value.lower()
        regex = lower_regex
        if len(haystack) != len(value):
            haystack, regex = value, ignorecase_regex
        pos = 0
        while (m := regex.search(haystack, pos)) is not None:
            start = pos = m.start()
            pos += 1
            if start and _TOKEN_CHAR.match(haystack, start - 1):
                continue  # inside a word
            words = [value[m.start(i) : m.end(i)] for i in range(1, len(term.keys) + 1)]
            if all(token_matches(w, k, x) for w, k, x in zip(words, term.keys, term.exact, strict=True)):
                hits.append(Hit(text, field, start, m.end()))
    return hits


def _naive_author_hits(text: str, paper: Paper) -> list[Hit]:
    followed = author_name(text)
    if followed is None:
        return []
    hits = []
    for name, (s, e) in zip(paper.authors, joined_offsets(paper.authors), strict=True):
        parsed = author_name(name)
        if parsed is not None and authors_match(followed, parsed):
            hits.append(Hit(text, "author", s, e))
    return hits


def _naive_category_hits(category: str, paper: Paper) -> list[Hit]:
    cats = paper.categories
    return [
        Hit(category, "category", s, e)
        for pc, (s, e) in zip(cats, joined_offsets(cats), strict=True)
        if category_matches(category, pc)
    ]


def _naive_atom_hits(term: Term, paper: Paper) -> list[Hit]:
    if term.field == "cat":
        return _naive_category_hits(term.text, paper)
    if term.field == "author":
        return _naive_author_hits(term.text, paper)
    return _naive_text_hits(term.text, term.fields, paper)


_EVERYWHERE = ("title", "abstract", "keywords")


def _naive_one(sub: Subscriber, query: Node | None, paper: Paper) -> Match | None:
    if sub.sources and not set(sub.sources) & set(paper.sources):
        return None
    if any(_naive_text_hits(term, _EVERYWHERE, paper) for term in sub.exclude):
        return None
    keyword_hits = [h for term in sub.keywords for h in _naive_text_hits(term, _EVERYWHERE, paper)]
    query_true, query_hits = _naive_query(query, paper)
    author_hits = [h for name in sub.authors for h in _naive_author_hits(name, paper)]
    category_hits = [h for c in sub.categories for h in _naive_category_hits(c, paper)]
    topic = bool(keyword_hits) or query_true or _naive_topic_without_hits(sub, query)
    in_categories = not sub.categories or bool(category_hits)
    upvotes_ok = paper.upvotes is None or paper.upvotes >= sub.min_upvotes
    if not author_hits and not (topic and in_categories and upvotes_ok):
        return None
    final = tuple(dict.fromkeys([*keyword_hits, *query_hits, *author_hits, *category_hits]))
    return Match(paper, score_hits(final), final)


def _naive_query(query: Node | None, paper: Paper) -> tuple[bool, list[Hit]]:
    """Whether the query is true for the paper, and then the hits of its positive atoms."""
    if query is None:
        return False, []
    found_by_atom = {atom: _naive_atom_hits(atom, paper) for atom, _ in atoms(query)}
    if not evaluate(query, {term: bool(found) for term, found in found_by_atom.items()}):
        return False, []
    return True, [h for atom, positive in atoms(query) if positive for h in found_by_atom[atom]]


def _naive_topic_without_hits(sub: Subscriber, query: Node | None) -> bool:
    """On topic whatever the paper says: `all = true`, or categories without keywords or query."""
    has_topic_terms = any(compile_term(k) for k in sub.keywords) or query is not None
    return sub.all or (not has_topic_terms and bool(sub.categories))


def naive_match(subscribers: Sequence[Subscriber], papers: Sequence[Paper]) -> dict[str, list[Match]]:
    """The reference: the same semantics as `Matcher`, by brute force."""
    out: dict[str, list[Match]] = {}
    for sub in subscribers:
        query = parse_query(sub.query) if sub.query else None
        found = [m for paper in papers if (m := _naive_one(sub, query, paper)) is not None]
        found.sort(key=lambda m: (-m.score, tie_break_key(m.paper)))
        out[sub.email] = found
    return out
