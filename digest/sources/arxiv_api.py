"""Backfill arXiv announcement days through the arXiv API (`export.arxiv.org/api/query`).

arXiv's RSS shows only the latest announcement: the papers of a day no run fetched are gone from
it the next day. The API still has them. An announcement day's papers are the new submissions of
its window: those received between 14:00 US Eastern on the business day before the one before
it and 14:00 on the business day before it (Thursday's listing: Tuesday 14:00 to Wednesday 14:00;
Monday's: Thursday 14:00 to Friday 14:00). The query asks for the feed's categories in that
window, sorted by submission date, a page at a time, `[fetch] api_delay` seconds apart (arXiv's
terms ask for 3 s); the fetcher retries a 429 or 503, honouring Retry-After.

Holidays are not known here: a holiday is asked for like any weekday and has nothing, and the day
after it gets its papers from the window it is given, which can miss the papers held over the
holiday. Replacements are not listed by the API's date query, only new submissions and
cross-lists, which is what "new" means anyway.

Atom parsing is pure (bytes in, papers out); `fetch_days` is the only network.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging
import zoneinfo
from typing import Any
from urllib.parse import unquote, urlsplit

from digest.config import SourceConfig
from digest.core.errors import ParseError
from digest.core.models import Paper
from digest.sources.entries import (
    arxiv_urls,
    entry_authors,
    entry_datetime,
    entry_doi,
    entry_journal_ref,
    entry_terms,
    entry_text,
    load_feed,
)
from digest.sources.fetch import Fetcher, FetchResult
from digest.sources.text import arxiv_id_from, collapse_ws, decode_tex_accents

log = logging.getLogger(__name__)

ARXIV_TZ = zoneinfo.ZoneInfo("America/New_York")
CUTOFF = dt.time(14, 0)  # arXiv's daily submission deadline, US Eastern
PAGE_SIZE = 200
MAX_PAGES = 50  # per day: a busy day of all of cs is a few thousand papers
PACE_KEY = "arxiv-api"
# Archives whose categories have subject classes ("cs.CL"): the whole archive is `cat:cs.*`.
_WITH_CLASSES = frozenset(
    {"astro-ph", "cond-mat", "cs", "econ", "eess", "math", "nlin", "physics", "q-bio", "q-fin", "stat"}
)


@dataclasses.dataclass(frozen=True)
class Page:
    """One API response: its papers and how many the query matched in all."""

    papers: list[Paper]
    total: int | None


def categories(feed_url: str) -> list[str]:
    """The categories of an rss.arxiv.org feed URL (`.../rss/cs.CL+cs.LG` -> cs.CL, cs.LG)."""
    path = unquote(urlsplit(feed_url).path).rstrip("/")
    segment = path.split("/rss/", 1)[1] if "/rss/" in path else path.rsplit("/", 1)[-1]
    return [c for c in segment.replace(" ", "+").split("+") if c]


def business_days_between(after: dt.date, before: dt.date) -> list[dt.date]:
    """Weekdays strictly between `after` and `before`, oldest first: the announcement days
    arXiv had that a run did not see."""
    days = []
    day = after + dt.timedelta(days=1)
    while day < before:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    return days


def _previous_business_day(day: dt.date) -> dt.date:
    day -= dt.timedelta(days=1)
    while day.weekday() >= 5:
        day -= dt.timedelta(days=1)
    return day


def submission_window(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    """The submissions (UTC, start inclusive, end exclusive) that announcement day `day` lists."""
    end_day = _previous_business_day(day)
    start_day = _previous_business_day(end_day)
    start = dt.datetime.combine(start_day, CUTOFF, ARXIV_TZ)
    end = dt.datetime.combine(end_day, CUTOFF, ARXIV_TZ)
    return start.astimezone(dt.UTC), end.astimezone(dt.UTC)


def search_query(cats: list[str], day: dt.date) -> str:
    """`(cat:cs.CL OR cat:cs.LG) AND submittedDate:[202411261900 TO 202411271859]`."""
    terms = [f"cat:{c}.*" if c in _WITH_CLASSES else f"cat:{c}" for c in cats]
    start, end = submission_window(day)
    last = end - dt.timedelta(minutes=1)  # the API's range includes both ends, to the minute
    window = f"submittedDate:[{start:%Y%m%d%H%M} TO {last:%Y%m%d%H%M}]"
    return f"({' OR '.join(terms)}) AND {window}"


def fetch_days(
    fetcher: Fetcher, config: SourceConfig, days: list[dt.date]
) -> list[tuple[dt.date, FetchResult]]:
    """Every API response for the announcement days `days` of the arXiv feed `config`, in order,
    each with its day. Raises FetchError naming the URL, ParseError when a page is not the API's."""
    cats = categories(config.url)
    if not cats:
        raise ParseError(
            config.name, f"cannot tell the categories of {config.url} to backfill from the arXiv API"
        )
    out: list[tuple[dt.date, FetchResult]] = []
    for day in days:
        received = 0
        query = search_query(cats, day)
        for _ in range(MAX_PAGES):
            fetcher.pace(PACE_KEY, fetcher.config.api_delay)
            params = {
                "search_query": query,
                "start": str(received),
                "max_results": str(PAGE_SIZE),
                "sortBy": "submittedDate",
                "sortOrder": "ascending",
            }
            result = fetcher.get(config.api_url, params)
            fetcher.pace(PACE_KEY, 0)  # the delay counts from the end of this one, retries and all
            out.append((day, result))
            page = parse_page(result.body, config.name, day)
            received += len(page.papers)
            if not page.papers or page.total is None or received >= page.total:
                break
        else:
            log.warning("source %r: stopped after %d API pages for %s", config.name, MAX_PAGES, day)
    return out


def parse_page(body: bytes, source: str, day: dt.date | None = None) -> Page:
    """One API response as papers (each `announced` on `day`) and the query's total. Pure."""
    parsed = load_feed(body, source)
    papers = []
    for entry in parsed.entries:
        if "/api/errors" in str(entry.get("id") or ""):
            said = collapse_ws(entry_text(entry, "summary"))[:300]
            raise ParseError(
                source, f"the arXiv API refused the backfill query ({said}); check [[sources]] url"
            )
        paper = _paper(entry, source, day)
        if paper is not None:
            papers.append(paper)
    return Page(papers, _total(parsed.feed.get("opensearch_totalresults")))


def _total(value: Any) -> int | None:
    try:
        return int(str(value).strip())
    except (TypeError, ValueError):
        return None


def _paper(entry: Any, source: str, day: dt.date | None) -> Paper | None:
    found = arxiv_id_from(entry.get("id")) or arxiv_id_from(entry.get("link"))
    title = entry_text(entry, "title")
    if found is None or not title:
        return None
    paper_id, version = found
    url, pdf_url = arxiv_urls(paper_id)
    return Paper(
        id=paper_id,
        title=decode_tex_accents(title),
        abstract=decode_tex_accents(entry_text(entry, "summary")),
        authors=entry_authors(entry),
        categories=entry_terms(entry),
        version=version,
        url=url,
        pdf_url=pdf_url,
        published=entry_datetime(entry, "published", "updated"),
        sources=(source,),
        announce_type="new",
        doi=entry_doi(entry, ("arxiv_doi",)),
        journal_ref=entry_journal_ref(entry, "arxiv_journal_ref"),
        announced=day,
    )
