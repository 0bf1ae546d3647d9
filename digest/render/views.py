"""What a template sees of a paper (`PaperView`): cleaned text, marked-up HTML, links, badges.

A view has two halves. What does not depend on the reader (cleaned title, shortened authors, the
snippet, links, badges) is computed once per paper per run (`_Base`). What does (the marked title
and snippet, followed authors, matched categories, the "why" line) is recomputed for every reader
and paper, because readers rarely share the exact same hits: on the benchmark day more than half
of the (paper, hits) pairs in the digests are unique. So the per-reader work is built from what
*is* shared: where a term occurs in a paper's texts, a marked-up text for a set of spans, one
"why" phrase per term. Those caches belong to a `Views` object, one per renderer or publish run,
so they are bounded and go away with it. Where terms occur and how they are marked is in
`highlighting.py`, the why line in `why.py`. This module holds no business logic: what a reader
gets is decided by the matcher and laid out by the templates.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup

from digest.core.models import Hit, Paper
from digest.core.speed import escape_text, markup_unchecked
from digest.render.highlighting import (
    MARK_CLOSE,
    MARK_OPEN,
    for_words,
    highlight,
    marked,
    term_spans,
    word_spans,
)
from digest.render.templating import clean, cut, one_line, plural, shorten_authors
from digest.render.tex import simplify_math
from digest.render.why import FIELD_NAMES, STRONG_OPEN, term_line, why, why_html, why_part, why_text

# Re-exported: the import path other modules and older code use.
__all__ = [
    "SOURCE_NAMES",
    "STRONG_OPEN",
    "PaperView",
    "Views",
    "escape_text",
    "highlight",
    "term_line",
    "term_spans",
    "why_html",
    "why_text",
]

# -- the view ---------------------------------------------------------------------------------------

# For papers that carry no display names (stored before they existed, or made by hand): the
# labels of the default source names.
SOURCE_NAMES = {"hf": "Hugging Face", "hf_daily": "Hugging Face", "arxiv": "arXiv", "arxiv_rss": "arXiv"}


def _source_labels(paper: Paper) -> tuple[str, ...]:
    """The display names `fetch_listing` put on the paper, else the looked-up source names."""
    if paper.source_labels:
        return tuple(dict.fromkeys(one_line(s) for s in paper.source_labels))
    return tuple(SOURCE_NAMES.get(s, one_line(s)) for s in dict.fromkeys(paper.sources))


class PaperView(NamedTuple):
    """A paper ready for a template: cleaned text, escaped-and-highlighted HTML, links.

    A NamedTuple, like `Hit` and `Match`: a run makes one for every paper of every email (some
    200,000 at 10,000 readers), and a frozen dataclass with 21 fields costs more to make than
    everything else a view needs together.
    """

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
    # the day a paper fetched late (a missed day, backfilled) was announced, e.g. "2024-11-26"
    announced: str = ""


_Spans = tuple[tuple[int, int], ...]
_NOWHERE: tuple[_Spans, _Spans] = ((), ())  # most terms of a view occur in neither text


class _Base:
    """The reader-independent half of a view, and the texts that offsets and terms refer to."""

    __slots__ = ("abstract", "found", "kept", "paper", "shown", "title", "title_size", "view", "words")

    def __init__(self, paper: Paper) -> None:
        # TeX math made readable (`simplify_math`); where that changed a text, the matcher's
        # offsets into it no longer hold, and the terms are found again instead (as in a summary).
        raw_title, raw_source = clean(paper.title), clean(paper.ai_summary or paper.abstract)
        title, source = simplify_math(raw_title), simplify_math(raw_source)
        shown = cut(source)
        authors = shorten_authors(paper.authors)
        sources = _source_labels(paper)
        categories = tuple(one_line(c) for c in paper.categories[:4])
        self.paper = paper
        self.title = title  # clean(title): the matcher's offsets are valid in it, unless math changed
        self.title_size = len(title) if title == raw_title else 0  # how far title offsets apply
        self.shown = shown  # the snippet as shown (cut), before collapsing whitespace
        # How much of the abstract `shown` keeps; 0 for an AI summary or changed math (no offsets apply).
        exact = not paper.ai_summary and source == raw_source
        self.kept = 0 if not exact else len(shown) if shown == source else len(shown) - 1  # no "…"
        self.words = (for_words(title), for_words(shown))  # what terms are looked for in
        self.found: dict[str, tuple[_Spans, _Spans]] = {}  # term: its spans in title, shown
        # for feeds: the abstract as shown, its words, where terms occur, whether offsets hold in it
        self.abstract: tuple[str, tuple[str, str | None], dict[str, _Spans], bool] | None = None
        self.view = PaperView(
            id=paper.id,
            title=one_line(title),
            title_html=markup_unchecked(escape_text(title)),
            url=_url(paper.url),
            pdf_url=_url(paper.pdf_url),
            github_url=_url(paper.github_url),
            project_url=_url(paper.project_url),
            authors=authors,
            authors_html=markup_unchecked(escape_text(authors)),
            sources=sources,
            categories=categories,
            matched_categories=frozenset(),
            upvotes=paper.upvotes,
            comments=paper.comments,
            facts=(*sources, *categories, *_counts(paper), *_announced(paper)),
            snippet=one_line(shown),
            snippet_html=markup_unchecked(escape_text(shown)),
            is_summary=bool(paper.ai_summary),
            why="",
            why_html=Markup(""),
            published=paper.published,
            announced=paper.announced.isoformat() if paper.announced else "",
        )

    def spans(self, term: str) -> tuple[_Spans, _Spans]:
        """Where `term` occurs in the title and in the snippet as shown."""
        found = self.found.get(term)
        if found is None:
            title = word_spans(*self.words[0], term)
            shown = word_spans(*self.words[1], term)
            found = self.found[term] = (tuple(title), tuple(shown)) if title or shown else _NOWHERE
        return found


class Views:
    """Paper views for one run: one per `EmailRenderer`, one per `publish_site`.

    The reader-independent half of each paper's view is built once (a run has ~1,500 papers and
    each is in some 130 emails); so is where each term occurs in a paper. Marked-up titles and
    snippets and the "why" phrases are kept in bounded caches: they are shared by readers with the
    same terms, and unbounded they would grow with the number of readers. Everything goes when
    the object does, or on `clear()`.
    """

    MARKED = 8192  # marked titles and snippets kept (~0.5 KB each)
    PHRASES = 16384  # "why" phrases kept, one per (term, fields)

    def __init__(self) -> None:
        self._bases: dict[str, _Base] = {}
        self._marked = lru_cache(maxsize=self.MARKED)(marked)
        self._why_part = lru_cache(maxsize=self.PHRASES)(why_part)

    def clear(self) -> None:
        self._bases.clear()
        self._marked.cache_clear()
        self._why_part.cache_clear()

    def base(self, paper: Paper) -> _Base:
        """The reader-independent half of `paper`'s view, built once per run."""
        base = self._bases.get(paper.id)
        # Keyed by id, checked by identity (a run shares one Paper object per paper) and only
        # then by value: hashing a Paper hashes all of its 22 fields.
        if base is None or (base.paper is not paper and base.paper != paper):
            base = self._bases[paper.id] = _Base(paper)
        return base

    def __call__(self, paper: Paper, hits: Sequence[Hit] = ()) -> PaperView:
        """The view of `paper` for a reader whose profile matched it with `hits`.

        This runs for every paper of every email: one pass over the hits (`_gather`), and
        everything else looked up (this is the hot loop of rendering; a tidier version with a
        helper per field cost twice as much).
        """
        base = self.base(paper)
        view = base.view
        if not hits:
            return view
        title_spans, snippet_spans, by_term, followed, categories = _gather(base, hits)
        authors, authors_html, matched = view.authors, view.authors_html, view.matched_categories
        if followed:
            authors = shorten_authors(paper.authors, must_show=followed)
            authors_html = highlight(authors, term_spans(authors, followed))
        if categories:
            matched = frozenset(c for c in view.categories if c.lower() in categories)
        why_line, why_markup = why(by_term, self._why_part)
        title_html = view.title_html
        if title_spans:
            title_html = self._marked(base.title, tuple(sorted(title_spans)), MARK_OPEN, MARK_CLOSE)
        snippet_html = view.snippet_html
        if snippet_spans:
            snippet_html = self._marked(base.shown, tuple(sorted(snippet_spans)), MARK_OPEN, MARK_CLOSE)
        return PaperView(
            view.id, view.title, title_html, view.url, view.pdf_url, view.github_url, view.project_url,
            authors, authors_html, view.sources, view.categories, matched, view.upvotes, view.comments,
            view.facts, view.snippet, snippet_html, view.is_summary, why_line, why_markup, view.published,
            view.announced,
        )  # fmt: skip

    def abstract(self, paper: Paper, hits: Sequence[Hit]) -> tuple[str, list[tuple[int, int]]]:
        """The cleaned abstract and the spans to mark in it: the abstract hits, and wherever the
        terms of title, abstract and keyword hits occur. Where a term occurs is found once per
        paper and term, however many feeds mark it."""
        base = self.base(paper)
        if base.abstract is None:
            raw = clean(paper.abstract)
            text = simplify_math(raw)
            base.abstract = (text, for_words(text), {}, text == raw)
        text, words, found, exact = base.abstract
        spans = [(h.start, h.end) for h in hits if h.field == "abstract" and 0 <= h.start < h.end and exact]
        # (a match rebuilt from the ledger has no offsets: the terms are found again below)
        for h in hits:
            if h.field in ("title", "abstract", "keywords"):
                where = found.get(h.term)
                if where is None:
                    where = found[h.term] = tuple(word_spans(*words, h.term))
                spans += where
        return text, spans


