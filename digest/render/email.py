"""The digest email: an HTML part from an MJML template and a plain-text part, for one reader.

MJML is slow to compile and the same for every reader, so it is compiled once per run: every
Jinja tag in `digest.mjml.j2` is set aside behind a placeholder, MRML compiles the MJML, and the
tags are put back. What comes out is an ordinary HTML Jinja template, rendered for each email.
Before that, the template is rendered once with a sample digest and the result compiled by MRML,
so a broken template or bad MJML is a RenderError when the renderer is built, before anything is
sent.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import jinja2
from mjml import mjml2html

from digest.config import Settings
from digest.core.errors import RenderError
from digest.core.models import Digest, Hit, Match, Paper, RenderedEmail, Subscriber
from digest.core.speed import plain_escape_in
from digest.core.tldr import NO_TLDRS, Tldr
from digest.render.templating import (
    clear_fragments,
    load,
    long_date,
    make_env,
    one_line,
    plural,
    render,
    short_date,
    template_error,
)
from digest.render.views import PaperView, Views
from digest.render.why import term_line

HTML_TEMPLATE = "digest.mjml.j2"
TEXT_TEMPLATE = "digest.txt.j2"
# Gmail clips a message whose HTML passes ~102 KB; stay clear of it.
HTML_BUDGET = 100_000


@dataclass(frozen=True)
class Links:
    """The links the pipeline computes for one reader."""

    unsubscribe: str  # visible unsubscribe link (https URL or mailto:)
    feed: str | None = None  # the reader's private feed, when they asked for one
    archive: str | None = None  # the web archive page of the day ("N more papers matched")
    manage: str | None = None  # the reader's signed manage page, with [web] base_url (digest.web)
    # paper id -> its "more like this" / "fewer like this" links ([relevance] feedback_links)
    feedback: Mapping[str, tuple[str, str]] = dataclasses.field(default_factory=dict)


class EmailRenderer:
    """Renders digest emails; build one per run (that is when templates are compiled and checked)."""

    def __init__(self, settings: Settings, *, budget: int = HTML_BUDGET) -> None:
        self.budget = budget
        self._subject = settings.delivery.subject
        # No output scrubbing: every string the templates get is cleaned already (papers by
        # `Views`, the subject and preheader by one_line, the links below), and scrubbing
        # every printed value costs a fifth of the rendering time.
        self._env = make_env(settings.templates.dir, scrub=False)
        self._views = Views()  # this run's paper views and their caches
        mjml_template = load(self._env, HTML_TEMPLATE)
        self._text = load(self._env, TEXT_TEMPLATE)
        # Render the MJML template once with a sample, for runtime errors with their real line
        # numbers and for MJML errors on real content.
        for digest, links, tldrs in _samples():
            mjml = render(mjml_template, self._context(digest, links, None, tldrs))
            _compile_mjml(mjml, mjml_template.filename or HTML_TEMPLATE)
        self._html = self._compile(mjml_template)
        for digest, links, tldrs in _samples():
            self.render(digest, links, tldrs)
        # The samples' made-up paper ids could be real ones: nothing of theirs may be reused.
        self.clear()

    # -- per email ----------------------------------------------------------------------------
    def render(self, digest: Digest, links: Links, tldrs: Mapping[str, Tldr] = NO_TLDRS) -> RenderedEmail:
        """The email of `digest`; `tldrs` ([summaries], paper id -> TL;DR in the reader's
        language) stand in for the snippet of the papers they have."""
        # No paper takes less than ~500 bytes of HTML, so more than budget/500 never fit: do not
        # build views for the other 1,400 papers of a huge digest.
        matches = digest.matches[: max(1, self.budget // 500)]
        view = self._views
        views = [view(m.paper, m.hits) for m in matches]
        context = self._context(digest, links, views, tldrs)
        html = self._render_html(context)
        size = len(html.encode())
        if size > self.budget:
            views, html = self._fit(digest, links, views, size, tldrs)
            context = self._context(digest, links, views, tldrs)
        text = render(self._text, context)
        return RenderedEmail(
            subject=context["subject"],
            html=html,
            text=text,
            preheader=context["preheader"],
            shown=len(views),
        )

    def subject(self, digest: Digest) -> str:
        count = digest.total_matched
        template = self._subject
        if digest.subscriber.trending:  # not the day's new papers: the period's most upvoted
            template = template.replace("new papers", "trending papers")
        elif digest.subscriber.cadence == "weekly":  # the week's, not the day's
            template = template.replace("new papers", "new papers this week")
        template = template.replace("papers", "paper") if count == 1 else template
        name = one_line(digest.subscriber.name) or digest.subscriber.email
        subject = template.format(count=count or "No", date=short_date(digest.date), name=name)
        return one_line(subject)

    def clear(self) -> None:
        """Forget every paper this renderer has seen (views, cached fragments): at the end of a
        run, to give the memory back before publishing, or when papers may have changed."""
        self._views.clear()
        clear_fragments(self._env)

    # -- internals ----------------------------------------------------------------------------
    def _context(
        self,
        digest: Digest,
        links: Links,
        views: Sequence[PaperView] | None = None,
        tldrs: Mapping[str, Tldr] = NO_TLDRS,
    ) -> dict[str, Any]:
        if views is None:
            views = [self._views(m.paper, m.hits) for m in digest.matches]
        count = digest.total_matched
        return {
            "subject": self.subject(digest),
            "preheader": preheader(digest, views),
            "date": digest.date,
            "date_long": long_date(digest.date),
            "date_short": short_date(digest.date),
            "count": count,
            "shown": len(views),
            "more": max(0, count - len(views)),
            "papers": views,
            "empty": not digest.matches,
            "subscriber": digest.subscriber,
            "why_all": why_all(digest.subscriber),
            # paper id -> (nearest liked title, similarity); a dict for the templates (`tojson`),
            # not the read-only empty mapping every digest without any shares
            "similar": digest.similar or {},
            "trending": digest.subscriber.trending,  # "week" | "month": the period's most upvoted
            "links": _clean_links(links),
            "tldrs": tldrs,
        }

    def _render_html(self, context: dict[str, Any]) -> str:
        try:
            return self._html.render(context)
        except Exception as exc:  # a template can raise anything
            raise template_error(exc, f"{HTML_TEMPLATE} (compiled)") from None

    def _fit(
        self, digest: Digest, links: Links, views: list[PaperView], size: int, tldrs: Mapping[str, Tldr]
    ) -> tuple[list[PaperView], str]:
        """Fewer papers until the HTML fits the budget; the rest are behind the 'N more' link."""
        frame = len(self._render_html(self._context(digest, links, [], tldrs)).encode())
        n = len(views)
        per_paper = max(1.0, (size - frame) / max(1, n))
        n = min(n - 1, int((self.budget - frame) / per_paper * 0.97))
        while True:
            n = max(0, n)
            html = self._render_html(self._context(digest, links, views[:n], tldrs))
            if len(html.encode()) <= self.budget or n == 0:
                return views[:n], html
            n -= max(1, n // 20)

    def _compile(self, template: jinja2.Template) -> jinja2.Template:
        name = template.filename or HTML_TEMPLATE
        source, _, _ = self._env.loader.get_source(self._env, HTML_TEMPLATE)  # type: ignore[union-attr]
        protected, tags = _protect(source)
        html = _compile_mjml(protected, name)
        # The template's indentation survives MJML; drop it (a newline stays, so no word joins).
        restored = _restore(_INDENT.sub("\n", html), tags)
        missing = [tag for tag in tags if tag.startswith("{%") and tag not in restored]
        if missing:
            raise RenderError(
                f"template {name}: MJML dropped {missing[0]!r}; "
                "put Jinja statements between MJML elements inside <mj-raw>"
            )
        try:
            compiled = self._env.from_string(restored)
        except jinja2.TemplateSyntaxError as exc:
            raise RenderError(f"template {name} (after MJML): line {exc.lineno}: {exc.message}") from None
        # a tenth of the rendering time; a Jinja that compiles otherwise keeps its own escaping
        plain_escape_in(compiled)
        return compiled


# Jinja tags: statements, expressions; comments are dropped before MJML sees them.
_TAG = re.compile(r"\{%.*?%\}|\{\{.*?\}\}|\{#.*?#\}", re.DOTALL)
_PLACEHOLDER = re.compile(r"JINJA_([0-9]+)_TAG")
_INDENT = re.compile(r"\n[ \t]+")


def _protect(source: str) -> tuple[str, list[str]]:
    tags: list[str] = []

    def keep(m: re.Match[str]) -> str:
        if m.group().startswith("{#"):
            return ""
        tags.append(m.group())
        return f"JINJA_{len(tags) - 1}_TAG"

    return _TAG.sub(keep, source), tags


def _restore(html: str, tags: list[str]) -> str:
    return _PLACEHOLDER.sub(lambda m: tags[int(m.group(1))], html)


def _compile_mjml(mjml: str, name: str) -> str:
    try:
        # fonts={}: no web-font imports; the stack of system fonts is enough and loads nothing.
        return mjml2html(mjml, disable_comments=True, fonts={})
    except (ValueError, RuntimeError) as exc:  # MRML reports every problem as a ValueError
        raise RenderError(
            f"template {name}: MJML: {str(exc).splitlines()[0] if str(exc) else exc!r}"
        ) from None


def _clean_links(links: Links) -> Links:
    urls = (links.unsubscribe, links.feed, links.archive, links.manage)
    if all(u is None or u == one_line(u) for u in urls):
        return links
    return dataclasses.replace(
        links,
        unsubscribe=one_line(links.unsubscribe),
        feed=one_line(links.feed) if links.feed else None,
        archive=one_line(links.archive) if links.archive else None,
        manage=one_line(links.manage) if links.manage else None,
    )


def preheader(digest: Digest, views: Sequence[PaperView]) -> str:
    """The hidden line mail clients show after the subject: '12 new papers on LLM, agents, …'."""
    if not digest.matches:
        return "Nothing new matched your profile today."
    count = plural(digest.total_matched, "new paper")
    # Each paper counts once for each of its terms; the terms as shown (one line) are counted
    # last, from the raw ones, since a reader with all = true has a thousand papers here.
    raw: dict[str, int] = {}
    for m in digest.matches:
        hits = m.hits
        for t in (hits[0].term,) if len(hits) == 1 else dict.fromkeys(h.term for h in hits):
            raw[t] = raw.get(t, 0) + 1
    terms: Counter[str] = Counter()
    for t, n in raw.items():
        if line := term_line(t):
            terms[line] += n
    if terms:
        top = [t for t, _ in terms.most_common(3)]
        line = f"{count} on {', '.join(top)}" + (" and more" if len(terms) > 3 else "")
    else:
        line = f"{count}: {views[0].title}" if views else count
    return line if len(line) <= 140 else line[:139].rstrip() + "…"


def _samples() -> list[tuple[Digest, Links, Mapping[str, Tldr]]]:
    """A full and an empty digest, to try every template branch once when the renderer is built
    (the full one with a TL;DR for its first paper and none for the other)."""
    paper = Paper(
        id="2411.00001",
        title="A sample paper on prompt tuning",
        abstract="We study prompt tuning for large language models. " * 10,
        authors=(
            "Ada Lovelace",
            "Alan Turing",
            "Grace Hopper",
            "Edsger Dijkstra",
            "Barbara Liskov",
            "Ken Thompson",
        ),
        categories=("cs.CL", "cs.LG"),
        version=1,
        url="https://arxiv.org/abs/2411.00001",
        pdf_url="https://arxiv.org/pdf/2411.00001",
        published=dt.datetime(2026, 1, 1, tzinfo=dt.UTC),
        sources=("hf", "arxiv"),
        upvotes=3,
        comments=1,
        ai_summary="A summary about prompt tuning.",
        github_url="https://github.com/example/sample",
        project_url="https://example.org/sample",
    )
    plain = Paper(id="2411.00002", title="Another paper", abstract="Short.")
    reader = Subscriber(email="reader@example.org", name="Ada", feed=True, empty="send")
    hits = (
        Hit("prompt tuning", "title", 19, 32),
        Hit("language models", "abstract", 38, 53),
        Hit("Turing", "author", 0, 6),
        Hit("cs.CL", "category", 0, 5),
    )
    full = Digest(reader, dt.date(2026, 1, 2), (Match(paper, 1.0, hits), Match(plain, 0.5)), total_matched=5)
    empty = Digest(reader, dt.date(2026, 1, 2), ())
    links = Links(
        "https://example.org/unsubscribe", "https://example.org/feed.xml", "https://example.org/a.html"
    )
    tldrs = {paper.id: Tldr("A sample TL;DR: prompt tuning helps large language models.", "sample-model")}
    return [(full, links, tldrs), (empty, Links("mailto:unsubscribe@example.org"), NO_TLDRS)]


def why_all(sub: Subscriber) -> str:
    """What explains a paper that no term of an `all = true` reader hit: 'every new paper with at
    least 10 upvotes' (empty for other readers, whose every paper has its hits)."""
    if not sub.all:
        return ""
    why = "every new paper"
    if sub.min_upvotes:
        why += f" with at least {sub.min_upvotes} upvotes"
    if sub.sources:
        why += f" from {', '.join(sub.sources)}"
    return why
