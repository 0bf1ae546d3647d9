"""How a match scores and how equal scores are ordered: the ranking rules, in one place.

Shared by the engine (`digest.matching.matcher`) and its reference (`digest.matching.naive`);
docs/matching.md describes them for readers.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from digest.core.models import Field, Hit, Paper
from digest.matching.bitsets import Planes

# -- scoring and order ----------------------------------------------

FIELD_WEIGHT: dict[str, float] = {"title": 3.0, "abstract": 2.0, "keywords": 1.0}
EXTRA_FIELD_WEIGHT = 0.5  # the same term found in one more field
AUTHOR_WEIGHT = 5.0  # per followed author on the paper
TextField = tuple[Field, str]


def score_hits(hits: Iterable[Hit]) -> float:
    """Sum over distinct terms of the weight of the best field they hit (+0.5 per other field),
    plus 5 per followed author. Category hits explain but do not score."""
    text_fields: dict[str, set[str]] = defaultdict(set)
    followed: set[str] = set()
    for hit in hits:
        if hit.field in FIELD_WEIGHT:
            text_fields[hit.term].add(hit.field)
        elif hit.field == "author":
            followed.add(hit.term)
    score = AUTHOR_WEIGHT * len(followed)
    for fields in text_fields.values():
        score += term_score(fields)
    return score


def term_score(fields: Iterable[str]) -> float:
    """What one term adds: the weight of its best field, plus 0.5 for each further field."""
    fields = set(fields)
    return max(FIELD_WEIGHT[f] for f in fields) + EXTRA_FIELD_WEIGHT * (len(fields) - 1)


def tie_break_key(paper: Paper) -> tuple[int, int, float, str]:
    """Among equal scores: more upvotes first, then the newer paper, then by id."""
    published = paper.published.timestamp() if paper.published else 0.0
    return (-(paper.upvotes or 0), paper.published is None, -published, paper.id)


def text_fields(paper: Paper) -> tuple[TextField, TextField, TextField]:
    """The searched texts; a keyword hit's offsets index into these strings.

    Hugging Face `ai_keywords` are searched (and pointed into) as one string joined by ", ".
    """
    return (("title", paper.title), ("abstract", paper.abstract), ("keywords", ", ".join(paper.ai_keywords)))


# -- the same, bit-sliced (digest.matching.rank) -----------------------------------------------


def field_planes(title: int, abstract: int, keywords: int) -> Planes:
    """One term's score in half points, bit-sliced, from the papers it hit in each field.

    `term_score` doubled: title 6, abstract 4, keywords 2, and 1 more for each
    further field (title + abstract 7, abstract + keywords 5, all three 8). The tests check these
    planes against `term_score` for every combination of fields.
    """
    three = title & abstract & keywords
    two = ((title & abstract) | (title & keywords) | (abstract & keywords)) & ~three
    return (two, (title & ~three) | (keywords & ~title & ~abstract), (title | abstract) & ~three, three)


AUTHOR_HALVES = int(2 * AUTHOR_WEIGHT)  # a followed author's score in half points