_Gathered = tuple[set[tuple[int, int]], set[tuple[int, int]], dict[str, list[str]], list[str], set[str]]


def _gather(base: _Base, hits: Sequence[Hit]) -> _Gathered:
    """One pass over a reader's hits in a paper: the spans to mark in the title and in the
    snippet, the field names per term (for the why line), the followed authors and the matched
    categories (lower case). One function, not one per field: this runs for every paper of every
    email, and each call costs more than the work of a field."""
    # `clean` keeps every character in place, so the matcher's offsets stay valid in what we
    # show; re-finding the terms covers what offsets cannot (the AI summary, a cut snippet).
    title_spans: set[tuple[int, int]] = set()
    snippet_spans: set[tuple[int, int]] = set()
    by_term: dict[str, list[str]] = {}
    followed: list[str] = []
    categories: set[str] = set()
    title_size, kept = base.title_size, base.kept
    for h in hits:
        field, term = h.field, h.term
        name = FIELD_NAMES.get(field, field)
        line = term_line(term)
        fields = by_term.get(line)
        if fields is None:
            by_term[line] = [name]
        elif name not in fields:
            fields.append(name)
        if field == "abstract" or field == "title" or field == "keywords":
            in_title, in_shown = base.spans(term)
            if in_title:
                title_spans.update(in_title)
            if in_shown:
                snippet_spans.update(in_shown)
            if field == "abstract":
                if 0 <= h.start < h.end <= kept:
                    snippet_spans.add((h.start, h.end))
            elif field == "title" and 0 <= h.start < h.end <= title_size:
                title_spans.add((h.start, h.end))
        elif field == "author":
            followed.append(term)
        elif field == "category":
            categories.add(term.lower())
    return title_spans, snippet_spans, by_term, followed, categories


def _announced(paper: Paper) -> tuple[str, ...]:
    """A paper fetched late says the day it was announced (the digest is of a later day)."""
    return (f"announced {paper.announced.isoformat()}",) if paper.announced else ()


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
