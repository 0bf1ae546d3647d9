"""What a reader is shown of a generated TL;DR: its text and the model that wrote it. Data only.

The summaries stage (`digest.pipeline.summarizing`) makes them, the store keeps them, and the
renderers look them up by paper id, one mapping per language (`TldrBook`), so that showing one
costs an email a dict lookup per paper.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import NamedTuple


class Tldr(NamedTuple):
    """A summary that passed every check (`digest.summaries.answers`): plain text, one paragraph."""

    text: str
    model: str  # as the operator named it in [summaries] model; shown beside the text


NO_TLDRS: Mapping[str, Tldr] = {}


class TldrBook:
    """Summaries by language, then by paper id: what a run or a publish has to show."""

    __slots__ = ("_by_language",)

    def __init__(self, by_language: Mapping[str, Mapping[str, Tldr]] | None = None) -> None:
        self._by_language: dict[str, dict[str, Tldr]] = {
            language: dict(papers) for language, papers in (by_language or {}).items()
        }

    def __bool__(self) -> bool:
        return any(self._by_language.values())

    def for_language(self, language: str) -> Mapping[str, Tldr]:
        return self._by_language.get(language, NO_TLDRS)

    def add(self, language: str, paper_id: str, tldr: Tldr) -> None:
        book = self._by_language.get(language)
        if book is None:
            book = self._by_language[language] = {}
        book[paper_id] = tldr

    def languages(self) -> list[str]:
        return list(self._by_language)
