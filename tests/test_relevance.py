"""Relevance that learns (issue 17): like references, ranking by liked papers, dislikes, the
per-reader model, vectors, and looking papers up by id against a real local HTTP server."""

from __future__ import annotations

import functools
import itertools
import random
from pathlib import Path

import numpy as np
import pytest
from pytest_httpserver import HTTPServer

from digest.config import FetchConfig
from digest.core.models import Paper
from digest.relevance import engine as engines
from digest.relevance import ranker
from digest.relevance.likes import arxiv_id_of, like_key
from digest.relevance.model import MIN_EACH
from digest.relevance.ranker import DEFAULT_MIN_SIMILARITY, Taste, min_similarity, rank_day
from digest.sources.arxiv import parse_arxiv_rss
from digest.sources.arxiv_lookup import lookup
from digest.sources.fetch import Fetcher

DATA = Path(__file__).parent / "data"


@functools.cache
def _day() -> tuple[tuple[Paper, ...], tuple[Paper, ...]]:
    """The real 2024-11-28 listing: its new papers, and its replaced (earlier) papers."""
    papers = parse_arxiv_rss(
        (DATA / "arxiv_rss_2024-11-28_all.xml").read_bytes(), "arxiv", include_replacements=True
    )
    earlier = tuple(p for p in papers if (p.announce_type or "").startswith("replace"))
    new = tuple(p for p in papers if not (p.announce_type or "").startswith("replace"))
    return new, earlier


def _liked(category: str, n: int = 10) -> list[Paper]:
    return [p for p in _day()[1] if p.categories and p.categories[0] == category][:n]


# -- like references -------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("ref", "key"),
    [
        ("2411.01234", "arxiv:2411.01234"),
        ("arXiv:2411.01234v3", "arxiv:2411.01234"),
        ("  1706.03762v7 ", "arxiv:1706.03762"),
        ("0704.0001", "arxiv:0704.0001"),
        ("hep-ph/9912567v2", "arxiv:hep-ph/9912567"),
        ("math.GT/0309136", "arxiv:math/0309136"),
        ("https://arxiv.org/abs/2411.01234v2", "arxiv:2411.01234"),
        ("http://arxiv.org/pdf/2411.01234v1.pdf", "arxiv:2411.01234"),
        ("arxiv.org/pdf/2411.01234", "arxiv:2411.01234"),
        ("https://export.arxiv.org/abs/hep-th/9711200", "arxiv:hep-th/9711200"),
        ("https://huggingface.co/papers/2411.01234", "arxiv:2411.01234"),
        ("10.48550/arXiv.2411.01234", "arxiv:2411.01234"),
        ("https://doi.org/10.48550/arXiv.1706.03762", "arxiv:1706.03762"),
        ("doi:10.1145/3292500.3330701", "doi:10.1145/3292500.3330701"),
        ("https://doi.org/10.1038/S41586-021-03819-2", "doi:10.1038/s41586-021-03819-2"),
    ],
)
def test_like_references_become_one_key(ref: str, key: str) -> None:
    assert like_key(ref) == key


@pytest.mark.parametrize(
    "ref",
    [
        "",
        "   ",
        "attention is all you need",
        "2411.123",
        "https://example.org/abs/2411.01234",
        "https://huggingface.co/models/2411.01234",
        "10.1/x",
        "x" * 600,
    ],
)
def test_unreadable_references_say_why(ref: str) -> None:
    with pytest.raises(ValueError) as info:
        like_key(ref)
    message = str(info.value)
    assert "\n" not in message and message


def test_arxiv_id_of_a_key() -> None:
    assert arxiv_id_of(like_key("https://arxiv.org/abs/hep-ph/9912567")) == "hep-ph/9912567"
    assert arxiv_id_of(like_key("10.1145/3292500.3330701")) is None


# -- ranking ---------------------------------------------------------------------------------------
def test_like_only_ranking_finds_the_liked_field() -> None:
    day, earlier = _day()
    liked = _liked("quant-ph")
    library = {p.id: p for p in earlier}
    (ranked,) = rank_day(day, library, [Taste(tuple(p.id for p in liked))])
    by_id = {p.id: p for p in day}
    top = [by_id[s.paper_id] for s in ranked[:10]]
    on_topic = sum("quant-ph" in p.categories for p in top)
    share = sum("quant-ph" in p.categories for p in day) / len(day)
    assert on_topic >= 7, [p.title for p in top]
    assert share < 0.1  # so seven in ten is not luck
    # every day paper is listed once, best first, each with the liked paper it is nearest to
    assert sorted(s.paper_id for s in ranked) == sorted(by_id)
    assert all(a.score >= b.score for a, b in itertools.pairwise(ranked))
    assert {s.nearest for s in ranked[:10]} <= {p.id for p in liked}
    assert ranked[0].score >= DEFAULT_MIN_SIMILARITY


