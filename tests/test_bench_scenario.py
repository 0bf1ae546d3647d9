"""The benchmark harness: the synthetic subscribers are deterministic and valid, and `--quick` runs.

Benchmarks report numbers and live in bench/; these tests only check that the harness itself
works, so the numbers in BENCHMARKS.md come from profiles the product accepts.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from bench import scenario
from digest.core.models import Paper, merge_papers
from digest.matching.terms import compile_term
from digest.profiles import load_subscribers
from digest.sources import parse_arxiv_rss, parse_hf_daily

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT / "tests" / "data"


@pytest.fixture(scope="module")
def papers() -> list[Paper]:
    arxiv = parse_arxiv_rss((DATA / "arxiv_rss_2024-11-28_trimmed.xml").read_bytes(), "arxiv")
    hf = parse_hf_daily((DATA / "hf_daily_papers_2026-06-12.json").read_bytes(), "hf")
    return merge_papers([*arxiv, *hf])


def test_same_seed_same_file_other_seed_other_file(papers: list[Paper]) -> None:
    first = scenario.to_toml(scenario.generate(papers, 60, seed=7))
    again = scenario.to_toml(scenario.generate(papers, 60, seed=7))
    other = scenario.to_toml(scenario.generate(papers, 60, seed=8))
    assert first == again
    assert first != other


def test_a_larger_scenario_extends_a_smaller_one(papers: list[Paper]) -> None:
    # Run-to-run comparability across S: subscriber i is the same whatever S is.
    assert scenario.generate(papers, 150, seed=3)[:40] == scenario.generate(papers, 40, seed=3)


def test_profiles_load_through_the_product_validation(papers: list[Paper], tmp_path: Path) -> None:
    profiles = scenario.generate(papers, 300, seed=42)
    path = scenario.write_toml(profiles, tmp_path / "subscribers.toml")

    subscribers = load_subscribers(path, source_names=["arxiv", "hf"])

    assert [s.email for s in subscribers] == [p["email"] for p in profiles]
    assert len({s.email for s in subscribers}) == 300
    for sub in subscribers:
        assert 5 <= sub.max_papers <= 50
        if not sub.all:
            assert 1 <= len(sub.keywords) <= 15
            assert all(compile_term(k) is not None for k in sub.keywords)
    # the mix the issue asks for is there
    assert any(s.all for s in subscribers)
    assert any(s.feed for s in subscribers)
    assert any(s.query for s in subscribers)
    assert any(s.exclude for s in subscribers)
    assert any(s.categories for s in subscribers)
    assert any(any(". " in a for a in s.authors) for s in subscribers)  # initials, "Y. LeCun"
    assert any(any(" " in k for k in s.keywords) for s in subscribers)  # phrases
    assert any(any("-" in k for k in s.keywords) for s in subscribers)  # hyphenated
    assert any(any(k.isupper() for k in s.keywords) for s in subscribers)  # acronyms


def test_quick_run_end_to_end(tmp_path: Path) -> None:
    out = tmp_path / "bench.md"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "run.py"), "--quick", "--out", str(out)],
        capture_output=True,
        text=True,
        timeout=110,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    text = out.read_text()
    for heading in ("## Stages", "## Sending, side by side", "## End to end", "## Bars"):
        assert heading in text
    assert "| same papers in the same order as the naive loop | ✔" in text
    assert "all accepted ✔" in text
