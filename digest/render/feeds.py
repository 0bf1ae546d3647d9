"""RSS 2.0 and Atom feeds of the new papers, public and per reader: pure functions returning XML.

The XML comes from Jinja templates with autoescaping (`feed.xml.j2`, `feed.atom.j2`), so a user
can reshape a feed like any other template; control characters XML forbids never reach it (see
`templating.clean`). Every paper keeps one guid, its id, whichever day and run renders it.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
from markupsafe import Markup, escape

from digest.config import Settings
from digest.core.models import Match, Paper, Subscriber
from digest.core.tldr import NO_TLDRS, Tldr
from digest.render.highlighting import MARK_CLOSE, MARK_OPEN, highlight
from digest.render.templating import clean, load, render, rfc822
from digest.render.views import PaperView, Views
from digest.render.why import STRONG_OPEN

RSS_TEMPLATE = "feed.xml.j2"
_B, _B_END = Markup("<strong>"), Markup("</strong>")
ATOM_TEMPLATE = "feed.atom.j2"


@dataclass(frozen=True)
class Day:
    """The new papers of one digest date."""

    date: dt.date
    papers: tuple[Paper, ...]


@dataclass(frozen=True)
class FeedItem:
    paper: PaperView
    guid: str  # the paper's id: the same in every run
    atom_id: str  # the same as an IRI, for Atom
    date: dt.date
    published: str  # RFC 822, for RSS
    updated: str  # RFC 3339, for Atom
    description: str  # HTML, escaped into the XML by the template
    abstract: str


@dataclass(frozen=True)
class FeedMeta:
    title: str
    description: str
    link: str | None  # the web page the feed belongs to
    self_url: str | None  # where the feed itself is served (atom:link rel="self")
    alternate_url: str | None  # the Atom feed for the RSS one and vice versa
    id: str
    updated: dt.datetime


# SpamAssassin's __BITCOIN_ID (72_active.cf): a word of 30-35 base58 characters starting with 1
# or 3. About one 32-hex token in 60 is one (starts with 1 or 3, has no 0), and the text part
# shows the feed's address: +1.0 for PDS_BTC_ID on every digest that reader gets.
_BITCOIN_LIKE = re.compile(r"[13][a-km-zA-HJ-NP-Z1-9]{29,34}|bc1[ac-hj-np-z02-9]{30,90}")


def private_feed_name(token: str) -> str:
    """A private feed's file name: `<token>.xml`, or `f<token>.xml` for a token a spam filter
    would read as a Bitcoin address (the `f` joins it to a longer word, which no such rule
    matches). The same name for as long as the token is."""
    return f"f{token}.xml" if _BITCOIN_LIKE.fullmatch(token) else f"{token}.xml"


def private_feed_path(settings: Settings, token: str) -> Path:
    """Where a reader's private feed is written: `<output dir>/feeds/<token>.xml`."""
    return settings.output.dir / "feeds" / private_feed_name(token)


def private_feed_url(settings: Settings, token: str) -> str | None:
    """The address of a reader's private feed; None without `[output] base_url`."""
    base = settings.output.base_url
    return f"{base}feeds/{private_feed_name(token)}" if base else None


def site_link(settings: Settings) -> str:
    """The web page the feeds belong to: `[output] base_url`, else the site's index.html as a
    file: URL. RSS requires the channel's link, and a feed without one is invalid."""
    base = settings.output.base_url
    return base if base else (settings.output.dir.resolve() / "index.html").as_uri()


def window(dates: Iterable[dt.date], feed_days: int) -> dt.date | None:
    """The oldest date a feed keeps: `feed_days` days back from the newest date it has."""
    dates = list(dates)
    return max(dates) - dt.timedelta(days=feed_days - 1) if dates else None


NO_EXTRAS: Mapping[str, str] = {}  # a private feed's HTML under a paper: none


def items(
    entries: Iterable[tuple[dt.date, Sequence[Match]]],
    *,
    oldest: dt.date | None,
    views: Views,
    tldrs: Mapping[str, Tldr] = NO_TLDRS,
    extras: Mapping[str, str] = NO_EXTRAS,
) -> list[FeedItem]:
    """Feed items newest day first, each paper once (on the newest day that listed it).

    `views` (one per publishing run) holds what every feed shares of a paper; what an item says
    about its reader (the why line, the marked abstract) is built for each feed, not kept: most
    (paper, hits) pairs are a single reader's, and keeping them took 100 MB at 10,000 readers.
    """
    out: list[FeedItem] = []
    seen: set[str] = set()
    for date, matches in sorted(entries, key=lambda e: e[0], reverse=True):
        if oldest is not None and date < oldest:
            continue
        published = _published(date)
        for position, match in enumerate(matches):
            if match.paper.id in seen:
                continue
            seen.add(match.paper.id)
            updated = _updated(date, len(matches) - position)
            item = _item(match, date, published, updated, views, tldrs.get(match.paper.id))
            if extra := extras.get(match.paper.id):  # a private feed's "similar to", feedback links
                item = dataclasses.replace(item, description=item.description + extra)
            out.append(item)
    return out


@lru_cache(maxsize=64)
def _published(date: dt.date) -> str:
    return rfc822(dt.datetime.combine(date, dt.time(0, 0), tzinfo=dt.UTC))


