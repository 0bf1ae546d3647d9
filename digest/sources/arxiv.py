"""Parse arXiv's RSS listings: the current rss.arxiv.org format (since 2024) and the legacy RSS 1.0.

Current: guid `oai:arXiv.org:2411.17700v1`, description `arXiv:2411.17700v1 Announce Type: new
\\nAbstract: ...` in plain text (raw LaTeX, `<` as itself), `<category>` per category,
`<arxiv:announce_type>`, one comma-joined `<dc:creator>`.
Legacy: title `Title. (arXiv:1805.08875v1 [hep-ex] CROSS LISTED)`, HTML `<p>` abstracts, authors
as HTML links.
An unknown category answers (with HTTP 400) a channel titled "Feed error for query: <url>".
"""

from __future__ import annotations

import datetime as dt
import email.utils
import logging
import re
from typing import Any, ClassVar
from urllib.parse import urlsplit

from digest.config import SourceConfig
from digest.core.errors import FetchError, ParseError
from digest.core.models import Paper, merge_papers
from digest.sources.base import Parsed
from digest.sources.entries import (
    Announcement,
    announcement,
    arxiv_urls,
    entry_authors,
    entry_datetime,
    entry_doi,
    entry_journal_ref,
    entry_terms,
    entry_text,
    first_arxiv_id,
    load_feed,
)
from digest.sources.fetch import Fetcher, FetchResult, HTTPStatusError
from digest.sources.text import arxiv_id_from, collapse_ws, decode_tex_accents, strip_html

log = logging.getLogger(__name__)

FEED_ERROR_TITLE = "feed error for query"


class ArxivRssSource:
    """An rss.arxiv.org listing (`https://rss.arxiv.org/rss/cs.CL`), current or legacy format."""

    kind: ClassVar[str] = "arxiv_rss"
    label: ClassVar[str | None] = "arXiv"

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    def fetch(self, fetcher: Fetcher, date: dt.date) -> list[FetchResult]:
        """The feed; arXiv's "Feed error for query" channel (HTTP 400, or 200) names the category."""
        try:
            result = fetcher.get(self.config.url)
        except HTTPStatusError as exc:
            explained = self._error(exc.body)
            if explained is not None:
                raise FetchError(exc.url, explained) from None
            raise
        explained = self._error(result.body)
        if explained is not None:
            raise FetchError(result.url, explained)
        return [result]

    def parse(self, body: bytes) -> Parsed:
        return _parse(body, self.config.name, self.config.include_replacements)

    def _error(self, body: bytes) -> str | None:
        if b"feed error for query" not in body[:4096].lower():
            return None
        try:
            parsed = load_feed(body, self.config.name)
        except ParseError:
            return None
        error = feed_error(parsed)
        return None if error is None else feed_error_message(self.config.url, error[1])


def parse_arxiv_rss(body: bytes, source: str, *, include_replacements: bool = False) -> list[Paper]:
    """An arXiv RSS listing (current or legacy format) as papers; an empty day is an empty list."""
    return _parse(body, source, include_replacements).papers


def _parse(body: bytes, source: str, include_replacements: bool) -> Parsed:
    """The listing's papers, and how many items were skipped (no arXiv id, or no title)."""
    parsed = load_feed(body, source)
    error = feed_error(parsed)
    if error is not None:
        query, description = error
        raise ParseError(source, feed_error_message(query, description))
    channel_date = entry_datetime(parsed.feed, "published", "updated")
    papers: list[Paper] = []
    skipped = 0
    for entry in parsed.entries:
        paper = _paper(entry, source, include_replacements, channel_date)
        if paper is None:
            skipped += 1
        else:
            papers.append(paper)
    if skipped and not papers:
        raise ParseError(
            source,
            f'none of the {skipped} items has an arXiv id; for a feed that is not arXiv\'s use kind = "feed"',
        )
    if skipped:
        log.warning("source %r: skipped %d items without an arXiv id or a title", source, skipped)
    return Parsed(merge_papers(papers), skipped=skipped)


_CHANNEL_DATE = re.compile(rb"<(pubDate|dc:date)>\s*([^<]{1,100}?)\s*</\1>")


def announced_day(body: bytes) -> dt.date | None:
    """The announcement day a listing says it is of: the channel's `pubDate` (current format) or
    `dc:date` (legacy), as a date where arXiv is (its own UTC offset). None when it has none.

    Read from the channel's head with a pattern rather than a second parse of a feed that may be
    megabytes long; items come after it and are not looked at.
    """
    end = body.find(b"<item")
    head = body[: end if end >= 0 else 64 * 1024]
    for _tag, value in _CHANNEL_DATE.findall(head):
        text = value.decode("ascii", "replace").strip()
        try:
            when = email.utils.parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            try:
                when = dt.datetime.fromisoformat(text.replace("Z", "+00:00"))
            except ValueError:
                continue
        return when.date()
    return None


def feed_error(parsed: Any) -> tuple[str, str] | None:
    """(the query URL, arXiv's explanation) when this is arXiv's "Feed error for query" channel."""
    title = collapse_ws(parsed.feed.get("title") or "")
    if not title.lower().startswith(FEED_ERROR_TITLE):
        return None
    query = title[len(FEED_ERROR_TITLE) :].lstrip(" :") or collapse_ws(parsed.feed.get("link") or "")
    return query, collapse_ws(parsed.feed.get("description") or "")


def feed_error_message(url: str, description: str = "") -> str:
    """ "arXiv says the feed URL is wrong: unknown category 'cs.XX' in <url>; check [[sources]] url"."""
    path = urlsplit(url).path.rstrip("/")
    segment = path.split("/rss/", 1)[1] if "/rss/" in path else path.rsplit("/", 1)[-1]
    category = segment or url
    # arXiv names the culprit ("Bad archive 'astroph'"); prefer it when it is one of ours.
    named = re.search(r"'([^']+)'", description)
    if named and named.group(1) in segment.split("+") and named.group(1) != segment:
        category = named.group(1)
    message = (
        f"arXiv says the feed URL is wrong: unknown category {category!r} in {url}; check [[sources]] url"
    )
    if description:
        message += f" (arXiv: {description[:300]})"
    return message


def _paper(
    entry: Any, source: str, include_replacements: bool, channel_date: dt.datetime | None
) -> Paper | None:
    description = entry.get("summary") if isinstance(entry.get("summary"), str) else ""
    said = announcement(entry, entry_text(entry, "title"), description)
    found = first_arxiv_id([arxiv_id_from(entry.get("id")), *said.ids, arxiv_id_from(entry.get("link"))])
    if found is None or not said.title:
        return None
    paper_id, version = found
    url, pdf_url = arxiv_urls(paper_id)
    return Paper(
        id=paper_id,
        title=decode_tex_accents(said.title),
        abstract=decode_tex_accents(_abstract(said, description)),
        authors=entry_authors(entry),
        categories=entry_terms(entry) or said.categories,
        version=version,
        url=url,
        pdf_url=pdf_url,
        published=entry_datetime(entry, "published", "updated") or channel_date,
        sources=(source,),
        announce_type=said.announce_type,
        is_replacement=said.is_replacement(include_replacements),
        doi=entry_doi(entry, ("arxiv_doi",)),
        journal_ref=entry_journal_ref(entry, "arxiv_journal_reference", "arxiv_journal_ref"),
    )


def _abstract(said: Announcement, description: str) -> str:
    # After the current format's head the description is plain text with raw LaTeX: `<` is a
    # less-than sign there, never a tag. Without the head it is the legacy format's HTML.
    return strip_html(description) if said.rest is None else collapse_ws(said.rest)
