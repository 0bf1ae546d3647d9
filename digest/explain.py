"""What the ledger keeps of a match, so a late digest and a private feed can still say why, and
the match rebuilt from it. Pure; `digest.plan` re-exports both."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from digest.core.models import Hit, Match, Paper

__all__ = ["explained", "explanations", "similar_of"]

Similar = Mapping[str, tuple[str, float]]  # paper id -> (nearest liked paper's title, similarity)


def explanations(
    matches: Sequence[Match], *, where: bool = True, similar: Similar | None = None
) -> dict[str, Any]:
    """What the ledger keeps of each match, so a late digest and a private feed can still say why.

    `where=True`: the score and every hit, offsets included. `where=False` (what a run records):
    `[score, term, field, term, field, ...]`, each (term, field) once and no offsets. The views
    find a term's places in the text again (on a real day's 36,000 matches the marks come out
    the same, tests/test_retention.py), and the offsets were half of the ledger's bytes.

    `similar` (`Digest.similar`): why a paper ranked by similarity is there, kept as "near" (in the
    short form, a trailing {"near": [title, score]}, which readers of pairs step over)."""
    near = similar or {}
    if where:
        full: dict[str, Any] = {
            m.paper.id: {"score": m.score, "hits": [[h.term, h.field, h.start, h.end] for h in m.hits]}
            for m in matches
        }
        for pid, (title, score) in near.items():
            if pid in full:
                full[pid]["near"] = [title, score]
        return full
    short: dict[str, Any] = {}
    for paper, score, hits in matches:
        if len(hits) == 1:  # most matches (half of a day's million at 10,000 readers): nothing to drop
            hit = hits[0]
            short[paper.id] = [score, hit.term, hit.field]
        else:
            short[paper.id] = _pairs(score, hits)
    for pid, (title, score) in near.items():
        if pid in short:
            short[pid].append({"near": [title, score]})
    return short


def _pairs(score: float, hits: Sequence[Hit]) -> list[Any]:
    """`[score, term, field, term, field, ...]`, each (term, field) once, in the order of the hits."""
    short: list[Any] = [score]
    for pair in {(hit.term, hit.field): None for hit in hits}:
        short += pair
    return short


def similar_of(why: Mapping[str, Any] | Sequence[Any] | None) -> tuple[str, float] | None:
    """The (nearest liked paper's title, similarity) `explanations` kept for a paper, if any."""
    if not why:
        return None
    found = (
        why.get("near")
        if isinstance(why, Mapping)
        else (why[-1].get("near") if isinstance(why[-1], dict) else None)
    )
    if not isinstance(found, list) or len(found) != 2:
        return None
    return str(found[0]), float(found[1])


def explained(paper: Paper, why: Mapping[str, Any] | Sequence[Any] | None) -> Match:
    """A match rebuilt from what `explanations` kept, in either form (offsets -1 when none were
    kept; nothing kept: a match without hits)."""
    if not why:
        return Match(paper=paper, score=0.0)
    if isinstance(why, Mapping):
        hits = tuple(Hit(h[0], h[1], *(h[2:4] if len(h) == 4 else (-1, -1))) for h in why.get("hits", []))
        return Match(paper=paper, score=float(why.get("score", 0.0)), hits=hits)
    pairs = [x for x in why[1:] if not isinstance(x, dict)]
    hits = tuple(Hit(pairs[i], pairs[i + 1], -1, -1) for i in range(0, len(pairs) - 1, 2))
    return Match(paper=paper, score=float(why[0]), hits=hits)
