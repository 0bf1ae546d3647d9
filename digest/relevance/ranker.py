"""Rank a day's papers for many readers at once by similarity to the papers each one liked.

A reader's taste is the papers they liked and disliked. A day paper's score is its mean cosine
similarity to the liked papers minus DISLIKE_WEIGHT times its mean similarity to the disliked
ones (Rocchio's rule, with the query being the liked papers). With TF-IDF, minus also its mean
similarity to the day's other papers (DAY_CONTRAST): a paper close to everything that day (a
generic abstract, the day's crowded topic) is no evidence of this reader's taste. With MIN_EACH
examples of each kind (`model.py`) the reader's own logistic regression scores instead, as a
probability.

Speed: the similarities of every day paper to every liked paper of a chunk of readers are one
matrix product; each reader then only picks columns and sorts. Papers are kept in id order, so a
stable sort breaks equal scores by paper id, and scores are rounded to 6 decimals first so that
the last bits of a floating-point sum never reorder a ranking between runs.

Pure: no network, no clock, no state. What the caller does with the list (the `min_similarity`
floor, `max_papers`, a keyword gate) is the caller's business.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import scipy.sparse as sp

from digest.core.models import Paper
from digest.relevance.engine import vectors_for
from digest.relevance.model import model_scores, wants_model
from digest.relevance.taste import (  # re-exported: the ranking's vocabulary
    DEFAULT_MIN_PROBABILITY as DEFAULT_MIN_PROBABILITY,
)
from digest.relevance.taste import DEFAULT_MIN_SIMILARITY as DEFAULT_MIN_SIMILARITY
from digest.relevance.taste import MIN_SIMILARITY as MIN_SIMILARITY
from digest.relevance.taste import TFIDF, Similar, Taste, canonical_engine
from digest.relevance.taste import min_similarity as min_similarity

DISLIKE_WEIGHT = 0.5  # how hard a disliked paper pushes its neighbours down (Rocchio's gamma/beta)
# How much of a day paper's mean similarity to the day's other papers is taken off its score, per
# engine. Chosen and confirmed on real day-pairs (bench/RELEVANCE.md: +0.02 P@10 on average over
# seven evaluations, +0.01 on the three held out, NDCG up on all seven); measured for TF-IDF only,
# so the embeddings keep plain similarity.
DAY_CONTRAST = {TFIDF: 1.0}
CHUNK = 256  # readers per matrix product: bounds memory at days x (CHUNK x liked) floats
WHOLE_CELLS = 16_000_000  # day x liked similarities computed at once up to this many (64 MB)
DECIMALS = 6


def rank_day(
    papers: Sequence[Paper],
    library: Mapping[str, Paper],
    tastes: Sequence[Taste],
    *,
    engine: str = TFIDF,
    vectors: Mapping[str, bytes] | None = None,
    limit: int | None = None,
    min_score: float | None = None,
) -> list[list[Similar]]:
    """For each taste, the day's papers by score (highest first, then by paper id), without the
    taste's own liked and disliked papers. `limit` keeps only the first so many and `min_score`
    only those at or above it (both optional: by default every paper is listed; a taste's own
    say wins). Liked ids found neither in `library` nor in `papers` are ignored."""
    ranked = rank_counted(
        papers, library, tastes, engine=engine, vectors=vectors, limit=limit, min_score=min_score
    )
    return [listed for listed, _ in ranked]


def rank_counted(
    papers: Sequence[Paper],
    library: Mapping[str, Paper],
    tastes: Sequence[Taste],
    *,
    engine: str = TFIDF,
    vectors: Mapping[str, bytes] | None = None,
    limit: int | None = None,
    min_score: float | None = None,
) -> list[tuple[list[Similar], int]]:
    """`rank_day`, with how many papers passed each taste's filters before `limit` cut them."""
    day = sorted({p.id: p for p in papers}.values(), key=lambda p: p.id)
    known = {p.id: p for p in day} | dict(library)
    used = sorted({i for t in tastes for i in (*t.liked, *t.disliked) if i in known})
    row_of = {p.id: n for n, p in enumerate(day)}
    # A liked paper that is also a day paper is vectorised once, as the day paper.
    extra = [i for i in used if i not in row_of]
    x_day, x_extra = vectors_for(day, [known[i] for i in extra], engine, vectors)
    extra_row = {i: len(day) + n for n, i in enumerate(extra)}
    x_lib = _rows(x_day, x_extra, [row_of[i] if i in row_of else extra_row[i] for i in used])
    column = {paper_id: n for n, paper_id in enumerate(used)}
    # Few enough liked papers in all: their similarities to the day are one product, shared by
    # every chunk of readers; else each chunk computes the columns it needs.
    whole = (
        _similarities(x_day, x_lib, list(range(len(used)))) if len(used) * len(day) <= WHOLE_CELLS else None
    )
    typical = _typical(x_day, engine)
    out: list[tuple[list[Similar], int]] = []
    for start in range(0, len(tastes), CHUNK):
        chunk = tastes[start : start + CHUNK]
        out.extend(_rank_chunk(chunk, x_day, x_lib, whole, typical, used, column, row_of, limit, min_score))
    return out


