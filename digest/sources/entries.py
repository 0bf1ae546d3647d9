"""Feed entries, normalised: load a feed and read one entry's text, dates, authors, terms, links, ids,
DOI and arXiv announcement. Helpers for the feed-based parsers (`arxiv`, `feed`); they hold no
business logic beyond what a feed entry says about itself.

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
from typing import Any, NamedTuple
from xml.parsers import expat
from xml.sax import SAXParseException

import feedparser

from digest.core.errors import ParseError
from digest.core.models import REPLACEMENT_TYPES
from digest.sources.jsonfeed import load_json_feed, looks_like_json
from digest.sources.text import (
    arxiv_id_from,
    collapse_ws,
    decode_tex_accents,
    drop_affiliation,
    split_authors,
    strip_html,
)

log = logging.getLogger(__name__)

IdHit = tuple[str, int | None]  # a bare arXiv id and the version named with it, if any

_BOM = b"\xef\xbb\xbf"
_EMAIL_RE = re.compile(r"^\s*(?:mailto:)?[^\s@()<>]+@[^\s@()<>]+\.[^\s@()<>]+\s*$", re.I)
# What expat says of a document that stops before its root element is closed.
_CUT_SHORT = frozenset({"no element found", "unclosed token", "unclosed CDATA section"})
_CUT_SHORT_MESSAGE = (
    "the feed ends before it is complete ({where}); it was cut off in transit or by the server, "
    "try again later"
)
_BROKEN_MESSAGE = (
    "the feed is not well-formed XML ({where}); the feed itself is broken and retrying will not "
    "help: tell its publisher, or check [[sources]] url"
)
# Slips of a whole document that feedparser's lenient parser reads in full: an HTML entity
# (`&nbsp;`) XML does not define, a namespace prefix (`itunes:`) the feed never declared.
_LENIENT_READS = frozenset({"undefined entity", "unbound prefix"})
# Quirks after which feedparser still read the whole document.
_RECOVERABLE = (feedparser.CharacterEncodingOverride, feedparser.NonXMLContentType)
# rss.arxiv.org starts each description with "arXiv:2411.17700v1 Announce Type: new \nAbstract: ".
ARXIV_PREFIX_RE = re.compile(
    r"^\s*arXiv:\s*(?P<id>\S+)\s+Announce Type:\s*(?P<type>[\w-]+)\s*(?:Abstract:\s*)?", re.I
)
# The legacy (before 2024) arXiv RSS title: "Title. (arXiv:1805.08875v1 [hep-ex] CROSS LISTED)".
_LEGACY_TITLE_RE = re.compile(
    r"^(?P<title>.*?)\.?\s*\(arXiv:(?P<id>[^\s\[\]()]+)\s*\[(?P<cat>[^\]]*)\]"
    r"\s*(?P<flag>[A-Za-z][A-Za-z ]*)?\)\s*$",
    re.S,
)
_LEGACY_FLAGS = {"": "new", "cross listed": "cross", "updated": "replace"}


def load_feed(body: bytes, source: str) -> Any:
    """feedparser's result for `body` (RSS 0.9x/1.0/2.0, Atom, or a JSON Feed read into the same
    shape), or a ParseError when it is not a whole, well-formed feed. The error tells a feed cut
    short (try again later) from one that is broken for good (retrying will not help)."""
    body = _trim_head(body)
    head = body[:1024].lstrip(_BOM + b" \t\r\n").lower()
    if not head.strip():
        raise ParseError(source, "the response is empty, not a feed; check [[sources]] url")
    if head.startswith((b"<!doctype html", b"<html")):
        raise ParseError(
            source, "got an HTML page, not a feed (an error or login page?); check [[sources]] url"
        )
    if looks_like_json(head):
        return load_json_feed(body, source)
    body = _without_surrogate_refs(body)
    parsed = feedparser.parse(io.BytesIO(body), sanitize_html=False, resolve_relative_uris=False)
    if parsed.get("bozo"):
        exc = parsed.get("bozo_exception")
        if isinstance(exc, _RECOVERABLE) or (
            isinstance(exc, SAXParseException) and exc.getMessage() in _LENIENT_READS
        ):
            # feedparser read everything (re-decoded, or with its lenient parser): worth a note only.
            # But expat stopped at the slip and never saw the rest: read it past such slips.
            later = _error_past_slips(body) if not isinstance(exc, _RECOVERABLE) else None
            if later is not None:
                raise ParseError(source, later)
            log.warning("source %r: feed has a quirk feedparser worked around: %s", source, exc)
        else:
            raise ParseError(source, _broken(exc))
    if not parsed.get("version"):
        raise ParseError(source, "the response is not an RSS, Atom or JSON Feed; check [[sources]] url")
    return parsed


# A character reference to half of a UTF-16 pair ("&#xD83D;", an emoji cut in half): XML forbids
# it, so expat stops, and feedparser's lenient reader then raised UnicodeEncodeError (a traceback
# for the run). Each becomes U+FFFD, as a lone surrogate in JSON does (`jsonfeed`).
_CHAR_REF = re.compile(rb"&#(?:[xX]([0-9a-fA-F]{1,8})|([0-9]{1,10}));")


def _without_surrogate_refs(body: bytes) -> bytes:
    """`body` with every character reference to a surrogate (U+D800-DFFF) one to U+FFFD."""
    if b"&#" not in body:
        return body

    def replaced(m: re.Match[bytes]) -> bytes:
        code = int(m.group(1), 16) if m.group(1) else int(m.group(2))
        return b"&#xFFFD;" if 0xD800 <= code <= 0xDFFF else m.group()

    return _CHAR_REF.sub(replaced, body)


def _trim_head(body: bytes) -> bytes:
    """`body` without the whitespace some servers send before `<?xml` (after a BOM, if any).

    An XML declaration must come first, so expat refuses such a feed although every entry is
    there. Only ASCII whitespace before a `<` goes: UTF-16 and UTF-32 bodies are left alone.
    """
    bom = _BOM if body.startswith(_BOM) else b""
    rest = body[len(bom) :]
    trimmed = rest.lstrip(b" \t\r\n")
    if len(trimmed) != len(rest) and trimmed.startswith(b"<"):
        return bom + trimmed
    return body


def _error_past_slips(body: bytes) -> str | None:
    """Why the document is refused when undefined entities and undeclared prefixes are let be;
    None when it is whole apart from them (or in an encoding expat cannot judge)."""
    parser = expat.ParserCreate()  # no namespace processing: an undeclared prefix is no error
    parser.UseForeignDTD(True)  # an entity the document does not define is then the DTD's
    try:
        parser.Parse(body, True)
    except (ValueError, LookupError):  # "multi-byte encodings are not supported" (GB2312, Big5)
        return None
    except expat.ExpatError as exc:
        message = expat.errors.messages[exc.code]
        if message == expat.errors.XML_ERROR_UNKNOWN_ENCODING:
            return None
        where = f"line {exc.lineno}, column {exc.offset}: {message}"
        return (
            _CUT_SHORT_MESSAGE.format(where=where)
            if message in _CUT_SHORT
            else _BROKEN_MESSAGE.format(where=where)
        )
    return None


def _broken(exc: object) -> str:
    """Why a feed is refused: cut short (the next fetch may be whole), or broken for good."""
    if isinstance(exc, SAXParseException) and exc.getMessage() in _CUT_SHORT:
        return _CUT_SHORT_MESSAGE.format(where=_describe(exc))
    return _BROKEN_MESSAGE.format(where=_describe(exc))


def _describe(exc: object) -> str:
    if isinstance(exc, SAXParseException):
        return f"line {exc.getLineNumber()}, column {exc.getColumnNumber()}: {exc.getMessage()}"
    return f"{type(exc).__name__}: {exc}"


def feed_title(parsed: Any) -> str | None:
    """The channel's own title, one line, if it has one."""
    title = parsed.feed.get("title")
    return (collapse_ws(title) or None) if isinstance(title, str) else None


