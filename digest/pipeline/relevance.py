"""Papers like these: the liked and disliked papers of every profile, and each reader's feedback,
gathered into what the plan ranks with (`Tastes`): the papers by id and each reader's taste.

A liked paper is resolved once and kept in the state (`liked_papers`): from a stored listing when
digest has seen it, else by id through the arXiv API (`sources.arxiv_lookup`, paced as arXiv
asks). A DOI resolves when a stored listing has a paper with that DOI. A reference that cannot
be resolved is left out of the ranking with a warning on a run, and is an error of
`digest check`, which names the profile and the reference (`unresolved`).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Mapping, Sequence
from typing import Any

from digest.config import Settings
from digest.core.errors import ConfigError, FetchError, ParseError
from digest.core.models import Paper, Subscriber
from digest.digests import Tastes
from digest.relevance.likes import arxiv_id_of
from digest.relevance.taste import TFIDF, Taste, canonical_engine, engine_available
from digest.sources.arxiv_lookup import lookup
from digest.sources.fetch import Fetcher
from digest.store import Feedback, Store

log = logging.getLogger(__name__)


def check_engine(settings: Settings) -> None:
    """ConfigError when `[relevance] engine` names a model this install does not have."""
    engine = settings.relevance.engine
    if not engine_available(engine):
        raise ConfigError(
            f"[relevance] engine = \"{engine}\" needs the optional extra: pip install 'digest[semantic]' "
            '(or engine = "tfidf", which needs nothing)'
        )


def gather(
    settings: Settings,
    store: Store,
    subscribers: Sequence[Subscriber],
    now: dt.datetime,
    *,
    papers: Sequence[Paper] = (),
    date: dt.date | None = None,
    network: bool = True,
    save: bool = True,
    transport: Any = None,
) -> Tastes:
    """Every reader's taste: their `like`/`dislike` papers resolved, and their feedback; with an
    embedding engine, the vectors of the examples and of `papers` (the day's)."""
    feedback = store.feedback(s.email for s in subscribers)
    keys = {k for s in subscribers for k in (*s.like, *s.dislike)}
    # feedback on a paper no stored listing had when it was given: looked up like a liked one
    keys |= {f"arxiv:{f.paper_id}" for said in feedback.values() for f in said if f.paper is None}
    if not keys and not feedback:
        return Tastes(engine=settings.relevance.engine)
    resolved, failure = _resolved(settings, store, keys, now, network=network, save=save, transport=transport)
    library, tastes = _tastes(subscribers, feedback, resolved)
    unresolved = [
        (sub.email, k) for sub in subscribers for k in (*sub.like, *sub.dislike) if k not in resolved
    ]
    for email, key in unresolved:
        log.warning("%s: liked paper %s could not be resolved; left out of the ranking", email, key)
    titles = {pid: p.title for pid, p in library.items()}
    engine = settings.relevance.engine
    day = date or now.date()
    vectors = _vectors(store, engine, [*papers, *library.values()], day, save=save) if tastes else {}
    return Tastes(library, tastes, titles, unresolved, engine, vectors, failure)


def _vectors(
    store: Store, engine: str, papers: Sequence[Paper], day: dt.date, *, save: bool
) -> dict[str, bytes]:
    """An embedding engine's vectors of `papers`: made once per paper, kept in the state (none
    for TF-IDF, whose vectors depend on the day). EngineUnavailable without the extra."""
    if engine == TFIDF:
        return {}
    # imported here, as in `digests._by_taste`: the model loads only when it is used
    from digest.relevance.engine import embed

    name = canonical_engine(engine)
    known = store.paper_vectors((p.id for p in papers), name)
    fresh = embed([p for p in papers if p.id not in known], engine=name)
    if fresh and save:
        store.save_vectors(fresh, name, day)
    return known | fresh


def _resolved(
    settings: Settings,
    store: Store,
    keys: set[str],
    now: dt.datetime,
    *,
    network: bool,
    save: bool,
    transport: Any,
) -> tuple[dict[str, Paper], str | None]:
    """key -> paper: as resolved before (`liked_papers`), else now (and kept, with `save`); and
    why the arXiv API could not be asked, if it could not."""
    resolved = store.liked_papers(keys)
    fresh, failure = _resolve(settings, store, keys - set(resolved), network=network, transport=transport)
    if fresh and save:
        store.save_liked(fresh, now)
    return resolved | fresh, failure


def _tastes(
    subscribers: Sequence[Subscriber], feedback: Mapping[str, list[Feedback]], resolved: Mapping[str, Paper]
) -> tuple[dict[str, Paper], dict[str, Taste]]:
    """The example papers by id, and each reader's taste (readers with examples only)."""
    library: dict[str, Paper] = {p.id: p for p in resolved.values()}
    tastes: dict[str, Taste] = {}
    for sub in subscribers:
        said = [f for f in feedback.get(sub.email.lower(), []) if _known(f, resolved)]
        library.update({f.paper_id: f.paper or resolved[f"arxiv:{f.paper_id}"] for f in said})
        if taste := _taste(sub, said, resolved):
            tastes[sub.email] = taste
    return library, tastes


def _taste(sub: Subscriber, said: Sequence[Feedback], resolved: Mapping[str, Paper]) -> Taste | None:
    """The reader's examples: their `like`/`dislike` papers and their feedback (the newest word
    on a paper wins over the profile's lists)."""
    more = [f.paper_id for f in said if f.direction == "more"]
    fewer = [f.paper_id for f in said if f.direction == "fewer"]
    liked = [resolved[k].id for k in sub.like if k in resolved and resolved[k].id not in fewer] + more
    disliked = [resolved[k].id for k in sub.dislike if k in resolved and resolved[k].id not in more]
    disliked += [pid for pid in fewer if pid not in liked]
    if not liked and not disliked:
        return None
    return Taste(tuple(dict.fromkeys(liked)), tuple(dict.fromkeys(disliked)))


def _known(said: Feedback, resolved: Mapping[str, Paper]) -> bool:
    return said.paper is not None or f"arxiv:{said.paper_id}" in resolved


def _resolve(
    settings: Settings, store: Store, keys: set[str], *, network: bool, transport: Any
) -> tuple[dict[str, Paper], str | None]:
    """key -> paper for `keys` not resolved before: stored listings first, then the arXiv API;
    and why the API could not be asked, if it could not."""
    if not keys:
        return {}, None
    ids = {key: arxiv_id_of(key) for key in keys}
    stored = store.papers(pid for pid in ids.values() if pid)
    out = {key: stored[pid] for key, pid in ids.items() if pid and pid in stored}
    if dois := {key.removeprefix("doi:"): key for key in keys if key.startswith("doi:")}:
        out |= _by_doi(store, dois)
    wanted = sorted(pid for key, pid in ids.items() if pid and key not in out)
    failure = None
    if wanted and network:
        try:
            with Fetcher(settings.fetch, {}, transport=transport) as fetcher:
                found = lookup(fetcher, wanted, api_url=settings.relevance.api_url).found
        except (FetchError, ParseError) as exc:
            log.warning("liked papers: the arXiv API lookup failed (%s); tried again next run", exc)
            found, failure = {}, str(exc)
        out |= {key: found[pid] for key, pid in ids.items() if pid in found}
    return out, failure


def _by_doi(store: Store, dois: Mapping[str, str]) -> dict[str, Paper]:
    """The stored papers carrying any of `dois` (lower-cased DOI -> key), newest listing first."""
    out: dict[str, Paper] = {}
    for day in store.snapshot_dates():
        for paper in store.snapshot(day) or ():
            key = dois.get((paper.doi or "").lower())
            if key is not None and key not in out:
                out[key] = paper
        if len(out) == len(dois):
            break
    return out