def _typical(x_day: Any, engine: str) -> np.ndarray | None:
    """DAY_CONTRAST times each day paper's mean cosine similarity to the day's other papers (one
    product with the sum of the rows, less the paper's own), or None for engines without it."""
    weight = DAY_CONTRAST.get(canonical_engine(engine), 0.0)
    n = x_day.shape[0]
    if not weight or n < 2:
        return None
    total = np.asarray(x_day.sum(axis=0), dtype=np.float64).ravel()
    own = np.asarray(x_day.multiply(x_day).sum(axis=1) if sp.issparse(x_day) else (x_day * x_day).sum(axis=1))
    mean_to_others = (np.asarray(x_day @ total, dtype=np.float64).ravel() - own.ravel()) / (n - 1)
    return weight * mean_to_others


def _rows(x_day: Any, x_extra: Any, index: list[int]) -> Any:
    """Rows `index` of the day's rows followed by the extra rows (sparse or dense alike)."""
    if sp.issparse(x_day):
        stacked = sp.vstack([x_day, x_extra]).tocsr() if x_extra.shape[0] else x_day
    else:
        stacked = np.vstack([x_day, x_extra]) if x_extra.shape[0] else x_day
    return stacked[index] if index else stacked[:0]


def _rank_chunk(
    chunk: Sequence[Taste],
    x_day: Any,
    x_lib: Any,
    whole: np.ndarray | None,
    typical: np.ndarray | None,
    used: list[str],
    column: Mapping[str, int],
    row_of: Mapping[str, int],
    limit: int | None,
    min_score: float | None,
) -> list[tuple[list[Similar], int]]:
    if whole is None:
        wanted = sorted({column[i] for t in chunk for i in (*t.liked, *t.disliked) if i in column})
        sims = _similarities(x_day, x_lib, wanted)
    else:
        wanted, sims = list(range(len(used))), whole
    local = {col: n for n, col in enumerate(wanted)}
    names = [used[col] for col in wanted]  # a column of `sims` -> the library paper's id
    ids = list(row_of)
    ranked = []
    for taste in chunk:
        liked = [local[column[i]] for i in dict.fromkeys(taste.liked) if i in column]
        disliked = [local[column[i]] for i in dict.fromkeys(taste.disliked) if i in column]
        by_model = wants_model(len(liked), len(disliked))
        if by_model:
            scores = _model_scores(taste, column, x_lib, x_day)
        else:
            scores = _mean_scores(sims, liked, disliked, len(ids), typical)
        own = [row_of[i] for i in (*taste.liked, *taste.disliked, *taste.skip) if i in row_of]
        floor = _floor(taste, by_model, min_score)
        among = None if taste.only is None else [row_of[i] for i in taste.only if i in row_of]
        listing, count = _listing(
            scores, own, among, taste.limit if taste.limit is not None else limit, floor
        )
        ranked.append((_explained(listing, scores, sims, liked, ids, names, by_model), count))
    return ranked


