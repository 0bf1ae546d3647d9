"""A day's digests: each reader's best matches of the day's new papers, minus the papers already
emailed to them, capped by `max_papers`, with how many matched in all. Pure (the plan's matching
step, `digest.plan`).

A reader with examples (`like`, `dislike`, feedback: a `Taste` in `Tastes`) is ranked by
similarity to them too (`digest.relevance`):
- no rules (no keywords, authors, categories, query, `all`): the papers at least `min_similarity`
  similar, most similar first;
- rules, `mode = "rank"` (the default): the rules choose, similarity orders what they chose;
- rules, `mode = "widen"`: what the rules choose and what is similar enough, most similar first.
Each paper ranked by similarity says which liked paper it is nearest to (`Digest.similar`).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from digest.core.models import Digest, Match, Paper, Subscriber
from digest.matching.matcher import Matcher
from digest.relevance.taste import DEFAULT_MIN_PROBABILITY, Similar, Taste, min_similarity


@dataclass(frozen=True)
class Tastes:
    """What the plan ranks by similarity with (`pipeline.relevance.gather`)."""

    library: Mapping[str, Paper] = field(default_factory=dict)  # example papers by id
    tastes: Mapping[str, Taste] = field(default_factory=dict)  # by reader email: readers with examples
    titles: Mapping[str, str] = field(default_factory=dict)  # example paper id -> title ("similar to")
    unresolved: Sequence[tuple[str, str]] = ()  # (reader email, reference) not resolved
    engine: str = "tfidf"
    vectors: Mapping[str, bytes] = field(default_factory=dict)  # an embedding engine's, by paper id
    lookup_failed: str | None = None  # why the arXiv API could not be asked for unresolved ones


NO_TASTES = Tastes()


def digests_for(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    date: dt.date,
    sent: Mapping[str, set[str]],
    tastes: Tastes = NO_TASTES,
) -> list[Digest]:
    """Each reader's digest: their best matches minus papers already emailed to them, capped by
    max_papers, and how many of the others matched."""
    similar = [s for s in subscribers if s.email in tastes.tastes]
    if not similar:
        return _by_rules(subscribers, papers, date, sent)
    rest = [s for s in subscribers if s.email not in tastes.tastes]
    done = {d.subscriber.email: d for d in _by_rules(rest, papers, date, sent)}
    done |= {d.subscriber.email: d for d in _by_taste(similar, papers, date, sent, tastes)}
    return [done[s.email] for s in subscribers]


def _by_taste(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    date: dt.date,
    sent: Mapping[str, set[str]],
    tastes: Tastes,
) -> list[Digest]:
    """The digests of readers with examples. Each asks the ranker only what its mode needs: the
    similarity of the papers its rules chose, and the most similar papers above its floor."""
    gated = [s for s in subscribers if _has_rules(s)]
    matched = Matcher(gated).match(papers) if gated else {}
    asks: list[Taste] = []
    for sub in subscribers:
        taste = dataclasses.replace(tastes.tastes[sub.email], skip=frozenset(sent.get(sub.email, ())))
        if _has_rules(sub):
            asks.append(dataclasses.replace(taste, only=frozenset(m.paper.id for m in matched[sub.email])))
        if _widens(sub):
            # like-only: the max_papers best and how many passed; widen: all that passed, so that
            # what the rules chose too is counted once
            limit = None if _has_rules(sub) else sub.max_papers
            floor = _floor(sub, tastes.engine)
            asks.append(
                dataclasses.replace(taste, limit=limit, min_score=floor, model_floor=DEFAULT_MIN_PROBABILITY)
            )
    # Imported here, one of two imports inside a function: the numeric stack (numpy, scipy, sklearn;
    # 2 s and 80 MB) loads only when a reader has examples (docs/architecture.md).
    from digest.relevance.ranker import rank_counted

    answers = iter(rank_counted(papers, tastes.library, asks, engine=tastes.engine, vectors=tastes.vectors))
    by_id = {p.id: p for p in papers}
    out = []
    for sub in subscribers:
        by_rules = {m.paper.id: m for m in matched.get(sub.email, [])}
        chosen: dict[str, tuple[Match, Similar | None]] = {}
        beyond = 0  # papers above the floor that the ranker's limit left out (counted in the total)
        if _has_rules(sub):
            scored = {s.paper_id: s for s in next(answers)[0]}
            chosen |= {pid: (m, scored.get(pid)) for pid, m in by_rules.items()}
        if _widens(sub):
            similar, count = next(answers)
            chosen |= {
                s.paper_id: (by_rules.get(s.paper_id) or Match(by_id[s.paper_id], s.score), s)
                for s in similar
            }
            beyond = count - len(similar)
        taste = tastes.tastes[sub.email]
        never = sent.get(sub.email, set()) | set(taste.liked) | set(taste.disliked)  # nor the examples
        out.append(_taste_digest(sub, date, list(chosen.values()), beyond, never, tastes))
    return out


def _taste_digest(
    sub: Subscriber,
    date: dt.date,
    chosen: list[tuple[Match, Similar | None]],
    beyond: int,
    already: set[str],
    tastes: Tastes,
) -> Digest:
    """One reader's digest: what was chosen, less what was sent and their own examples (`already`),
    the most similar first."""
    fresh = [(m, s) for m, s in chosen if m.paper.id not in already]
    fresh.sort(key=lambda c: (-(c[1].score if c[1] else -1.0), -c[0].score, c[0].paper.id))
    shown = fresh[: sub.max_papers]
    near = {
        m.paper.id: (tastes.titles.get(s.nearest, s.nearest), s.score)
        for m, s in shown
        if s is not None and s.nearest is not None and s.score >= _floor(sub, tastes.engine, s.by_model)
    }
    return Digest(sub, date, tuple(m for m, _ in shown), len(fresh) + beyond, similar=near)


def _widens(sub: Subscriber) -> bool:
    """Whether the most similar papers are chosen too: a profile without rules, or `widen`."""
    return not _has_rules(sub) or sub.mode == "widen"


def _floor(sub: Subscriber, engine: str, by_model: bool = False) -> float:
    """The similarity a paper needs to be chosen by it (a probability, for a reader's own model)."""
    if by_model:
        return DEFAULT_MIN_PROBABILITY
    return sub.min_similarity if sub.min_similarity is not None else min_similarity(engine)


def _has_rules(sub: Subscriber) -> bool:
    return bool(sub.keywords or sub.authors or sub.categories or sub.query or sub.all)


def _by_rules(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    date: dt.date,
    sent: Mapping[str, set[str]],
) -> list[Digest]:
    """Each reader's digest by their rules alone."""
    # ask for as many more as a reader could lose to papers already sent
    ranked = Matcher(subscribers).top(papers, extra={email: len(ids) for email, ids in sent.items()})
    below = _sent_below_the_cut(subscribers, papers, sent, ranked)
    out = []
    for sub in subscribers:
        found, total = ranked[sub.email]
        already = sent.get(sub.email)
        fresh = [m for m in found if m.paper.id not in already] if already else found  # mostly none
        total -= len(found) - len(fresh) + below.get(sub.email, 0)
        out.append(Digest(sub, date, tuple(fresh[: sub.max_papers]), total))
    return out


def _sent_below_the_cut(
    subscribers: Sequence[Subscriber],
    papers: Sequence[Paper],
    sent: Mapping[str, set[str]],
    ranked: dict[str, tuple[list[Match], int]],
) -> dict[str, int]:
    """How many papers already emailed to a reader matched but rank below what `top` returned.

    Rare (a paper sent before that is new again and ranks low), and exact: a paper matches on its
    own, so matching only those papers again counts them.
    """
    unsure = {}
    for email, ids in sent.items():
        found, total = ranked.get(email, ([], 0))
        if total > len(found) and (left := ids - {m.paper.id for m in found}):
            unsure[email] = left
    if not unsure:
        return {}
    again = Matcher([s for s in subscribers if s.email in unsure]).match(
        [p for p in papers if any(p.id in left for left in unsure.values())]
    )
    return {email: sum(1 for m in again[email] if m.paper.id in left) for email, left in unsure.items()}
