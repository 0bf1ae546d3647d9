"""Parse any RSS/Atom feed into papers, and the feed loading the arXiv parser shares.

feedparser only ever sees bytes wrapped in a stream: given a bare `bytes` it would first try to
open them as a local file name. Its HTML sanitizer is off because everything here becomes plain
text, and the sanitizer would read the mathematics in `$\\frac{1}{3}<s<1$` as a tag `<s>`.
"""

from __future__ import annotations

import calendar
import datetime as dt
import io
import logging
import re
import time
from collections.abc import Iterable
from typing import Any
from xml.sax import SAXParseException

import feedparser

from digest.core.errors import ParseError
from digest.core.models import Paper, merge_papers
from digest.sources.text import (
    arxiv_id_from,
    collapse_ws,
    decode_tex_accents,
    drop_affiliation,
    split_authors,
    strip_html,
)

log = logging.getLogger(__name__)

# Quirks after which feedparser still read the whole document.
_RECOVERABLE = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
# rss.arxiv.org starts each description with "arXiv:2411.17700v1 Announce Type: new \nAbstract: ".
ARXIV_PREFIX_RE = re.compile(
    r"^\s*arXiv:\s*(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.I
)


def load_feed(body: bytes, source: str) -> Any:
    """feedparser's result for `body`, or a ParseError when it is not a whole, well-formed feed."""
    head = body[:1024].lstrip(b"\xef\xbb\xbf \t\r\n").lower()
    if not head:
        raise ParseError(source, "the response is empty, not a feed; check [[sources]] url")
    if head.startswith((b"<!doctype html", b"<html")):
        raise ParseError(
            source, "got an HTML page, not a feed (an error or login page?); check [[sources]] url"
        )
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        if isinstance(exc, _RECOVERABLE) or (
            isinstance(exc, SAXParseException) and "undefined entity" in str(exc)
        ):
            # feedparser read everything (re-decoded, or with its lenient parser): worth a note only.
            log.warning("source %r: feed has a quirk feedparser worked around: %s", source, exc)
        else:
            raise ParseError(
                source,
                f"the feed is not well-formed XML ({_describe(exc)}); it may be truncated or an error "
                "page, try again later",
            )
    if not parsed.get("version"):
        raise ParseError(source, "the response is not an RSS or Atom feed; check [[sources]] url")
    return parsed


def _describe(exc: object) -> str:
    if isinstance(exc, SAXParseException):
        return f"line {exc.getLineNumber()}, column {exc.getColumnNumber()}: {exc.getMessage()}"
    return f"{type(exc).__name__}: {exc}"


def entry_text(entry: Any, key: str) -> str:
    """The plain text of `title` or `summary` (falling back to Atom `content`), whatever its type."""
    detail = entry.get(f"{key}_detail")
    value = entry.get(key)
    if key == "summary" and entry.get("content") and (value is None or detail is None):
        # An Atom entry with only <content>: feedparser copies its value into `summary` but not
        # its type into `summary_detail`, so the type is read from `content` itself.
        detail = entry["content"][0]
        value = detail.get("value") if value is None else value
    if not isinstance(value, str):
        return ""
    kind = (detail or {}).get("type") or "text/plain"
    return strip_html(value) if "html" in kind else collapse_ws(value)


def entry_datetime(entry: Any, *keys: str) -> dt.datetime | None:
    """The first of `keys` (e.g. "published", "updated") feedparser could read, as an aware UTC time."""
    for key in keys:
        parsed = entry.get(f"{key}_parsed")
        if isinstance(parsed, time.struct_time):
            try:
                return dt.datetime.fromtimestamp(calendar.timegm(parsed), dt.UTC)
            except (OverflowError, ValueError, OSError):
                continue
    return None


