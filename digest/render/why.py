"""Why a paper matched: 'matched "LLM" in the title', in plain text and in HTML.

One phrase per term, naming the fields it was found in; the HTML form is cached per run by
`Views`. No business logic: the hits come from the matcher.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from functools import lru_cache

from markupsafe import Markup, escape

from digest.core.models import Hit
from digest.core.speed import markup_unchecked
from digest.render.templating import one_line

__all__ = [
    "FIELD_NAMES",
    "STRONG_OPEN",
    "fields_by_term",
    "term_line",
    "why",
    "why_html",
    "why_part",
    "why_text",
]

FIELD_NAMES = {"keywords": "keywords", "author": "authors", "category": "categories"}
STRONG_OPEN = '<strong style="color:#1f2328">'  # the email sets its background; feeds drop the colour


@lru_cache(maxsize=32768)  # a run has a few thousand terms (16,876 at 10,000 readers)
def term_line(term: str) -> str:
    """A profile term on one line (`one_line`), cached: a run has a few thousand terms."""
    return one_line(term)


WhyPart = Callable[[str, str], tuple[str, Markup]]


def why_part(term: str, where: str) -> tuple[str, Markup]:
    """One term's phrase, plain and HTML: '"LLM" in the title'."""
    return f'"{term}" in the {where}', markup_unchecked(
        f"{STRONG_OPEN}{escape(term)}</strong> in the {escape(where)}"
    )


def why(by_term: dict[str, list[str]], part: WhyPart = why_part) -> tuple[str, Markup]:
    """The why line from {term: [field names]}, in both forms."""
    if not by_term:
        return "", Markup("")
    parts = [
        part(term, fields[0] if len(fields) == 1 else " and ".join(fields))
        for term, fields in by_term.items()
    ]
    if len(parts) == 1:
        return "matched " + parts[0][0], parts[0][1]
    texts, htmls = zip(*parts, strict=True)
    return "matched " + ", ".join(texts), markup_unchecked(", ".join(htmls))


def fields_by_term(hits: Sequence[Hit]) -> dict[str, list[str]]:
    by_term: dict[str, list[str]] = {}
    for hit in hits:
        fields = by_term.setdefault(term_line(hit.term), [])
        name = FIELD_NAMES.get(hit.field, hit.field)
        if name not in fields:
            fields.append(name)
    return by_term


def why_text(hits: Sequence[Hit]) -> str:
    """'matched "prompt tuning" in the title, "LLM" in the abstract' (empty without hits)."""
    return why(fields_by_term(hits))[0]


def why_html(hits: Sequence[Hit]) -> Markup:
    """'<strong>prompt tuning</strong> in the title, <strong>LLM</strong> in the abstract'."""
    return why(fields_by_term(hits))[1]