def test_liked_and_disliked_papers_are_not_recommended_and_ties_go_by_id() -> None:
    day, _ = _day()
    liked = day[0]
    disliked = day[1]
    (ranked,) = rank_day(day, {}, [Taste((liked.id,), (disliked.id,))])
    ids = [s.paper_id for s in ranked]
    assert liked.id not in ids and disliked.id not in ids
    assert len(ids) == len(day) - 2
    for a, b in itertools.pairwise(ranked):
        assert (-a.score, a.paper_id) < (-b.score, b.paper_id)


def test_a_taste_with_nothing_known_scores_everything_zero_in_id_order() -> None:
    day, _ = _day()
    (ranked,) = rank_day(day[:20], {}, [Taste(("2411.99999",))])
    assert [s.score for s in ranked] == [0.0] * 20
    assert [s.paper_id for s in ranked] == sorted(p.id for p in day[:20])
    assert all(s.nearest is None for s in ranked)


def test_a_dislike_pushes_its_neighbours_down() -> None:
    day, earlier = _day()
    library = {p.id: p for p in earlier}
    liked = tuple(p.id for p in _liked("cs.RO"))
    (before,) = rank_day(day, library, [Taste(liked)])
    # Dislike the top paper: the day paper most like it should fall.
    top = before[0].paper_id
    (around_top,) = rank_day(day, {}, [Taste((top,))])
    neighbour = around_top[0].paper_id
    (after,) = rank_day(day, library, [Taste(liked, (top,))])
    rank_before = [s.paper_id for s in before].index(neighbour)
    rank_after = [s.paper_id for s in after].index(neighbour)
    assert rank_after > rank_before
    score = {s.paper_id: s.score for s in after}
    assert score[neighbour] < {s.paper_id: s.score for s in before}[neighbour]


def test_ranking_is_deterministic_whatever_the_input_order() -> None:
    day, earlier = _day()
    library = {p.id: p for p in earlier}
    tastes = [Taste(tuple(p.id for p in _liked(c, 5))) for c in ("math.CO", "hep-ph", "cs.CL")]
    first = rank_day(day, library, tastes)
    shuffled = list(day)
    random.Random(7).shuffle(shuffled)
    again = rank_day(shuffled, dict(reversed(list(library.items()))), tastes)
    assert first == again


def test_chunked_similarities_rank_as_the_whole_product_does(monkeypatch: pytest.MonkeyPatch) -> None:
    day, earlier = _day()
    library = {p.id: p for p in earlier}
    tastes = [
        Taste(tuple(p.id for p in _liked(c, 4)), (day[n].id,)) for n, c in enumerate(("math.AP", "gr-qc"))
    ]
    whole = rank_day(day, library, tastes, limit=30)
    monkeypatch.setattr(ranker, "WHOLE_CELLS", 0)
    monkeypatch.setattr(ranker, "CHUNK", 1)
    assert rank_day(day, library, tastes, limit=30) == whole


def test_limit_and_min_score_cut_the_list() -> None:
    day, earlier = _day()
    library = {p.id: p for p in earlier}
    taste = Taste(tuple(p.id for p in _liked("astro-ph.HE")))
    (full,) = rank_day(day, library, [taste])
    (cut,) = rank_day(day, library, [taste], limit=5, min_score=full[3].score)
    assert cut == [s for s in full if s.score >= full[3].score][:5]
    assert len(cut) >= 4


def test_enough_feedback_switches_to_the_readers_own_model() -> None:
    day, earlier = _day()
    library = {p.id: p for p in [*earlier, *day]}
    liked = tuple(p.id for p in _liked("quant-ph", MIN_EACH))
    disliked = tuple(p.id for p in _liked("cs.CV", MIN_EACH))
    few, enough = rank_day(day, library, [Taste(liked, disliked[:-1]), Taste(liked, disliked)])
    assert not any(s.by_model for s in few)
    assert all(s.by_model for s in enough)
    assert all(0.0 <= s.score <= 1.0 for s in enough)
    by_id = {p.id: p for p in day}
    top = [by_id[s.paper_id] for s in enough[:10]]
    assert sum("quant-ph" in p.categories for p in top) >= 7
    assert not any("cs.CV" in p.categories and "quant-ph" not in p.categories for p in top)


def test_each_engine_has_a_floor() -> None:
    assert min_similarity("tfidf") == DEFAULT_MIN_SIMILARITY
    assert min_similarity("semantic") == min_similarity(engines.SEMANTIC)
    with pytest.raises(ValueError, match="unknown relevance engine"):
        min_similarity("bm25")


