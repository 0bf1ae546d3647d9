"""What a template sees of a paper (`PaperView`), and the highlighting that goes into it.

A view has two halves. What does not depend on the reader (cleaned title, shortened authors, the
snippet, links, badges) is computed once per paper (`_base_view`). What does (the marked title
and snippet, followed authors, matched categories, the "why" line) is recomputed for every reader
and paper, because readers rarely share the exact same hits: on the benchmark day more than half
of the (paper, hits) pairs in the digests are unique. So the per-reader work is built from small
caches of what *is* shared: where a term occurs in a text, a marked-up text for a set of spans,
one "why" phrase per term. This module holds no business logic: what a reader gets is decided by
the matcher and laid out by the templates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from markupsafe import Markup, escape

from digest.models import Hit, Paper
from digest.render.templating import clean, cut, one_line, plural, shorten_authors

__all__ = [
    "SOURCE_NAMES",
    "PaperView",
    "highlight",
    "paper_view",
    "term_line",
    "term_spans",
    "why_html",
    "why_text",
]

# -- highlighting ---------------------------------------------------------------------------------

_MARK_OPEN = '<mark style="background-color:#fff1a8;color:#1f2328">'
_MARK_CLOSE = "</mark>"


@lru_cache(maxsize=16384)
def _pattern(term: str) -> re.Pattern[str] | None:
    # Compiled once per term: `re`'s own cache holds 512 patterns, and a run has thousands of terms.
    words = term.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    if words[0][0].isalnum():
        pattern = r"(?<![\w])" + pattern
    return re.compile(pattern, re.IGNORECASE)


@lru_cache(maxsize=65536)
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


@lru_cache(maxsize=16384)
def _plain_lower(text: str) -> str | None:
    """`text` lower-cased, where `_find` gives what the regex would; else None."""
    lower = text.lower()
    return lower if len(lower) == len(text) and not _NOT_PLAIN.search(text) else None


def _find(lower: str, needle: str, at_word: bool) -> list[tuple[int, int]]:
    spans = []
    size = len(needle)
    i = lower.find(needle)
    while i >= 0:
        before = lower[i - 1] if i else " "
        if at_word and (before.isalnum() or before == "_"):
            i = lower.find(needle, i + 1)
            continue
        spans.append((i, i + size))
        i = lower.find(needle, i + size)
    return spans


def term_spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """Where each term occurs in `text`, case-insensitively, starting at a word boundary."""
    spans: list[tuple[int, int]] = []
    lower = _plain_lower(text)
    for term in terms:
        needle = _needle(term) if lower is not None else None
        if needle is not None and lower is not None:
            if needle[0] in lower:
                spans += _find(lower, *needle)
        else:
            spans += _spans_of(text, term)
    return spans


def highlight(
    text: str,
    spans: Iterable[tuple[int, int]],
    *,
    mark_open: str = _MARK_OPEN,
    mark_close: str = _MARK_CLOSE,
) -> Markup:
    """`text` escaped, with the (possibly overlapping) spans wrapped in <mark>."""
    return _highlight(text, tuple(sorted(spans)), str(mark_open), str(mark_close))


@lru_cache(maxsize=32768)  # the same title with the same term marked goes to many readers
def _highlight(text: str, spans: tuple[tuple[int, int], ...], mark_open: str, mark_close: str) -> Markup:
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
        out += (_escape(text[pos:start]), mark_open, _escape(text[start:end]), mark_close)
        pos = end
    out.append(_escape(text[pos:]))
    return Markup("".join(out))


def _escape(text: str) -> str:
    # markupsafe.escape, character for character, without making a Markup of every piece.
    return (
        text.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


# -- why a paper matched --------------------------------------------------------------------------

_FIELD_NAMES = {"keywords": "keywords", "author": "authors", "category": "categories"}
_STRONG = '<strong style="color:#1f2328">'


@lru_cache(maxsize=65536)  # a run has tens of thousands of terms; a thrashing cache costs more
def term_line(term: str) -> str:
    """A profile term on one line (`one_line`), cached: a run has a few thousand terms."""
    return one_line(term)


@lru_cache(maxsize=65536)  # readers share terms far more often than whole lists of hits
def _why_parts(term: str, fields: tuple[str, ...]) -> tuple[str, str]:
    where = " and ".join(fields)
    return f'"{term}" in the {where}', f"{_STRONG}{escape(term)}</strong> in the {escape(where)}"


def _why(by_term: dict[str, list[str]]) -> tuple[str, Markup]:
    """The why line from {term: [field names]}, in both forms."""
    if not by_term:
        return "", Markup("")
    parts = [_why_parts(term, tuple(fields)) for term, fields in by_term.items()]
    return "matched " + ", ".join([p[0] for p in parts]), Markup(", ".join([p[1] for p in parts]))


def _fields_by_term(hits: Sequence[Hit]) -> dict[str, list[str]]:
    by_term: dict[str, list[str]] = {}
    for hit in hits:
        fields = by_term.setdefault(term_line(hit.term), [])
        name = _FIELD_NAMES.get(hit.field, hit.field)
        if name not in fields:
            fields.append(name)
    return by_term


def why_text(hits: Sequence[Hit]) -> str:
    """'matched "prompt tuning" in the title, "LLM" in the abstract' (empty without hits)."""
    return _why(_fields_by_term(hits))[0]


def why_html(hits: Sequence[Hit]) -> Markup:
    """'<strong>prompt tuning</strong> in the title, <strong>LLM</strong> in the abstract'."""
    return _why(_fields_by_term(hits))[1]


# -- the view ---------------------------------------------------------------------------------------

SOURCE_NAMES = {"hf": "Hugging Face", "hf_daily": "Hugging Face", "arxiv": "arXiv", "arxiv_rss": "arXiv"}


@dataclass(frozen=True, slots=True)
class PaperView:
    """A paper ready for a template: cleaned text, escaped-and-highlighted HTML, links."""

    id: str
    title: str  # one line
    title_html: Markup  # with the matched terms marked
    url: str | None
    pdf_url: str | None
    github_url: str | None
    project_url: str | None
    authors: str  # shortened: 'A, B, C et al.'
    authors_html: Markup
    sources: tuple[str, ...]
    categories: tuple[str, ...]
    matched_categories: frozenset[str]
    upvotes: int | None
    comments: int | None
    facts: tuple[str, ...]  # sources, categories, '▲ 12', '3 comments': the text part's badges
    snippet: str  # one line, cut at a word
    snippet_html: Markup
    is_summary: bool  # the snippet is the Hugging Face AI summary, not the abstract
    why: str  # plain: 'matched "LLM" in the title'
    why_html: Markup  # '<strong>LLM</strong> in the title'
    published: dt.datetime | None


@dataclass(frozen=True, slots=True)
class _Base:
    """The reader-independent half of a view, and the texts that offsets and terms refer to."""

    view: PaperView
    title: str  # clean(title): the matcher's offsets are valid in it
    shown: str  # the snippet as shown (cut), before collapsing whitespace
    kept: int  # how much of the abstract `shown` keeps; 0 for an AI summary (no offsets apply)
    found: dict[str, tuple[tuple[tuple[int, int], ...], ...]]  # term: its spans in title, shown


def paper_view(paper: Paper, hits: Sequence[Hit] = ()) -> PaperView:
    """The view of `paper` for a reader whose profile matched it with `hits`.

    This runs for every paper of every email: one pass over the hits, and everything else looked
    up (this is the hot loop of rendering; a tidier version with a helper per field cost twice as
    much).
    """
    base = _base(paper)
    if not hits:
        return base.view
    view = base.view
    # `clean` keeps every character in place, so the matcher's offsets stay valid in what we show;
    # re-finding the terms covers what offsets cannot (the AI summary, a cut snippet).
    title_spans: list[tuple[int, int]] = []
    snippet_spans: list[tuple[int, int]] = []
    text_terms: dict[str, None] = {}
    by_term: dict[str, list[str]] = {}
    followed: list[str] = []
    categories: set[str] = set()
    title_size, kept = len(base.title), base.kept
    for h in hits:
        field = h.field
        name = _FIELD_NAMES.get(field, field)
        fields = by_term.setdefault(term_line(h.term), [])
        if name not in fields:
            fields.append(name)
        if field == "abstract":
            text_terms[h.term] = None
            if 0 <= h.start < h.end <= kept:
                snippet_spans.append((h.start, h.end))
        elif field == "title":
            text_terms[h.term] = None
            if 0 <= h.start < h.end <= title_size:
                title_spans.append((h.start, h.end))
        elif field == "keywords":
            text_terms[h.term] = None
        elif field == "author":
            followed.append(h.term)
        elif field == "category":
            categories.add(h.term.lower())
    found = base.found
    for term in text_terms:
        spans = found.get(term)
        if spans is None:
            spans = found[term] = (
                tuple(term_spans(base.title, (term,))),
                tuple(term_spans(base.shown, (term,))),
            )
        title_spans += spans[0]
        snippet_spans += spans[1]
    authors, authors_html, matched = view.authors, view.authors_html, view.matched_categories
    if followed:
        authors = shorten_authors(paper.authors, must_show=followed)
        authors_html = highlight(authors, term_spans(authors, followed))
    if categories:
        matched = frozenset(c for c in view.categories if c.lower() in categories)
    why, why_markup = _why(by_term)
    title_html = view.title_html
    if title_spans:
        title_html = _highlight(base.title, tuple(sorted(title_spans)), _MARK_OPEN, _MARK_CLOSE)
    snippet_html = view.snippet_html
    if snippet_spans:
        snippet_html = _highlight(base.shown, tuple(sorted(snippet_spans)), _MARK_OPEN, _MARK_CLOSE)
    # Built field by field: dataclasses.replace costs more than everything above together.
    return PaperView(
        view.id, view.title, title_html, view.url, view.pdf_url, view.github_url, view.project_url,
        authors, authors_html, view.sources, view.categories, matched, view.upvotes, view.comments,
        view.facts, view.snippet, snippet_html, view.is_summary, why, why_markup, view.published,
    )  # fmt: skip


@lru_cache(maxsize=8192)  # computed once per paper per run, however many digests the paper is in
def _base(paper: Paper) -> _Base:
    title = clean(paper.title)
    source = clean(paper.ai_summary or paper.abstract)
    shown = cut(source)
    kept = 0 if paper.ai_summary else len(shown) if shown == source else len(shown) - 1  # no "…"
    authors = shorten_authors(paper.authors)
    sources = tuple(SOURCE_NAMES.get(s, one_line(s)) for s in dict.fromkeys(paper.sources))
    categories = tuple(one_line(c) for c in paper.categories[:4])
    view = PaperView(
        id=paper.id,
        title=one_line(title),
        title_html=escape(title),
        url=_url(paper.url),
        pdf_url=_url(paper.pdf_url),
        github_url=_url(paper.github_url),
        project_url=_url(paper.project_url),
        authors=authors,
        authors_html=escape(authors),
        sources=sources,
        categories=categories,
        matched_categories=frozenset(),
        upvotes=paper.upvotes,
        comments=paper.comments,
        facts=(*sources, *categories, *_counts(paper)),
        snippet=one_line(shown),
        snippet_html=escape(shown),
        is_summary=bool(paper.ai_summary),
        why="",
        why_html=Markup(""),
        published=paper.published,
    )
    return _Base(view, title, shown, kept, {})


def _counts(paper: Paper) -> tuple[str, ...]:
    out = []
    if paper.upvotes is not None:
        out.append(f"▲ {paper.upvotes}")
    if paper.comments is not None:
        out.append(plural(paper.comments, "comment"))
    return tuple(out)


def _url(url: str | None) -> str | None:
    # Only web links: a feed cannot smuggle javascript: or data: URLs into an href.
    if not url:
        return None
    url = one_line(url)
    return url if url.lower().startswith(("https://", "http://")) else None