# -- one entry -------------------------------------------------------------------------------------


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
    names: list[str] = [n for n in raw if isinstance(n, str) and _is_name(n)]
    if not names and isinstance(entry.get("author"), str) and _is_name(entry["author"]):
        names = [entry["author"]]  # RSS <author> is "email (Name)"; a bare address is no name
    # A single string is dc:creator's "A (Lab, Place), B and C"; legacy arXiv wraps names in <a>.
    pieces = split_authors(strip_html(names[0])) if len(names) == 1 else [strip_html(n) for n in names]
    return tuple(dict.fromkeys(decode_tex_accents(drop_affiliation(p)) for p in pieces if p))


def _is_name(text: str) -> bool:
    """Not blank, not an e-mail address (nor the "mailto:" feedparser leaves of `mailto:a@b.c`)."""
    return bool(text.strip().lower().removeprefix("mailto:").strip()) and not _EMAIL_RE.match(text)


def entry_terms(entry: Any) -> tuple[str, ...]:
    terms = (collapse_ws(t.get("term") or "") for t in entry.get("tags") or () if isinstance(t, dict))
    return tuple(dict.fromkeys(t for t in terms if t))


def entry_links(entry: Any) -> Iterable[str]:
    """link, guid/id, then every <link href>, in that order."""
    for key in ("link", "id"):
        if isinstance(entry.get(key), str):
            yield entry[key]
    for link in entry.get("links") or ():
        if isinstance(link, dict) and isinstance(link.get("href"), str):
            yield link["href"]