def test_tfidf_scores_take_off_each_papers_mean_similarity_to_the_rest_of_the_day() -> None:
    day, earlier = _day()
    day = tuple(sorted(day, key=lambda p: p.id)[:300])
    liked = _liked("quant-ph")
    (ranked,) = rank_day(day, {p.id: p for p in earlier}, [Taste(tuple(p.id for p in liked))])
    x_day, x_liked = engines.tfidf_vectors(day, liked)
    to_liked = (x_day @ x_liked.T).toarray().mean(axis=1)
    others = (x_day @ x_day.T).toarray()
    np.fill_diagonal(others, 0.0)
    expected = to_liked - ranker.DAY_CONTRAST["tfidf"] * others.sum(axis=1) / (len(day) - 1)
    score = {s.paper_id: s.score for s in ranked}
    for n, paper in enumerate(day):
        assert score[paper.id] == pytest.approx(expected[n], abs=2e-6)
    # the embeddings keep plain similarity; one paper alone has no rest of the day to differ from
    assert ranker.DAY_CONTRAST.get(engines.WORDLLAMA, 0.0) == 0.0
    (alone,) = rank_day(day[:1], {p.id: p for p in earlier}, [Taste(tuple(p.id for p in liked))])
    x_one, x_l = engines.tfidf_vectors(day[:1], liked)
    assert alone[0].score == pytest.approx(float((x_one @ x_l.T).toarray().mean()), abs=2e-6)


def test_a_paper_close_to_the_whole_day_ranks_below_one_close_to_the_liked_papers_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    day, earlier = _day()
    liked = _liked("quant-ph")
    # an "abstract" made of a bit of every paper of the day: near the liked papers, and near all
    generic = Paper(
        "2411.99990",
        "A digest of the day",
        " ".join(f"{p.title}. {p.abstract[:200]}" for p in day),
        categories=("cs.CV",),
    )
    taste = Taste(tuple(p.id for p in liked))

    def position() -> int:
        (ranked,) = rank_day((*day, generic), {p.id: p for p in earlier}, [taste])
        return [s.paper_id for s in ranked].index(generic.id)

    assert position() >= 100
    monkeypatch.setattr(ranker, "DAY_CONTRAST", {})  # plain similarity: it would lead the list
    assert position() < 10


# -- vectors ---------------------------------------------------------------------------------------
def test_vectors_round_trip_as_float16_bytes() -> None:
    vector = np.random.default_rng(0).standard_normal(384).astype(np.float32)
    data = engines.to_bytes(vector)
    assert len(data) == 384 * 2
    assert np.allclose(engines.from_bytes(data), vector, atol=2e-3 * np.abs(vector).max())


@pytest.mark.skipif(not engines.engine_available("semantic"), reason="needs digest[semantic]")
def test_semantic_engine_uses_stored_vectors_and_ranks_the_field() -> None:
    day, earlier = _day()
    liked = _liked("quant-ph")
    vectors = engines.embed([*day, *liked])
    assert all(len(v) == len(next(iter(vectors.values()))) for v in vectors.values())
    library = {p.id: p for p in earlier}
    (ranked,) = rank_day(
        day, library, [Taste(tuple(p.id for p in liked))], engine="semantic", vectors=vectors
    )
    by_id = {p.id: p for p in day}
    assert sum("quant-ph" in by_id[s.paper_id].categories for s in ranked[:10]) >= 6
    # A vector stored for a paper is used as it is, not recomputed: a changed one changes the rank.
    moved = dict(vectors)
    # The direction of the liked papers' mean is, of all vectors, the most similar to them on average.
    centroid = np.mean([engines.from_bytes(vectors[p.id]) for p in liked], axis=0)
    moved[ranked[-1].paper_id] = engines.to_bytes(centroid / np.linalg.norm(centroid))
    (again,) = rank_day(day, library, [Taste(tuple(p.id for p in liked))], engine="semantic", vectors=moved)
    assert again[0].paper_id == ranked[-1].paper_id


# -- looking liked papers up on the arXiv API -----------------------------------------------------
def test_lookup_fetches_by_id_in_batches_and_reports_what_did_not_resolve(httpserver: HTTPServer) -> None:
    body = (DATA / "arxiv_api_atom.xml").read_bytes()
    httpserver.expect_request("/api/query").respond_with_data(body, content_type="application/atom+xml")
    sleeps: list[float] = []
    refs = ["2606.13677v1", "https://arxiv.org/abs/2606.13591", "2411.99999", "10.1145/3292500.3330701"]
    with Fetcher(FetchConfig(timeout=2, retries=0, api_delay=3.0), sleep=sleeps.append) as fetcher:
        result = lookup(fetcher, refs, api_url=httpserver.url_for("/api/query"), batch=2)
    assert sorted(result.found) == ["2606.13591", "2606.13677"]
    assert result.found["2606.13677"].title == "Mana: Dexterous Manipulation of Articulated Tools"
    assert "cs.RO" in result.found["2606.13677"].categories
    assert result.missing == ["2411.99999", "10.1145/3292500.3330701"]
    queries = [dict(r.args) for r, _ in httpserver.log]
    assert [q["id_list"] for q in queries] == ["2606.13677,2606.13591", "2411.99999"]
    assert len(sleeps) == 1 and 2.0 < sleeps[0] <= 3.0  # arXiv's 3 s between requests