def entry_authors(entry: Any) -> tuple[str, ...]:
    """Author names: one `dc:creator` string is split, separate Atom `<author>`s are taken as they are."""
    raw = [a.get("name") for a in entry.get("authors") or () if isinstance(a, dict)]
    names: list[str] = [n for n in raw if isinstance(n, str) and n.strip()]
    if not names and isinstance(entry.get("author"), str):
        names = [entry["author"]]
    # A single string is dc:creator's "A (Lab, Place), B and C"; legacy arXiv wraps names in <a>.
    pieces = split_authors(strip_html(names[0])) if len(names) == 1 else [strip_html(n) for n in names]
    return tuple(dict.fromkeys(decode_tex_accents(drop_affiliation(p)) for p in pieces if p))


def entry_terms(entry: Any) -> tuple[str, ...]:
    terms = (collapse_ws(t.get("term") or "") for t in entry.get("tags") or () if isinstance(t, dict))
    return tuple(dict.fromkeys(t for t in terms if t))


def arxiv_urls(paper_id: str) -> tuple[str, str]:
    return f"https://arxiv.org/abs/{paper_id}", f"https://arxiv.org/pdf/{paper_id}"


def _links(entry: Any) -> Iterable[str]:
    for key in ("link", "id"):
        if isinstance(entry.get(key), str):
            yield entry[key]
    for link in entry.get("links") or ():
        if isinstance(link, dict) and isinstance(link.get("href"), str):
            yield link["href"]


def _arxiv_id(entry: Any) -> tuple[str, int | None] | None:
    """The first arXiv id among link, guid/id and links, with a version from any that has one."""
    found = [hit for hit in map(arxiv_id_from, _links(entry)) if hit]
    if not found:
        return None
    paper_id = found[0][0]
    return paper_id, next((v for i, v in found if i == paper_id and v is not None), None)


def _pdf_link(entry: Any) -> str | None:
    for link in entry.get("links") or ():
        if isinstance(link, dict) and link.get("type") == "application/pdf" and link.get("href"):
            return str(link["href"]).strip()
    return None


def _doi(entry: Any) -> str | None:
    for key in ("arxiv_doi", "prism_doi", "dc_identifier"):
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            value = collapse_ws(value)
            if key == "dc_identifier":
                if not value.lower().startswith("doi:"):
                    continue
                value = value[4:].strip()
            return value
    return None


def parse_feed(body: bytes, source: str) -> list[Paper]:
    """Any RSS 0.9x/1.0/2.0 or Atom feed. An entry with an arXiv link, guid or id becomes that paper."""
    parsed = load_feed(body, source)
    papers: list[Paper] = []
    skipped = 0
    for entry in parsed.entries:
        title = entry_text(entry, "title")
        abstract = entry_text(entry, "summary")
        found = _arxiv_id(entry)
        url: str | None
        pdf_url: str | None
        announce_type = collapse_ws(entry.get("arxiv_announce_type") or "").lower() or None
        if found is not None:
            paper_id, version = found
            m = ARXIV_PREFIX_RE.match(abstract)
            if m:
                announce_type = announce_type or m["type"].lower()
                abstract = abstract[m.end() :]
            title, abstract = decode_tex_accents(title), decode_tex_accents(abstract)
            url, pdf_url = arxiv_urls(paper_id)
        else:
            version = None
            paper_id = collapse_ws(entry.get("id") or "") or collapse_ws(entry.get("link") or "")
            url = collapse_ws(entry.get("link") or "") or None
            pdf_url = _pdf_link(entry)
        if not paper_id or not title:
            skipped += 1
            continue
        journal_ref = entry.get("arxiv_journal_ref") or entry.get("arxiv_journal_reference")
        papers.append(
            Paper(
                id=paper_id,
                title=title,
                abstract=abstract,
                authors=entry_authors(entry),
                categories=entry_terms(entry),
                version=version,
                url=url,
                pdf_url=pdf_url,
                published=entry_datetime(entry, "published", "updated", "created"),
                sources=(source,),
                announce_type=announce_type,
                doi=_doi(entry),
                journal_ref=collapse_ws(journal_ref) if isinstance(journal_ref, str) else None,
            )
        )
    if skipped:
        log.warning("source %r: skipped %d entries without a title or an id/link", source, skipped)
    return merge_papers(papers)
