"""Parse arXiv's RSS listings: the current rss.arxiv.org format (since 2024) and the legacy RSS 1.0.

Current: guid `oai:arXiv.org:2411.17700v1`, description `arXiv:2411.17700v1 Announce Type: new
\\nAbstract: ...` in plain text (raw LaTeX, `<` as itself), `<category>` per category,
`<arxiv:announce_type>`, one comma-joined `<dc:creator>`.
Legacy: title `Title. (arXiv:1805.08875v1 [hep-ex] CROSS LISTED)`, HTML `<p>` abstracts, authors
as HTML links.
An unknown category answers (with HTTP 400) a channel titled "Feed error for query: <url>".
"""

from __future__ import annotations

import logging
import re
from typing import Any
from urllib.parse import urlsplit

from digest.core.errors import ParseError
from digest.core.models import REPLACEMENT_TYPES, Paper, merge_papers
from digest.sources.feed import (
    ARXIV_PREFIX_RE,
    arxiv_urls,
    entry_authors,
    entry_datetime,
    entry_terms,
    entry_text,
    load_feed,
)
from digest.sources.text import arxiv_id_from, collapse_ws, decode_tex_accents, strip_html

log = logging.getLogger(__name__)

_LEGACY_TITLE_RE = re.compile(
    r"^(?P<title>.*?)\.?\s*\(arXiv:(?P<id>[^\s\[\]()]+)\s*\[(?P<cat>[^\]]*)\]"
    r"\s*(?P<flag>[A-Za-z][A-Za-z ]*)?\)\s*$",
    re.S,
)
_LEGACY_FLAGS = {"": "new", "cross listed": "cross", "updated": "replace"}
FEED_ERROR_TITLE = "feed error for query"


def parse_arxiv_rss(body: bytes, source: str, *, include_replacements: bool = False) -> list[Paper]:
    """An arXiv RSS listing (current or legacy format) as papers; an empty day is an empty list."""
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
        log.warning("source %r: skipped %d items without an arXiv id", source, skipped)
    return merge_papers(papers)


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


def _paper(entry: Any, source: str, include_replacements: bool, channel_date: Any) -> Paper | None:
    title = entry_text(entry, "title")
    description = entry.get("summary") if isinstance(entry.get("summary"), str) else ""
    announce_type = collapse_ws(entry.get("arxiv_announce_type") or "").lower() or None
    categories = entry_terms(entry)
    candidates = [arxiv_id_from(entry.get("id"))]

    legacy = _LEGACY_TITLE_RE.match(title)
    if legacy:
        title = collapse_ws(legacy["title"])
        candidates.append(arxiv_id_from(legacy["id"]))
        categories = categories or tuple(c for c in legacy["cat"].split() if c)
        flag = collapse_ws(legacy["flag"] or "").lower()
        announce_type = announce_type or _LEGACY_FLAGS.get(flag, flag or "new")

    prefix = ARXIV_PREFIX_RE.match(description)
    if prefix:
        # Plain text with raw LaTeX: `<` is a less-than sign here, never a tag.
        abstract = collapse_ws(description[prefix.end() :])
        candidates.append(arxiv_id_from(prefix["id"]))
        announce_type = announce_type or prefix["type"].lower()
    else:
        abstract = strip_html(description)
    candidates.append(arxiv_id_from(entry.get("link")))

    found = [c for c in candidates if c is not None]
    if not found or not title:
        return None
    paper_id = found[0][0]
    version = next((v for i, v in found if i == paper_id and v is not None), None)
    url, pdf_url = arxiv_urls(paper_id)
    doi = collapse_ws(entry.get("arxiv_doi") or "") or None
    journal_ref = collapse_ws(entry.get("arxiv_journal_reference") or entry.get("arxiv_journal_ref") or "")
    return Paper(
        id=paper_id,
        title=decode_tex_accents(title),
        abstract=decode_tex_accents(abstract),
        authors=entry_authors(entry),
        categories=categories,
        version=version,
        url=url,
        pdf_url=pdf_url,
        published=entry_datetime(entry, "published", "updated") or channel_date,
        sources=(source,),
        announce_type=announce_type,
        is_replacement=announce_type in REPLACEMENT_TYPES and not include_replacements,
        doi=doi,
        journal_ref=journal_ref or None,
    )