def entry_pdf_link(entry: Any) -> str | None:
    for link in entry.get("links") or ():
        if isinstance(link, dict) and link.get("type") == "application/pdf" and link.get("href"):
            return str(link["href"]).strip()
    return None


def entry_doi(entry: Any, keys: Iterable[str] = ("arxiv_doi", "prism_doi", "dc_identifier")) -> str | None:
    for key in keys:
        value = entry.get(key)
        if isinstance(value, str) and value.strip():
            value = collapse_ws(value)
            if key == "dc_identifier":
                if not value.lower().startswith("doi:"):
                    continue
                value = value[4:].strip()
            return value
    return None


def entry_journal_ref(entry: Any, *keys: str) -> str | None:
    for key in keys:
        value = entry.get(key)
        if value:
            return (collapse_ws(value) or None) if isinstance(value, str) else None
    return None


# -- arXiv -----------------------------------------------------------------------------------------


def arxiv_urls(paper_id: str) -> tuple[str, str]:
    return f"https://arxiv.org/abs/{paper_id}", f"https://arxiv.org/pdf/{paper_id}"


def first_arxiv_id(hits: Iterable[IdHit | None]) -> IdHit | None:
    """The first id found, with a version from any hit for that id that has one."""
    found = [hit for hit in hits if hit]
    if not found:
        return None
    paper_id = found[0][0]
    return paper_id, next((v for i, v in found if i == paper_id and v is not None), None)


class Announcement(NamedTuple):
    """What an entry of an arXiv listing says about itself, in either of arXiv's RSS formats."""

    title: str  # without the legacy "(arXiv:... [cat] FLAG)" tail
    rest: str | None  # the description after the "arXiv:... Announce Type: ..." head; None: no head
    announce_type: str | None  # new, cross, replace, replace-cross
    ids: tuple[IdHit, ...]  # the arXiv ids the legacy title and the description head name
    categories: tuple[str, ...]  # the legacy title's categories

    def is_replacement(self, include_replacements: bool) -> bool:
        """A new version of an old paper (unless the source counts replacements as new)."""
        return self.announce_type in REPLACEMENT_TYPES and not include_replacements


def entry_announce_type(entry: Any) -> str | None:
    """`<arxiv:announce_type>`, lower-case."""
    value = entry.get("arxiv_announce_type")
    return (collapse_ws(value).lower() or None) if isinstance(value, str) else None


def announcement(entry: Any, title: str, description: str) -> Announcement:
    """The announce type from `<arxiv:announce_type>`, else the legacy title's flag, else the
    description head; the title and description without what only told the announcement."""
    announce_type = entry_announce_type(entry)
    ids: list[IdHit | None] = []
    categories: tuple[str, ...] = ()
    legacy = _LEGACY_TITLE_RE.match(title)
    if legacy:
        title = collapse_ws(legacy["title"])
        ids.append(arxiv_id_from(legacy["id"]))
        categories = tuple(c for c in legacy["cat"].split() if c)
        flag = collapse_ws(legacy["flag"] or "").lower()
        announce_type = announce_type or _LEGACY_FLAGS.get(flag, flag or "new")
    rest = None
    prefix = ARXIV_PREFIX_RE.match(description)
    if prefix:
        rest = description[prefix.end() :]
        ids.append(arxiv_id_from(prefix["id"]))
        announce_type = announce_type or prefix["type"].lower()
    return Announcement(title, rest, announce_type, tuple(i for i in ids if i), categories)
