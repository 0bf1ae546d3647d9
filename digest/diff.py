"""The diff: which papers of a run date's listing are new, which are updates. Pure.

`new(D)` is the papers of D's listing not listed on any date before D. It looks only at dates
before D, so running D twice gives the same answer (D's own snapshot never makes D's papers old),
and after missed days the comparison is against everything seen before, whatever the gap.

A paper seen before that comes back with a higher version, and an arXiv `replace` item (a new
version of an old paper, `Paper.is_replacement`), is an update, never new.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from digest.core.models import DiffResult, Paper, Seen, merge_papers


def diff(listing: Iterable[Paper], seen_before: Mapping[str, Seen]) -> DiffResult:
    """Split today's papers (any order, duplicates allowed) into new and updated.

    `seen_before` maps a paper id to what was known of it before the run date (see
    `Store.seen_before`). The result keeps the listing's order, each paper once.
    """
    new: list[Paper] = []
    updates: list[Paper] = []
    for paper in merge_papers(listing):
        seen = seen_before.get(paper.id)
        if seen is None:
            (updates if paper.is_replacement else new).append(paper)
        elif paper.is_replacement or _newer(paper.version, seen.version):
            updates.append(paper)
    return DiffResult(new=tuple(new), updates=tuple(updates))


def _newer(version: int | None, seen_version: int | None) -> bool:
    return version is not None and seen_version is not None and version > seen_version
