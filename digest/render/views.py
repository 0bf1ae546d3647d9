"""What a template sees of a paper (`PaperView`), and the highlighting that goes into it.

A view has two halves. What does not depend on the reader (cleaned title, shortened authors, the
snippet, links, badges) is computed once per paper per run (`_Base`). What does (the marked title
and snippet, followed authors, matched categories, the "why" line) is recomputed for every reader
and paper, because readers rarely share the exact same hits: on the benchmark day more than half
of the (paper, hits) pairs in the digests are unique. So the per-reader work is built from what
*is* shared: where a term occurs in a paper's texts, a marked-up text for a set of spans, one
"why" phrase per term. Those caches belong to a `Views` object, one per renderer or publish run,
so they are bounded and go away with it. This module holds no business logic: what a reader gets
is decided by the matcher and laid out by the templates.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable, Iterable, Sequence
from functools import lru_cache
from typing import NamedTuple

from markupsafe import Markup, escape

from digest.core.models import Hit, Paper
from digest.matching.terms import GAP_CHARS, TOKEN_CHARS, compile_term, token_matches
from digest.render.templating import clean, cut, one_line, plural, shorten_authors

__all__ = [
    "SOURCE_NAMES",
    "PaperView",
    "Views",
    "escape_text",
    "highlight",
    "term_line",
    "term_spans",
    "why_html",
    "why_text",
]

# -- highlighting ---------------------------------------------------------------------------------

_MARK_OPEN = '<mark style="background-color:#fff1a8;color:#1f2328">'
_MARK_CLOSE = "</mark>"


@lru_cache(maxsize=2048)
def _pattern(term: str) -> re.Pattern[str] | None:
    # Compiled once per term: `re`'s own cache holds 512 patterns, and a run has thousands of terms.
    words = term.split()
    if not words:
        return None
    pattern = r"\s+".join(re.escape(w) for w in words)
    if words[0][0].isalnum():
        pattern = r"(?<![\w\u0300-\u036f])" + pattern
    return re.compile(pattern, re.IGNORECASE)


@lru_cache(maxsize=4096)  # only texts or terms `str.find` cannot do go here: few
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
# Those letters but the dotted capital I, which the length test in `_plain_lower` catches.
_ODD_LETTERS = ("\u0131", "\u017f", "\u212a")


def _plain_lower(text: str) -> str | None:
    """`text` lower-cased, where `_find` gives what the regex would; else None.

    Not cached here: a view keeps it for each of its paper's texts (`_Base`).
    """
    lower = text.lower()
    if len(lower) != len(text):
        return None
    if text.isprintable():
        # The same test without the regex, which was a tenth of the time of building the views:
        # printable text has no whitespace but " ", and ASCII text none of those letters.
        if "  " in text or (not text.isascii() and any(c in text for c in _ODD_LETTERS)):
            return None
        return lower
    return None if _NOT_PLAIN.search(text) else lower


def _find(lower: str, needle: str, at_word: bool) -> list[tuple[int, int]]:
    spans = []
    size = len(needle)
    i = lower.find(needle)
    while i >= 0:
        before = lower[i - 1] if i else " "
        # inside a word: after a letter, digit, "_" or a combining accent (a decomposed "é")
        if at_word and (before.isalnum() or before == "_" or "\u0300" <= before <= "\u036f"):
            i = lower.find(needle, i + 1)
            continue
        spans.append((i, i + size))
        i = lower.find(needle, i + size)
    return spans


def term_spans(text: str, terms: Iterable[str]) -> list[tuple[int, int]]:
    """Where each term occurs in `text`, case-insensitively, starting at a word boundary."""
    lower = _plain_lower(text)
    spans: list[tuple[int, int]] = []
    for term in terms:
        spans += _term_spans(text, lower, term)
    return spans


def _term_spans(text: str, lower: str | None, term: str) -> Sequence[tuple[int, int]]:
    """`term_spans` for one term, with `_plain_lower(text)` computed by the caller."""
    needle = _needle(term) if lower is not None else None
    if needle is None or lower is None:
        return _spans_of(text, term)
    return _find(lower, *needle) if needle[0] in lower else ()


class _WordTerm(NamedTuple):
    needle: str  # what `_term_spans` looks for: the first folded word, without a final "y"
    others: tuple[str, ...]  # the other words so: a text without one of them cannot match
    tokens: re.Pattern[str]  # as many tokens as the term has words, from a candidate on
    words: tuple[tuple[str, str | None], ...]  # (key, exact) per word, for `token_matches`
    # The needle is the term's one word as compared, not an acronym: where it ends a word in the
    # lower-cased text, that word is the term's (folding a folded word changes nothing).
    whole: bool


@lru_cache(maxsize=65536)  # a run has a few thousand terms
def _word_term(term: str) -> _WordTerm | None:
    compiled = compile_term(term)
    if compiled is None:
        return None
    stems = [key[:-1] if key.endswith("y") and len(key) > 1 else key for key in compiled.keys]
    first, needle = compiled.keys[0], stems[0]
    token = f"({TOKEN_CHARS}+)"
    tokens = re.compile(token + f"(?:{GAP_CHARS}+{token})" * (len(compiled.keys) - 1))
    whole = needle == first and len(compiled.keys) == 1 and not compiled.case_sensitive
    words = tuple(zip(compiled.keys, compiled.exact, strict=True))
    return _WordTerm(needle, tuple(stems[1:]), tokens, words, whole)


# What may join the words of a phrase besides a space (terms.GAP_CHARS), each made a space.
_GAPS_AS_SPACES = str.maketrans(dict.fromkeys("-_\u2010\u2011", " "))
_NO_GAPS = re.compile("[^-_\u2010\u2011]*").fullmatch


def _for_words(text: str) -> tuple[str, str | None]:
    """`text` with hyphens and underscores as spaces (one character for one: the offsets stay),
    as the matcher separates words, and its `_plain_lower`: what `_word_spans` searches. Made
    once per text, not per term."""
    lower = _plain_lower(text)
    if not _NO_GAPS(text):
        text = text.translate(_GAPS_AS_SPACES)
        lower = lower.translate(_GAPS_AS_SPACES) if lower is not None else None
    return text, lower


def _word_spans(text: str, lower: str | None, term: str) -> Sequence[tuple[int, int]]:
    """Where a profile term matches in a text by the matcher's rules (docs/matching.md): whole
    words, plurals folded, acronyms in capitals only. Each span covers the words matched.
    `text, lower` are `_for_words(the text)`.

    The candidates are the places where the term's first folded word starts a word of the text
    (without a final "y", so that "query" finds "queries"), found by `_term_spans`; from each,
    the text's next words are checked against the term's with `token_matches`, as the matcher
    compares words. So "agent" is not marked inside "agentic", nor "SLAM" in "slam dunk" or
    "HI-SLAM2", while "model" marks all of "models", "queries" all of "query", and "vision
    language model" all of "vision-language models".
    """
    word_term = _word_term(term)
    if word_term is None:
        return ()
    if lower is not None and not all(stem in lower for stem in word_term.others):
        return ()  # most texts with a phrase's first word lack the others: no regex for them
    candidates = _term_spans(text, lower, word_term.needle)
    if not candidates:
        return ()
    spans = []
    for start, end in candidates:
        if word_term.whole and lower is not None:
            after = lower[end : end + 1]
            if not after or not (after.isalnum() or "\u0300" <= after <= "\u036f"):
                spans.append((start, end))  # the words themselves: the common case, no regex
                continue
        m = word_term.tokens.match(text, start)
        if m is not None and all(
            token_matches(word, key, exact)
            for word, (key, exact) in zip(m.groups(), word_term.words, strict=True)
        ):
            spans.append(m.span())
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
        out += (escape_text(text[pos:start]), mark_open, escape_text(text[start:end]), mark_close)
        pos = end
    out.append(escape_text(text[pos:]))
    return _markup("".join(out))


def escape_text(text: str) -> str:
    """`markupsafe.escape`, character for character, as a plain str: for pieces that are joined
    into something larger, where a Markup of each piece would only cost time."""
    return (
        text.replace("&", "&amp;")
        .replace(">", "&gt;")
        .replace("<", "&lt;")
        .replace("'", "&#39;")
        .replace('"', "&#34;")
    )


def _markup(html: str) -> Markup:
    # Markup(html) without Markup.__new__, a Python function that checks for __html__ and an
    # encoding: this runs for most of the 200,000 views of a run. Markup is a str subclass with
    # no state of its own, so this is the same object.
    return str.__new__(Markup, html)


# -- why a paper matched --------------------------------------------------------------------------

_FIELD_NAMES = {"keywords": "keywords", "author": "authors", "category": "categories"}
STRONG_OPEN = '<strong style="color:#1f2328">'  # the email sets its background; feeds drop the colour


@lru_cache(maxsize=32768)  # a run has a few thousand terms (16,876 at 10,000 readers)
def term_line(term: str) -> str:
    """A profile term on one line (`one_line`), cached: a run has a few thousand terms."""
    return one_line(term)


_WhyPart = Callable[[str, str], tuple[str, Markup]]


def _why_part(term: str, where: str) -> tuple[str, Markup]:
    return f'"{term}" in the {where}', _markup(f"{STRONG_OPEN}{escape(term)}</strong> in the {escape(where)}")


def _why(by_term: dict[str, list[str]], part: _WhyPart = _why_part) -> tuple[str, Markup]:
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
    return "matched " + ", ".join(texts), _markup(", ".join(htmls))


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


_Spans = tuple[tuple[int, int], ...]
_NOWHERE: tuple[_Spans, _Spans] = ((), ())  # most terms of a view occur in neither text


class _Base:
    """The reader-independent half of a view, and the texts that offsets and terms refer to."""

    __slots__ = ("abstract", "found", "kept", "paper", "shown", "title", "view", "words")

    def __init__(self, paper: Paper) -> None:
        title = clean(paper.title)
        source = clean(paper.ai_summary or paper.abstract)
        shown = cut(source)
        authors = shorten_authors(paper.authors)
        sources = tuple(SOURCE_NAMES.get(s, one_line(s)) for s in dict.fromkeys(paper.sources))
        categories = tuple(one_line(c) for c in paper.categories[:4])
        self.paper = paper
        self.title = title  # clean(title): the matcher's offsets are valid in it
        self.shown = shown  # the snippet as shown (cut), before collapsing whitespace
        # How much of the abstract `shown` keeps; 0 for an AI summary (no offsets apply).
        self.kept = 0 if paper.ai_summary else len(shown) if shown == source else len(shown) - 1  # no "…"
        self.words = (_for_words(title), _for_words(shown))  # what terms are looked for in
        self.found: dict[str, tuple[_Spans, _Spans]] = {}  # term: its spans in title, shown
        self.abstract: tuple[str, tuple[str, str | None], dict[str, _Spans]] | None = None  # for feeds
        self.view = PaperView(
            id=paper.id,
            title=one_line(title),
            title_html=_markup(escape_text(title)),
            url=_url(paper.url),
            pdf_url=_url(paper.pdf_url),
            github_url=_url(paper.github_url),
            project_url=_url(paper.project_url),
            authors=authors,
            authors_html=_markup(escape_text(authors)),
            sources=sources,
            categories=categories,
            matched_categories=frozenset(),
            upvotes=paper.upvotes,
            comments=paper.comments,
            facts=(*sources, *categories, *_counts(paper)),
            snippet=one_line(shown),
            snippet_html=_markup(escape_text(shown)),
            is_summary=bool(paper.ai_summary),
            why="",
            why_html=Markup(""),
            published=paper.published,
        )

    def spans(self, term: str) -> tuple[_Spans, _Spans]:
        """Where `term` occurs in the title and in the snippet as shown."""
        found = self.found.get(term)
        if found is None:
            title = _word_spans(*self.words[0], term)
            shown = _word_spans(*self.words[1], term)
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
        self._marked = lru_cache(maxsize=self.MARKED)(_highlight)
        self._why_part = lru_cache(maxsize=self.PHRASES)(_why_part)

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

        This runs for every paper of every email: one pass over the hits, and everything else
        looked up (this is the hot loop of rendering; a tidier version with a helper per field
        cost twice as much).
        """
        base = self.base(paper)
        view = base.view
        if not hits:
            return view
        # `clean` keeps every character in place, so the matcher's offsets stay valid in what we
        # show; re-finding the terms covers what offsets cannot (the AI summary, a cut snippet).
        title_spans: set[tuple[int, int]] = set()
        snippet_spans: set[tuple[int, int]] = set()
        by_term: dict[str, list[str]] = {}
        followed: list[str] = []
        categories: set[str] = set()
        title_size, kept = len(base.title), base.kept
        for h in hits:
            field, term = h.field, h.term
            name = _FIELD_NAMES.get(field, field)
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
        authors, authors_html, matched = view.authors, view.authors_html, view.matched_categories
        if followed:
            authors = shorten_authors(paper.authors, must_show=followed)
            authors_html = highlight(authors, term_spans(authors, followed))
        if categories:
            matched = frozenset(c for c in view.categories if c.lower() in categories)
        why, why_markup = _why(by_term, self._why_part)
        title_html = view.title_html
        if title_spans:
            title_html = self._marked(base.title, tuple(sorted(title_spans)), _MARK_OPEN, _MARK_CLOSE)
        snippet_html = view.snippet_html
        if snippet_spans:
            snippet_html = self._marked(base.shown, tuple(sorted(snippet_spans)), _MARK_OPEN, _MARK_CLOSE)
        return PaperView(
            view.id, view.title, title_html, view.url, view.pdf_url, view.github_url, view.project_url,
            authors, authors_html, view.sources, view.categories, matched, view.upvotes, view.comments,
            view.facts, view.snippet, snippet_html, view.is_summary, why, why_markup, view.published,
        )  # fmt: skip

    def abstract(self, paper: Paper, hits: Sequence[Hit]) -> tuple[str, list[tuple[int, int]]]:
        """The cleaned abstract and the spans to mark in it: the abstract hits, and wherever the
        terms of title, abstract and keyword hits occur. Where a term occurs is found once per
        paper and term, however many feeds mark it."""
        base = self.base(paper)
        if base.abstract is None:
            text = clean(paper.abstract)
            base.abstract = (text, _for_words(text), {})
        text, words, found = base.abstract
        spans: list[tuple[int, int]] = [(h.start, h.end) for h in hits if h.field == "abstract"]
        for h in hits:
            if h.field in ("title", "abstract", "keywords"):
                where = found.get(h.term)
                if where is None:
                    where = found[h.term] = tuple(_word_spans(*words, h.term))
                spans += where
        return text, spans


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
