"""JSON Feed (https://jsonfeed.org/version/1.1, and version 1) read into the shape feedparser gives
an RSS or Atom feed, so that the feed-based parsers read its items with the same helpers
(`entries.py`) and every feed is normalised the same way. A format adapter; no business logic.

feedparser (6.0) reads only XML: a JSON Feed would be "not well-formed XML" there.
"""

from __future__ import annotations

import datetime as dt
import json
import re
import time
from typing import Any

from feedparser import FeedParserDict

from digest.core.errors import ParseError

VERSION_PREFIXES = ("https://jsonfeed.org/version/", "http://jsonfeed.org/version/")


def looks_like_json(head: bytes) -> bool:
    """Whether a body whose leading whitespace and BOM are gone is JSON rather than XML."""
    return head.startswith((b"{", b"["))


def load_json_feed(body: bytes, source: str) -> FeedParserDict:
    """A JSON Feed as feedparser's result (`version` "json1" or "json11", `feed`, `entries`).

    Raises ParseError, in one line, for JSON cut short (try again), JSON that is broken for good,
    and JSON that is not a JSON Feed (another API's answer: check the URL).
    """
    doc = _decode(body, source)
    version = doc.get("version") if isinstance(doc, dict) else None
    if not isinstance(version, str) or not version.startswith(VERSION_PREFIXES):
        raise ParseError(
            source,
            'got JSON that is not a JSON Feed (no "version": "https://jsonfeed.org/version/1.1"); '
            "check [[sources]] url",
        )
    items = doc.get("items")
    if not isinstance(items, list):
        raise ParseError(source, 'the JSON Feed has no "items" list; check [[sources]] url')
    feed_authors = _authors(doc)
    feed = FeedParserDict(title=_str(doc.get("title")), link=_str(doc.get("home_page_url")))
    entries = [_entry(item, feed_authors) if isinstance(item, dict) else FeedParserDict() for item in items]
    number = version.rstrip("/").rsplit("/", 1)[-1].replace(".", "")
    return FeedParserDict(feed=feed, entries=entries, version=f"json{number}", bozo=False)


# A JSON string may escape half of a UTF-16 pair ("\ud83d": an emoji cut in half by a truncated
# title), which json.loads gives as a lone surrogate: no UTF-8 can hold one, so the state refused
# a paper id with one (a traceback). Each becomes U+FFFD, as an undecodable byte would.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_SURROGATE = re.compile("[\ud800-\udfff]")


def without_lone_surrogates(value: Any, body: bytes) -> Any:
    """`value` (json.loads of `body`) with every lone surrogate in its strings U+FFFD.

    Walked only when `body` escapes a surrogate at all; a structure too deep to walk is a
    RecursionError, as json.loads's own."""
    if not _SURROGATE_ESCAPE.search(body):
        return value
    return _scrubbed(value)


def _scrubbed(value: Any) -> Any:
    if isinstance(value, str):
        return _SURROGATE.sub("\ufffd", value)
    if isinstance(value, list):
        return [_scrubbed(item) for item in value]
    if isinstance(value, dict):
        return {_scrubbed(key): _scrubbed(item) for key, item in value.items()}
    return value


def _decode(body: bytes, source: str) -> Any:
    try:
        text = body.decode("utf-8-sig")  # JSON is UTF-8 (RFC 8259)
    except UnicodeDecodeError as exc:
        raise ParseError(
            source, f"the JSON Feed is not UTF-8 (byte {exc.start}); tell its publisher"
        ) from None
    try:
        return without_lone_surrogates(json.loads(text), body)
    except RecursionError:
        raise ParseError(source, "the JSON Feed is nested too deeply; tell its publisher") from None
    except json.JSONDecodeError as exc:
        where = f"line {exc.lineno}, column {exc.colno}: {exc.msg}"
        # A string left open runs to the end: the text stops inside it.
        if exc.pos >= len(text.rstrip()) or exc.msg.startswith("Unterminated string"):
            raise ParseError(
                source, f"the JSON Feed ends before it is complete ({where}); it was cut off, try again later"
            ) from None
        raise ParseError(
            source,
            f"the JSON Feed is not valid JSON ({where}); the feed itself is broken, tell its publisher",
        ) from None


def _entry(item: dict[str, Any], feed_authors: list[dict[str, str]]) -> FeedParserDict:
    entry = FeedParserDict()
    if isinstance(item.get("id"), str | int | float) and not isinstance(item.get("id"), bool):
        entry["id"] = str(item["id"])  # version 1 allowed numbers
    links = [link for link in (_str(item.get("url")), _str(item.get("external_url"))) if link]
    if links:
        entry["link"] = links[0]
    entry["links"] = [FeedParserDict(href=link) for link in links] + _attachments(item)
    if _str(item.get("title")):
        entry["title"] = item["title"]
        entry["title_detail"] = FeedParserDict(type="text/plain")
    for key, kind in (
        ("content_html", "text/html"),
        ("content_text", "text/plain"),
        ("summary", "text/plain"),
    ):
        if _str(item.get(key)):
            entry["summary"] = item[key]
            entry["summary_detail"] = FeedParserDict(type=kind)
            break
    entry["authors"] = _authors(item) or feed_authors
    entry["tags"] = [FeedParserDict(term=t) for t in item.get("tags") or () if isinstance(t, str)]
    for key, field in (("published_parsed", "date_published"), ("updated_parsed", "date_modified")):
        when = _time(item.get(field))
        if when is not None:
            entry[key] = when
    return entry


def _authors(obj: dict[str, Any]) -> list[dict[str, str]]:
    """`authors` (version 1.1) or `author` (version 1) as feedparser's `[{"name": ...}]`."""
    found = obj.get("authors")
    if not isinstance(found, list):
        found = [obj.get("author")]
    return [FeedParserDict(name=a["name"]) for a in found if isinstance(a, dict) and _str(a.get("name"))]


def _attachments(item: dict[str, Any]) -> list[FeedParserDict]:
    return [
        FeedParserDict(href=a["url"], type=_str(a.get("mime_type")))
        for a in item.get("attachments") or ()
        if isinstance(a, dict) and _str(a.get("url"))
    ]


def _time(value: object) -> time.struct_time | None:
    """An RFC 3339 date as a UTC `struct_time`, as feedparser gives its `*_parsed` dates."""
    if not isinstance(value, str):
        return None
    try:
        when = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00").replace("z", "+00:00"))
    except ValueError:
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return when.astimezone(dt.UTC).timetuple()


def _str(value: object) -> str:
    return value.strip() if isinstance(value, str) else ""
