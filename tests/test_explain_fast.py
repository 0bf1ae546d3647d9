"""`explanations` (digest.explain) takes a short cut for a match of one hit, the most common; what
it keeps must be what the plain rule keeps, value for value, for any matches."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from digest.core.models import Hit, Match, Paper
from digest.explain import explained, explanations

pytestmark = pytest.mark.unit

FIELDS = ["title", "abstract", "keywords", "author", "category"]


def plain_rule(
    matches: Sequence[Match], *, where: bool = True, similar: Mapping[str, tuple[str, float]] | None = None
) -> dict[str, Any]:
    """`explanations` as it was written before the short cut."""
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
    short: dict[str, Any] = {
        m.paper.id: [m.score, *(x for pair in dict.fromkeys((h.term, h.field) for h in m.hits) for x in pair)]
        for m in matches
    }
    for pid, (title, score) in near.items():
        if pid in short:
            short[pid].append({"near": [title, score]})
    return short


hits = st.builds(
    Hit,
    term=st.sampled_from(["LLM", "LLMs", "graph neural network", "Yann LeCun", "cs.CV", ""]),
    field=st.sampled_from(FIELDS),
    start=st.integers(-1, 50),
    end=st.integers(-1, 60),
)
matches = st.builds(
    Match,
    paper=st.builds(
        Paper, id=st.sampled_from(["2411.00001", "2411.00002", "hep-ph/9912567", "x"]), title=st.just("T")
    ),
    score=st.floats(0, 100, allow_nan=False) | st.integers(0, 100),
    hits=st.lists(hits, max_size=6).map(tuple),
)
similar = st.none() | st.dictionaries(
    st.sampled_from(["2411.00001", "2411.00002", "elsewhere"]),
    st.tuples(st.text(max_size=10), st.floats(0, 1)),
    max_size=3,
)


@settings(max_examples=500, deadline=None)
@given(found=st.lists(matches, max_size=8), where=st.booleans(), near=similar)
def test_the_short_cut_keeps_what_the_plain_rule_keeps(
    found: list[Match], where: bool, near: dict[str, tuple[str, float]] | None
) -> None:
    kept = explanations(found, where=where, similar=near)
    assert kept == plain_rule(found, where=where, similar=near)
    assert repr(kept) == repr(plain_rule(found, where=where, similar=near))  # int and float scores stay


def test_one_hit_several_and_repeated_ones() -> None:
    paper = Paper(id="2411.00001", title="T")
    one = Match(paper, 2.0, (Hit("LLM", "title", 0, 3),))
    repeated = Match(
        paper, 3.0, (Hit("LLM", "abstract", 0, 3), Hit("LLM", "abstract", 9, 12), Hit("LLM", "title", 0, 3))
    )
    none = Match(paper, 1.0)
    assert explanations([one], where=False) == {"2411.00001": [2.0, "LLM", "title"]}
    assert explanations([repeated], where=False) == {"2411.00001": [3.0, "LLM", "abstract", "LLM", "title"]}
    assert explanations([none], where=False, similar={"2411.00001": ("Liked", 0.5)}) == {
        "2411.00001": [1.0, {"near": ["Liked", 0.5]}]
    }
    # and what is kept reads back as the match, offsets aside
    assert explained(paper, explanations([repeated], where=False)["2411.00001"]).hits == (
        Hit("LLM", "abstract", -1, -1),
        Hit("LLM", "title", -1, -1),
    )
