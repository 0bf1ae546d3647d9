"""The sources stage: fetch each configured source's bytes and parse them into a `Listing`.

Fetching (`fetch.Fetcher`) and parsing (`parse_*`, bytes in, papers out) are separate; this module
only joins them per source kind. It never touches the database: the fetcher reads the cache of
earlier validators, and the caller stores the returned `FetchResult`s with the snapshot.
"""

from __future__ import annotations

import datetime as dt
import logging

from digest.config import SourceConfig
from digest.core.errors import FetchError, ParseError
from digest.core.models import Listing, Paper, merge_papers
from digest.sources.arxiv import feed_error, feed_error_message, parse_arxiv_rss
from digest.sources.feed import load_feed, parse_feed
from digest.sources.fetch import CachedResponse, Fetcher, FetchResult, HTTPStatusError
from digest.sources.hf import parse_hf_daily, parse_hf_page

__all__ = [
    "CachedResponse",
    "FetchResult",
    "Fetcher",
    "fetch_listing",
    "parse_arxiv_rss",
    "parse_feed",
    "parse_hf_daily",
]

log = logging.getLogger(__name__)

HF_PAGE_SIZE = 100  # the API's maximum `limit`
HF_MAX_PAGES = 20  # per day; a day has a few dozen papers, so this only stops a runaway pager


def fetch_listing(
    source: SourceConfig, fetcher: Fetcher, date: dt.date, *, now: dt.datetime
) -> tuple[Listing, list[FetchResult]]:
    """Fetch and parse one configured source for run date `date`.

    Returns the listing (duplicates merged by id) and every response it was built from, in order.
    Raises FetchError or ParseError naming the URL or the source.
    """
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    if isinstance(date, dt.datetime):  # a datetime is a date too, but its isoformat() has a time
        date = date.date()
    if source.kind == "hf_daily":
        papers, results = _fetch_hf(source, fetcher, date)
    elif source.kind == "arxiv_rss":
        result = _fetch_arxiv(source, fetcher)
        papers, results = (
            parse_arxiv_rss(result.body, source.name, include_replacements=source.include_replacements),
            [result],
        )
    elif source.kind == "feed":
        result = fetcher.get(source.url)
        papers, results = parse_feed(result.body, source.name), [result]
    else:  # pragma: no cover - SourceConfig validates the kind
        raise ValueError(f"unknown source kind {source.kind!r}")
    listing = Listing(
        source=source.name, papers=tuple(merge_papers(papers)), fetched_at=now.astimezone(dt.UTC)
    )
    return listing, results


def _fetch_hf(source: SourceConfig, fetcher: Fetcher, date: dt.date) -> tuple[list[Paper], list[FetchResult]]:
    """The run date and the `days - 1` days before it (a day's list fills up during that day)."""
    papers: list[Paper] = []
    results: list[FetchResult] = []
    for back in range(source.days):
        day = (date - dt.timedelta(days=back)).isoformat()
        seen: set[str] = set()
        for page in range(HF_MAX_PAGES):
            params = {"date": day, "limit": str(HF_PAGE_SIZE), "p": str(page)}
            result = fetcher.get(source.url, params)
            results.append(result)
            items = parse_hf_page(result.body, source.name)
            papers.extend(items)
            fresh = {p.id for p in items} - seen
            seen |= fresh
            # A short page is the last; a page with nothing new means the server ignores `p`.
            if len(items) < HF_PAGE_SIZE or not fresh:
                break
        else:
            log.warning(
                "source %r: stopped after %d pages for %s; the listing may be incomplete",
                source.name, HF_MAX_PAGES, day,
            )  # fmt: skip
    return papers, results


def _fetch_arxiv(source: SourceConfig, fetcher: Fetcher) -> FetchResult:
    """GET the feed; arXiv's "Feed error for query" channel (HTTP 400, or 200) names the category."""
    try:
        result = fetcher.get(source.url)
    except HTTPStatusError as exc:
        explained = _arxiv_error(exc.body, source)
        if explained is not None:
            raise FetchError(exc.url, explained) from None
        raise
    explained = _arxiv_error(result.body, source)
    if explained is not None:
        raise FetchError(result.url, explained)
    return result


def _arxiv_error(body: bytes, source: SourceConfig) -> str | None:
    if b"feed error for query" not in body[:4096].lower():
        return None
    try:
        parsed = load_feed(body, source.name)
    except ParseError:
        return None
    error = feed_error(parsed)
    return None if error is None else feed_error_message(source.url, error[1])
