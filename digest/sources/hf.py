"""Fetch and parse Hugging Face Daily Papers (`/api/daily_papers`): a JSON array of {paper: {...}, numComments}.

`paper.id` is a bare arXiv id; `upvotes` sits on `paper`, `numComments` on the outer item. Titles and
summaries may carry hard line wraps. HF has no categories.

An item that is not a paper (no `paper.id`, no title) is skipped with a warning and counted, like a
malformed feed entry; a page none of whose items is a paper is not the Daily Papers API and fails
the source. Of items sharing an id within a page the first is kept (`base.first_of_each`).
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any, ClassVar, NamedTuple
from urllib.parse import urlsplit

from digest.config import SourceConfig
from digest.core.errors import ParseError
from digest.core.models import Paper, merge_papers
from digest.sources.base import Parsed, first_of_each
from digest.sources.entries import arxiv_urls
from digest.sources.fetch import Fetcher, FetchResult
from digest.sources.jsonfeed import without_lone_surrogates
from digest.sources.text import arxiv_id_from, collapse_ws, join_wraps

log = logging.getLogger(__name__)

HF_PAGE_SIZE = 100  # the API's maximum `limit`
HF_MAX_PAGES = 20  # per day; a day has a few dozen papers, so this only stops a runaway pager


class HfDailySource:
    """Hugging Face Daily Papers: one request per day and page."""

    kind: ClassVar[str] = "hf_daily"
    label: ClassVar[str | None] = "Hugging Face"

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    def fetch(self, fetcher: Fetcher, date: dt.date) -> list[FetchResult]:
        """The run date and the `days - 1` days before it (a day's list fills up during that day)."""
        results: list[FetchResult] = []
        for back in range(self.config.days):
            results.extend(self._day(fetcher, (date - dt.timedelta(days=back)).isoformat()))
        return results

    def parse(self, body: bytes) -> Parsed:
        page = _page(body, self.config.name)
        page.warn(self.config.name)
        papers, duplicates = first_of_each(page.papers, self.config.name)
        return Parsed(papers, skipped=len(page.problems), duplicates=duplicates)

    def trending(self, fetcher: Fetcher, period: tuple[str, str]) -> list[FetchResult]:
        """The list of a week or a month (`("week", "2026-W48")`, `("month", "2026-11")`): the
        period's papers with their upvotes as they stand now (`digest.trending`)."""
        key, value = period
        return self._pages(fetcher, {key: value}, value)

    def _day(self, fetcher: Fetcher, day: str) -> list[FetchResult]:
        return self._pages(fetcher, {"date": day}, day)

    def _pages(self, fetcher: Fetcher, query: dict[str, str], label: str) -> list[FetchResult]:
        results: list[FetchResult] = []
        seen: set[str] = set()
        for page in range(HF_MAX_PAGES):
            params = {**query, "limit": str(HF_PAGE_SIZE), "p": str(page)}
            result = fetcher.get(self.config.url, params)
            results.append(result)
            try:
                got = _page(result.body, self.config.name)  # `parse` warns of its problems later
            except ParseError as exc:
                raise exc.at(result.url) from None
            fresh = {p.id for p in got.papers} - seen
            seen |= fresh
            # A short page is the last; a page with nothing new means the server ignores `p`.
            if got.items < HF_PAGE_SIZE or not fresh:
                return results
        log.warning(
            "source %r: stopped after %d pages for %s; the listing may be incomplete",
            self.config.name, HF_MAX_PAGES, label,
        )  # fmt: skip
        return results


def parse_hf_daily(body: bytes, source: str) -> list[Paper]:
    """One page of `/api/daily_papers` as papers; `[]` is a normal empty day."""
    page = _page(body, source)
    page.warn(source)
    return merge_papers(page.papers)


def parse_hf_page(body: bytes, source: str) -> list[Paper]:
    """Every paper of the page, in order and not merged; items that are not papers left out."""
    return _page(body, source).papers


class _Page(NamedTuple):
    papers: list[Paper]
    items: int  # papers or not: the pager's "a short page is the last" counts every item
    problems: list[str]  # one for each item left out

    def warn(self, source: str) -> None:
        if self.problems:
            log.warning(
                "source %r: skipped %d of %d items that are not papers (%s)",
                source, len(self.problems), self.items, "; ".join(self.problems[:3]),
            )  # fmt: skip


class _NotAPaper(ValueError):
    pass


def _page(body: bytes, source: str) -> _Page:
    items = _load(body, source)
    papers: list[Paper] = []
    problems: list[str] = []
    for i, item in enumerate(items):
        try:
            papers.append(_paper(item, i, source))
        except _NotAPaper as exc:
            problems.append(str(exc))
    if problems and not papers:
        raise ParseError(source, problems[0])
    return _Page(papers, len(items), problems)


def _load(body: bytes, source: str) -> list[Any]:
    if body[:512].lstrip(b"\xef\xbb\xbf \t\r\n").startswith(b"<"):
        raise ParseError(source, "expected JSON from the API, got HTML or XML; check [[sources]] url")
    try:
        data = without_lone_surrogates(json.loads(body), body)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError and UnicodeDecodeError are ValueErrors
        raise ParseError(source, f"the response is not valid JSON ({exc}); check [[sources]] url") from None
    if isinstance(data, dict):
        said = data.get("error") or data.get("message")
        detail = f" (it says: {collapse_ws(str(said))[:200]})" if said else ""
        raise ParseError(source, f"expected a list of papers, got a JSON object{detail}; check the url")
    if not isinstance(data, list):
        kind = type(data).__name__
        raise ParseError(source, f"expected a list of papers, got a JSON {kind}; check [[sources]] url")
    return data


def _paper(item: Any, index: int, source: str) -> Paper:
    paper = item.get("paper") if isinstance(item, dict) else None
    paper_id = paper.get("id") if isinstance(paper, dict) else None
    if not isinstance(paper, dict) or not isinstance(paper_id, str) or not paper_id.strip():
        raise _NotAPaper(f"item {index} is not a paper (no paper.id); is this the Daily Papers API?")
    title = _text(paper.get("title")) or _text(item.get("title"))
    if not title:
        raise _NotAPaper(f"item {index} (paper {collapse_ws(paper_id)[:100]}) has no title")
    found = arxiv_id_from(paper_id)
    if found is not None:
        bare, version = found
        url, pdf_url = arxiv_urls(bare)
    else:
        bare, version, url, pdf_url = collapse_ws(paper_id), None, None, None
    authors = tuple(
        dict.fromkeys(
            collapse_ws(a["name"])
            for a in _list(paper.get("authors"))
            if isinstance(a, dict) and _str(a.get("name"))
        )
    )
    return Paper(
        id=bare,
        title=title,
        abstract=_text(paper.get("summary")) or _text(item.get("summary")),
        authors=authors,
        version=version,
        url=url,
        pdf_url=pdf_url,
        published=_datetime(paper.get("publishedAt")),
        sources=(source,),
        upvotes=_count(paper.get("upvotes")),
        comments=_count(item.get("numComments")),
        ai_summary=_text(paper.get("ai_summary")) or None,
        ai_keywords=tuple(dict.fromkeys(collapse_ws(k) for k in _list(paper.get("ai_keywords")) if _str(k))),
        github_url=_http_url(paper.get("githubRepo")),
        project_url=_http_url(paper.get("projectPage")),
    )


def _text(value: Any) -> str:
    return join_wraps(value) if isinstance(value, str) else ""


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _str(value: Any) -> bool:
    """A string with something in it."""
    return isinstance(value, str) and bool(value.strip())


def _count(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else None


def _http_url(value: Any) -> str | None:
    """Only http(s) links travel on into emails and feeds (no `javascript:`)."""
    if not isinstance(value, str):
        return None
    value = value.strip()
    parts = urlsplit(value)
    return value if parts.scheme in ("http", "https") and parts.netloc and " " not in value else None


def _datetime(value: Any) -> dt.datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    try:
        parsed = dt.datetime.fromisoformat(value.strip().replace("Z", "+00:00"))
    except ValueError:
        return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=dt.UTC)
    return parsed.astimezone(dt.UTC)
