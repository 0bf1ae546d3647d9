"""Look up arXiv papers by id through the arXiv API (`export.arxiv.org/api/query?id_list=...`).

A reader's liked papers are usually papers digest has seen (they are in the stored snapshots);
the rest are fetched here: up to MAX_IDS ids a request, `delay` seconds between requests (arXiv's
terms ask for 3 s; the fetcher's `[fetch] api_delay` by default, shared with the backfill's pace so
the two never crowd the API together). The answer is parsed by `arxiv_api.parse_page`, so a paper
looked up is the same `Paper` a backfill would give.

An id arXiv does not know comes back as an entry without a title (or not at all): it is reported
in `Lookup.missing`, never guessed at. The network is in `lookup` only.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Sequence

from digest.config.sections import ARXIV_API_URL
from digest.core.models import Paper
from digest.relevance.likes import arxiv_id_of, try_like_key
from digest.sources.arxiv_api import PACE_KEY, parse_page
from digest.sources.fetch import Fetcher

log = logging.getLogger(__name__)

MAX_IDS = 100  # ids per request: the API answers id_list queries of this size in one page
SOURCE = "arxiv-lookup"  # what a looked-up paper's `sources` says


@dataclasses.dataclass(frozen=True)
class Lookup:
    """What an id lookup found (by bare arXiv id) and the ids it did not find, in asked order."""

    found: dict[str, Paper]
    missing: list[str]


def bare_ids(refs: Sequence[str]) -> tuple[list[str], list[str]]:
    """The bare arXiv ids of `refs` (ids, URLs, arXiv DOIs), first occurrence order, and the refs
    that are not arXiv papers at all (other DOIs, garbage)."""
    ids: dict[str, None] = {}
    other: list[str] = []
    for ref in refs:
        key = try_like_key(ref)
        bare = arxiv_id_of(key) if key else None
        if bare is None:
            other.append(ref)
        else:
            ids.setdefault(bare)
    return list(ids), other


def lookup(
    fetcher: Fetcher,
    refs: Sequence[str],
    *,
    api_url: str = ARXIV_API_URL,
    delay: float | None = None,
    batch: int = MAX_IDS,
) -> Lookup:
    """The papers of `refs` (arXiv ids, or anything `like_key` reads as one) from the arXiv API.

    `delay`: seconds between two requests (None: the fetcher's `api_delay`). Raises FetchError
    naming the URL when a request fails, ParseError when an answer is not the API's.
    """
    ids, other = bare_ids(refs)
    pause = fetcher.config.api_delay if delay is None else delay
    found: dict[str, Paper] = {}
    for start in range(0, len(ids), max(1, min(batch, MAX_IDS))):
        chunk = ids[start : start + max(1, min(batch, MAX_IDS))]
        fetcher.pace(PACE_KEY, pause)
        params = {"id_list": ",".join(chunk), "start": "0", "max_results": str(len(chunk))}
        result = fetcher.get(api_url, params)
        fetcher.pace(PACE_KEY, 0)  # the delay counts from the end of this request, retries and all
        for paper in parse_page(result.body, SOURCE).papers:
            if paper.id in chunk:
                found.setdefault(paper.id, dataclasses.replace(paper, announce_type=None))
    missing = [i for i in ids if i not in found] + other
    if missing:
        log.info("arXiv lookup: %d of %d references not found: %s", len(missing), len(refs), missing[:5])
    return Lookup(found, missing)