def _model_scores(taste: Taste, column: Mapping[str, int], x_lib: Any, x_day: Any) -> np.ndarray:
    """The reader's own logistic regression's probabilities for the day (`model.py`)."""
    rows = [column[i] for i in dict.fromkeys(taste.liked) if i in column]
    bad = [column[i] for i in dict.fromkeys(taste.disliked) if i in column]
    return model_scores(x_lib[rows], x_lib[bad], x_day)


def _floor(taste: Taste, by_model: bool, min_score: float | None) -> float | None:
    """The score a paper needs for `taste`: its own say, else the call's."""
    if by_model and taste.model_floor is not None:
        return taste.model_floor
    return taste.min_score if taste.min_score is not None else min_score


def _similarities(x_day: Any, x_lib: Any, wanted: list[int]) -> np.ndarray:
    """Cosines of every day paper (rows) to the library papers `wanted` (columns), dense."""
    if not wanted or x_day.shape[0] == 0:
        return np.zeros((x_day.shape[0], len(wanted)), dtype=np.float32)
    product = x_day @ x_lib[wanted].T
    dense = product.toarray() if sp.issparse(product) else product
    return np.asarray(dense, dtype=np.float32)


def _mean_scores(
    sims: np.ndarray, liked: list[int], disliked: list[int], n: int, typical: np.ndarray | None
) -> np.ndarray:
    """Rocchio: mean similarity to the liked, less DISLIKE_WEIGHT x that to the disliked, less the
    day contrast (`_typical`) when anything is liked (nothing liked scores zero throughout)."""
    scores = sims[:, liked].mean(axis=1, dtype=np.float64) if liked else np.zeros(n)
    if disliked:
        scores = scores - DISLIKE_WEIGHT * sims[:, disliked].mean(axis=1, dtype=np.float64)
    if liked and typical is not None:
        scores = scores - typical
    return np.asarray(scores, dtype=np.float64)


def _listing(
    scores: np.ndarray, own: list[int], only: list[int] | None, limit: int | None, min_score: float | None
) -> tuple[np.ndarray, int]:
    """The rows to list, best first: not the reader's own examples, among `only` when given, at
    or above `min_score`; and how many there were before `limit`."""
    rounded = np.round(scores, DECIMALS)
    if only is None:
        keep = np.ones(len(scores), dtype=bool)
    else:
        keep = np.zeros(len(scores), dtype=bool)
        keep[only] = True
    keep[own] = False
    if min_score is not None:
        keep &= rounded >= min_score
    candidates = np.flatnonzero(keep)
    # Rows are in paper-id order, so the stable sort leaves equal scores in id order.
    order = candidates[np.argsort(-rounded[candidates], kind="stable")]
    return (order if limit is None else order[: max(limit, 0)]), len(candidates)


def _explained(
    order: np.ndarray,
    scores: np.ndarray,
    sims: np.ndarray,
    liked: list[int],
    ids: list[str],
    names: list[str],
    by_model: bool,
) -> list[Similar]:
    """`Similar`s of the rows `order`, each with the liked paper it is most similar to (ties:
    the liked paper with the lower id, as columns are in id order and argmax takes the first)."""
    nearest: list[str | None] = [None] * len(order)
    if liked and len(order):
        best = sims[order][:, liked].argmax(axis=1)
        nearest = [names[liked[k]] for k in best]
    rounded = np.round(scores[order], DECIMALS)
    return [
        Similar(ids[row], float(score), near, by_model)
        for row, score, near in zip(order.tolist(), rounded.tolist(), nearest, strict=True)
    ]