@lru_cache(maxsize=8192)
def _updated(date: dt.date, seconds: int) -> str:
    """An entry's atom:updated: the day, plus a second per place from the bottom of its listing.
    No two entries of a feed share one (the Atom feed validator warns of each pair), the first
    of a day is its newest, and the same listing gives the same times in every run."""
    moment = dt.datetime.combine(date, dt.time(0, 0), tzinfo=dt.UTC) + dt.timedelta(seconds=seconds)
    return moment.isoformat().replace("+00:00", "Z")


def _item(
    match: Match, date: dt.date, published: str, updated: str, views: Views, tldr: Tldr | None = None
) -> FeedItem:
    view = views(match.paper, match.hits)
    guid = clean(match.paper.id).strip()
    abstract, spans = views.abstract(match.paper, match.hits)
    return FeedItem(
        paper=view,
        guid=guid,
        atom_id=_atom_id(guid),
        date=date,
        published=published,
        updated=updated,
        description=_description(view, abstract, spans, tldr),
        abstract=abstract,
    )


def render_rss(env: jinja2.Environment, meta: FeedMeta, feed_items: Sequence[FeedItem]) -> str:
    return render(load(env, RSS_TEMPLATE), _context(meta, feed_items))


def render_atom(env: jinja2.Environment, meta: FeedMeta, feed_items: Sequence[FeedItem]) -> str:
    return render(load(env, ATOM_TEMPLATE), _context(meta, feed_items))


def public_entries(days: Sequence[Day]) -> list[tuple[dt.date, Sequence[Match]]]:
    """A day's new papers as entries; Match without hits, since no profile is involved."""
    return [(day.date, [Match(p, 0.0) for p in day.papers]) for day in days]


def private_meta(settings: Settings, subscriber: Subscriber, token: str, now: dt.datetime) -> FeedMeta:
    who = clean(subscriber.name).strip() or "you"
    url = private_feed_url(settings, token)
    return FeedMeta(
        title=f"Paper Digest for {who}",
        description="New papers that matched your reading profile.",
        link=site_link(settings),
        self_url=url,
        alternate_url=None,
        id=url or f"urn:digest:feed:{token}",
        updated=now,
    )


def _context(meta: FeedMeta, feed_items: Sequence[FeedItem]) -> dict[str, Any]:
    return {
        "feed": meta,
        "items": feed_items,
        "build_date": rfc822(meta.updated),
        "updated": meta.updated.astimezone(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z"),
    }


# A tag: URI as RFC 4151 writes it (the feed validator's own pattern): a source's entry ids often
# are one, and they are already what an atom:id should be.
_TAG_URI = re.compile(
    r"tag:([a-z0-9._-]+?@)?[a-z0-9.-]+?,\d{4}(-\d{2}(-\d{2})?)?:[0-9a-zA-Z;/?:@&=+$._!~*'()%,-]*"
    r"(#[0-9a-zA-Z;/?:@&=+$._!~*'()%,-]*)?"
)
_HTTP_URI = re.compile(r"https?://[0-9A-Za-z;/?:@&=+$._!~*'()%,#\[\]-]+")
# What RFC 2141 allows in a URN's namespace-specific string, besides %XX escapes.
_URN_SAFE = "()+,.:=@;$_!*'-"


@lru_cache(maxsize=8192)
def _atom_id(paper_id: str) -> str:
    """The paper's id as an atom:id: itself when it is an http(s) or tag: URI, else a URN with
    every character RFC 2141 does not allow %-escaped (an old arXiv id's "/" among them)."""
    if _HTTP_URI.fullmatch(paper_id) or _TAG_URI.fullmatch(paper_id):
        return paper_id
    return "urn:digest:paper:" + quote(paper_id, safe=_URN_SAFE)


def _description(
    view: PaperView, abstract: str, spans: list[tuple[int, int]], tldr: Tldr | None = None
) -> str:
    # HTML as a plain str: the XML template escapes it once, which is what RSS readers expect.
    parts = []
    if view.authors:
        parts.append(f"<p><em>{view.authors_html}</em></p>")
    if tldr is not None:  # a model's answer: plain text, escaped like any stranger's
        parts.append(
            f"<p><strong>TL;DR</strong> (generated by {escape(tldr.model)}): {escape(tldr.text)}</p>"
        )
    if view.why_html:
        # without the email's text colour: a feed reader picks the background (dark, often).
        # str first: Markup.replace would escape the "<strong>" it is given.
        parts.append(f"<p>Why: matched {str(view.why_html).replace(STRONG_OPEN, '<strong>')}</p>")
    if view.is_summary:
        summary = str(view.snippet_html).replace(MARK_OPEN, "<strong>").replace(MARK_CLOSE, "</strong>")
        parts.append(f"<p><strong>AI summary:</strong> {summary}</p>")
    if abstract.strip():
        # <strong>, not <mark>: feed readers sanitise HTML, and <mark> rarely survives.
        parts.append(f"<p>{highlight(abstract, spans, mark_open=_B, mark_close=_B_END)}</p>")
    links = _links(view.url, view.pdf_url, view.github_url, view.project_url)
    if links:
        parts.append(links)
    return "".join(parts)


@lru_cache(maxsize=8192)  # the same for every reader of a paper
def _links(url: str | None, pdf_url: str | None, github_url: str | None, project_url: str | None) -> str:
    links = [
        f'<a href="{escape(link)}">{label}</a>'
        for label, link in (
            ("Abstract", url),
            ("PDF", pdf_url),
            ("Code", github_url),
            ("Project page", project_url),
        )
        if link
    ]
    return "<p>" + " · ".join(links) + "</p>" if links else ""
