"""Parse any RSS/Atom feed or JSON Feed into papers (the `feed` source kind).

An entry with an arXiv link, guid or id becomes that arXiv paper, announcement included, so an
arXiv listing read as a plain feed gives the same papers as `arxiv_rss`; any other entry is
the paper its guid or link names.
"""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any, ClassVar

from digest.config import SourceConfig
from digest.core.models import Paper
from digest.sources.base import Parsed, first_of_each
from digest.sources.entries import (
    announcement,
    arxiv_urls,
    entry_announce_type,
    entry_authors,
    entry_datetime,
    entry_doi,
    entry_journal_ref,
    entry_links,
    entry_pdf_link,
    entry_terms,
    entry_text,
    feed_title,
    first_arxiv_id,
    load_feed,
)
from digest.sources.fetch import Fetcher, FetchResult
from digest.sources.text import arxiv_id_from, collapse_ws, decode_tex_accents, first_sentence

log = logging.getLogger(__name__)


class FeedSource:
    """Any RSS 0.9x/1.0/2.0, Atom or JSON Feed; its label is the feed's own title."""

    kind: ClassVar[str] = "feed"
    label: ClassVar[str | None] = None

    def __init__(self, config: SourceConfig) -> None:
        self.config = config

    def fetch(self, fetcher: Fetcher, date: dt.date) -> list[FetchResult]:
        return [fetcher.get(self.config.url)]

    def parse(self, body: bytes) -> Parsed:
        parsed = load_feed(body, self.config.name)
        return _papers(parsed, self.config.name, self.config.include_replacements)


def parse_feed(body: bytes, source: str, *, include_replacements: bool = False) -> list[Paper]:
    """Any RSS 0.9x/1.0/2.0, Atom or JSON Feed (1, 1.1). An entry with an arXiv link, guid or id
    becomes that paper.

    An entry without a title is listed under its description's first sentence. Entries without
    an id or link, or with neither a title nor any text, are skipped, and of entries sharing an
    id the first is kept (`base.first_of_each`); both are logged and counted.
    """
    return _papers(load_feed(body, source), source, include_replacements).papers


def _papers(parsed: Any, source: str, include_replacements: bool) -> Parsed:
    papers: list[Paper] = []
    skipped = 0
    for entry in parsed.entries:
        paper = _paper(entry, source, include_replacements)
        if paper is None:
            skipped += 1
        else:
            papers.append(paper)
    if skipped:
        log.warning(
            "source %r: skipped %d entries without an id/link or without any title or text", source, skipped
        )
    kept, duplicates = first_of_each(papers, source)
    return Parsed(kept, feed_title(parsed), skipped, duplicates)


def _paper(entry: Any, source: str, include_replacements: bool) -> Paper | None:
    title = entry_text(entry, "title")
    abstract = entry_text(entry, "summary")
    linked = [hit for hit in map(arxiv_id_from, entry_links(entry)) if hit]
    url: str | None
    pdf_url: str | None
    if linked:
        said = announcement(entry, title, abstract)
        # The id as linked; a version also from the legacy title, which may be the only one with it.
        paper_id, version = first_arxiv_id([*linked, *said.ids]) or linked[0]
        title = decode_tex_accents(said.title)
        abstract = decode_tex_accents(abstract if said.rest is None else said.rest)
        categories = entry_terms(entry) or said.categories
        announce_type, is_replacement = said.announce_type, said.is_replacement(include_replacements)
        url, pdf_url = arxiv_urls(paper_id)
    else:
        version, categories, is_replacement = None, entry_terms(entry), False
        announce_type = entry_announce_type(entry)
        paper_id = collapse_ws(entry.get("id") or "") or collapse_ws(entry.get("link") or "")
        url = collapse_ws(entry.get("link") or "") or None
        pdf_url = entry_pdf_link(entry)
    # RSS 2.0 allows an item with a description and no title (micro-blogs, Scripting News).
    title = title or first_sentence(abstract)
    if not paper_id or not title:
        return None
    return Paper(
        id=paper_id,
        title=title,
        abstract=abstract,
        authors=entry_authors(entry),
        categories=categories,
        version=version,
        url=url,
        pdf_url=pdf_url,
        published=entry_datetime(entry, "published", "updated", "created"),
        sources=(source,),
        announce_type=announce_type,
        is_replacement=is_replacement,
        doi=entry_doi(entry),
        journal_ref=entry_journal_ref(entry, "arxiv_journal_ref", "arxiv_journal_reference"),
    )
