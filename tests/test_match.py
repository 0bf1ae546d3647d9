"""Matching: the semantics of docs/matching.md on hand-made and real papers, and the fast matcher
against the naive reference loop."""

from __future__ import annotations

import datetime as dt
import functools
import random
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from digest.core.models import Hit, Match, Paper, Subscriber, merge_papers
from digest.matching.bitsets import best, set_bits
from digest.matching.matcher import Matcher, build_digest, field_planes, score_hits
from digest.matching.naive import naive_match
from digest.matching.scoring import term_score, tie_break_key
from digest.profiles import load_subscribers
from digest.sources import parse_arxiv_rss, parse_hf_daily

DATA = Path(__file__).parent / "data"  # the same paths as conftest.py
ARXIV_ALL = DATA / "arxiv_rss_2024-11-28_all.xml"
ARXIV_TRIMMED = DATA / "arxiv_rss_2024-11-28_trimmed.xml"
HF_DAY = DATA / "hf_daily_papers_2026-06-12.json"

# -- helpers ---------------------------------------------------------------------------------------


def sub(**kw: object) -> Subscriber:
    kw.setdefault("email", "r@example.org")
    return Subscriber(**kw)  # type: ignore[arg-type]


def both(subscribers: Sequence[Subscriber], papers: Sequence[Paper]) -> dict[str, list[Match]]:
    """Run the fast matcher, check the naive loop agrees, return the result."""
    fast = Matcher(subscribers).match(papers)
    assert comparable(fast) == comparable(naive_match(subscribers, papers))
    return fast


def comparable(result: dict[str, list[Match]]) -> dict[str, list[tuple[str, float, frozenset[Hit]]]]:
    return {email: [(m.paper.id, m.score, frozenset(m.hits)) for m in ms] for email, ms in result.items()}


def ids(subscriber: Subscriber, papers: Sequence[Paper]) -> list[str]:
    return [m.paper.id for m in both([subscriber], papers)[subscriber.email]]


def fast_ids(subscriber: Subscriber, papers: Sequence[Paper]) -> list[str]:
    """Without the naive cross-check: for the large listing and the monotonicity properties."""
    return [m.paper.id for m in Matcher([subscriber]).match(papers)[subscriber.email]]


def paper(pid: str, title: str, abstract: str = "", **kw: object) -> Paper:
    return Paper(id=pid, title=title, abstract=abstract, **kw)  # type: ignore[arg-type]


# Real titles and abstract sentences from the fixtures, plus a few made up for the negatives the
# real listings do not contain (nobody writes "slam dunk" or "ragged" in these abstracts).
P_LLMS = paper(
    "2606.12730", "Rethinking Psychometric Evaluation of LLMs: When and Why Self-Reports Predict Behavior"
)
P_VLM = paper(
    "2411.18038", "VLM-HOI: Vision Language Models for Interpretable Human-Object Interaction Analysis"
)
P_VLM2 = paper("2411.18111", "When Large Vision-Language Models Meet Person Re-Identification")
P_SLAM = paper("2411.17982", "HI-SLAM2: Geometry-Aware Gaussian SLAM for Fast Monocular Scene Reconstruction")
P_RAG = paper(
    "2411.18216", "Evaluating and Improving", "Retrieval Augmented Generation (RAG) and Self-Ranking"
)
P_PARA = paper(
    "x1", "Paragraph-level ALLM slam dunks", "A ragged paragraph about vision, language and graphene."
)
P_GRAPH = paper("2411.17737", "On the Dynkin graph", "the Coxeter graphs of type $A_n$")
P_QUERIES = paper("2606.12451", "ToolSense", "verbose, fully-specified queries, and their evaluation")
HAND = [P_LLMS, P_VLM, P_VLM2, P_SLAM, P_RAG, P_PARA, P_GRAPH, P_QUERIES]


@functools.cache
def _hf() -> list[Paper]:
    return parse_hf_daily(HF_DAY.read_bytes(), "hf")


@functools.cache
def _arxiv() -> list[Paper]:
    return parse_arxiv_rss(ARXIV_ALL.read_bytes(), "arxiv")


@pytest.fixture(scope="module")
def hf() -> list[Paper]:
    return _hf()


@pytest.fixture(scope="module")
def arxiv() -> list[Paper]:
    return _arxiv()


@pytest.fixture(scope="module")
def day(hf: list[Paper], arxiv: list[Paper]) -> list[Paper]:
    return hf + arxiv


# -- words, acronyms, plurals, phrases -------------------------------------------------------------


@pytest.mark.parametrize(
    ("keyword", "expected"),
    [
        ("LLM", ["2606.12730"]),  # "LLMs", not "ALLM"
        ("llm", ["2606.12730"]),
        ("SLAM", ["2411.17982"]),  # not "slam dunks", not "HI-SLAM2"'s "SLAM2"
        ("slam", ["2411.17982", "x1"]),  # lower case is not an acronym: any case
        ("RAG", ["2411.18216"]),  # not "ragged"
        ("vision-language", ["2411.18038", "2411.18111"]),  # not "vision, language"
        ("vision language", ["2411.18038", "2411.18111"]),
        ("vision_language", ["2411.18038", "2411.18111"]),
        ("graph", ["2411.17737"]),  # "graphs" yes; "paragraph", "graphene" no
        ("paragraph", ["x1"]),  # "Paragraph-level"
        ("query", ["2606.12451"]),
        ("queries", ["2606.12451"]),
        ("models", ["2411.18038", "2411.18111"]),
    ],
)
def test_keyword_semantics(keyword: str, expected: list[str]) -> None:
    assert sorted(ids(sub(keywords=[keyword]), HAND)) == expected


def test_hits_point_into_the_original_text() -> None:
    [m] = both([sub(keywords=["vision-language", "interpretable"])], [P_VLM])["r@example.org"]
    assert {(h.term, h.field) for h in m.hits} == {("vision-language", "title"), ("interpretable", "title")}
    for h in m.hits:
        assert P_VLM.title[h.start : h.end] in ("Vision Language", "Interpretable")


def test_keyword_hits_in_hf_keywords_point_into_the_joined_list() -> None:
    p = paper("k", "T", ai_keywords=("zero-shot annotation", "LLM-as-a-judge"))
    [m] = both([sub(keywords=["judge"])], [p])["r@example.org"]
    [h] = m.hits
    assert h.field == "keywords" and ", ".join(p.ai_keywords)[h.start : h.end] == "judge"


def test_phrase_spans_a_hard_line_wrap() -> None:
    p = paper("w", "Hard Negatives for\n  Contrastive Loss")
    assert ids(sub(keywords=["for contrastive loss"]), [p]) == ["w"]


# -- the rules of a profile ------------------------------------------------------------------------

A = paper("a", "Prompt tuning for vision", categories=("cs.CV",), sources=("arxiv",), authors=("Yann LeCun",))
B = paper("b", "Prompt tuning in surgery", categories=("cs.CL",), sources=("hf",), upvotes=3)
C = paper(
    "c", "Black holes", categories=("hep-th",), sources=("arxiv",), authors=("Raphaël Baena", "Y. LeCun")
)
D = paper("d", "Unrelated", categories=("cs.LG",), sources=("hf",), upvotes=50)
ABCD = [A, B, C, D]


def test_exclude_vetoes_keywords_and_authors() -> None:
    assert ids(sub(keywords=["prompt tuning"], exclude=["surgery"]), ABCD) == ["a"]
    assert ids(sub(authors=["Yann LeCun"], exclude=["black hole"]), ABCD) == ["a"]


def test_categories_restrict_keywords_but_not_authors() -> None:
    assert ids(sub(keywords=["prompt tuning"], categories=["cs.CV"]), ABCD) == ["a"]
    assert sorted(ids(sub(keywords=["prompt tuning"], categories=["cs"]), ABCD)) == ["a", "b"]
    assert sorted(ids(sub(keywords=["black holes"], authors=["Y. LeCun"], categories=["cs.CL"]), ABCD)) == [
        "a",
        "c",
    ]


def test_categories_alone_mean_every_paper_in_them() -> None:
    assert sorted(ids(sub(categories=["cs"]), ABCD)) == ["a", "b", "d"]
    # with authors too: the categories' papers and the author's anywhere
    assert sorted(ids(sub(categories=["hep-th"], authors=["Yann LeCun"]), ABCD)) == ["a", "c"]


def test_authors_tolerate_initials_and_accents() -> None:
    assert sorted(ids(sub(authors=["Yann LeCun"]), ABCD)) == ["a", "c"]
    assert ids(sub(authors=["Raphael Baena"]), ABCD) == ["c"]
    assert ids(sub(authors=["R. Baena"]), ABCD) == ["c"]
    assert ids(sub(authors=["Yves LeCun"]), [A]) == []  # "Y. LeCun" on C could be Yves
    assert sorted(ids(sub(authors=["Yann Le Cun"]), ABCD)) == ["a", "c"]
    [m] = both([sub(authors=["Y. LeCun"])], [C])["r@example.org"]
    [h] = m.hits
    assert h.field == "author" and ", ".join(C.authors)[h.start : h.end] == "Y. LeCun"


def test_min_upvotes_only_applies_to_papers_with_a_count() -> None:
    assert sorted(ids(sub(keywords=["prompt tuning"], min_upvotes=5), ABCD)) == ["a"]
    assert sorted(ids(sub(all=True, min_upvotes=5), ABCD)) == ["a", "c", "d"]


def test_sources_and_all() -> None:
    assert sorted(ids(sub(all=True, sources=["hf"]), ABCD)) == ["b", "d"]
    assert ids(sub(all=True, exclude=["unrelated", "prompt", "black"]), ABCD) == []


def test_query_with_fields_and_not() -> None:
    q = '("prompt tuning" OR holes) AND NOT cat:cs.CL'
    assert sorted(ids(sub(query=q), ABCD)) == ["a", "c"]
    assert ids(sub(query="title:vision author:LeCun"), ABCD) == ["a"]
    assert sorted(ids(sub(query="NOT cat:cs"), ABCD)) == ["c"]
    # a query and keywords together: either one
    assert sorted(ids(sub(query="holes", keywords=["surgery"]), ABCD)) == ["b", "c"]


def test_query_explains_with_its_positive_terms_only() -> None:
    [m] = both([sub(query='"prompt tuning" NOT surgery')], ABCD)["r@example.org"]
    assert m.paper.id == "a" and m.terms == ("prompt tuning",)


# -- ranking ---------------------------------------------------------------------------------------


_NAME_CHARS = "abcdeABCDE xyzXYZ.,-'0é{}\\()"


@settings(max_examples=300, deadline=None)
@given(
    name=st.text(_NAME_CHARS, max_size=24),
    others=st.lists(st.text(_NAME_CHARS, min_size=1, max_size=16), max_size=4),
    own=st.booleans(),
)
def test_surname_filter_never_drops_a_name_with_a_followed_surname(
    name: str, others: list[str], own: bool
) -> None:
    from digest.matching.terms import SurnameFilter, author_name

    followed = {s for other in others if (parsed := author_name(other)) for s in parsed.surnames}
    author = author_name(name)
    if own and author is not None:
        followed |= set(list(author.surnames)[:1])
    if author is not None and not author.surnames.isdisjoint(followed):
        assert SurnameFilter(followed).may_match(name)


def test_surname_filter_drops_plain_names_without_a_followed_surname() -> None:
    from digest.matching.terms import SurnameFilter

    only_lecun = SurnameFilter({"lecun"})
    assert only_lecun.may_match("Yann Le Cun") and only_lecun.may_match("Y. LeCun")
    assert not only_lecun.may_match("Yoshua Bengio")
    assert only_lecun.may_match("José Bengio")  # accents: parsed in full


def test_ranking_title_over_abstract_over_keywords_and_authors_high() -> None:
    t = paper("t", "Diffusion", abstract="x")
    a = paper("ab", "x", abstract="diffusion")
    k = paper("k", "x", ai_keywords=("diffusion",))
    au = paper("au", "x", authors=("Ada Lovelace",))
    both_fields = paper("tb", "Diffusion", abstract="diffusion")
    result = ids(sub(keywords=["diffusion"], authors=["Ada Lovelace"]), [k, a, t, au, both_fields])
    assert result == ["au", "tb", "t", "ab", "k"]


def test_ties_break_on_upvotes_then_date_then_id() -> None:
    old = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    new = dt.datetime(2024, 6, 1, tzinfo=dt.UTC)
    papers = [
        paper("p1", "Agents", published=old),
        paper("p2", "Agents", published=new),
        paper("p3", "Agents", upvotes=4, published=old),
        paper("p0", "Agents", published=old),
    ]
    assert ids(sub(keywords=["agent"]), papers) == ["p3", "p2", "p0", "p1"]


def test_score_counts_distinct_terms() -> None:
    hits = [
        Hit("a", "title", 0, 1),
        Hit("a", "abstract", 0, 1),
        Hit("b", "keywords", 0, 1),
        Hit("x", "author", 0, 1),
    ]
    assert score_hits(hits) == 3.0 + 0.5 + 1.0 + 5.0


def test_build_digest_caps_and_counts() -> None:
    s = sub(all=True, max_papers=2)
    matches = Matcher([s]).match(ABCD)[s.email]
    digest = build_digest(s, matches, dt.date(2024, 11, 28))
    assert len(digest.matches) == 2 and digest.total_matched == 4 and digest.more == 2
    assert digest.matches == tuple(matches[:2])


def test_readers_share_what_is_the_same_in_their_digests() -> None:
    """A run holds a million matches at 100,000 readers: a score is one float object whoever
    it went to, and a digest with nothing similar holds no dict of its own."""
    a = sub(email="a@example.org", keywords=["prompt tuning"])
    b = sub(email="b@example.org", keywords=["prompt tuning"], authors=["Nobody Here"])
    result = Matcher([a, b]).match(ABCD)
    scores = [m.score for m in result["a@example.org"] + result["b@example.org"]]
    assert len(scores) >= 2
    assert len({id(s) for s in scores}) == len(set(scores))  # equal scores: the same object
    first, second = (build_digest(s, result[s.email], dt.date(2024, 11, 28)) for s in (a, b))
    assert first.similar == {} and first.similar is second.similar
    with pytest.raises(TypeError):
        first.similar["x"] = ("y", 1.0)  # type: ignore[index]


def test_every_subscriber_is_present() -> None:
    subs = [sub(email="a@example.org", keywords=["nothing-like-this"]), sub(email="b@example.org", all=True)]
    result = Matcher(subs).match(ABCD)
    assert result["a@example.org"] == [] and len(result["b@example.org"]) == 4
    assert Matcher(subs).match([]) == {"a@example.org": [], "b@example.org": []}


# -- golden: the real listings ---------------------------------------------------------------------


def test_golden_hf_day(hf: list[Paper]) -> None:
    assert ids(sub(keywords=["speculative decoding"]), hf) == ["2606.12243"]
    assert ids(sub(keywords=["sparse attention"]), hf) == ["2606.13392"]
    # "LLM" in capitals: titles with "LLMs" and "LLM" count, "MLLMs" does not
    llm = ids(sub(keywords=["LLM"]), hf)
    assert {"2606.12730", "2606.00467", "2606.07867", "2606.12451"} <= set(llm)
    assert "2606.08063" not in llm  # Robust-U1: Can MLLMs Self-Recover ...
    assert ids(sub(authors=["Raphael Baena"]), hf) == ["2606.09446"]  # "Raphaël Baena"
    assert sorted(ids(sub(authors=["R. Kocielnik"]), hf)) == ["2606.00467", "2606.12730"]


def test_golden_arxiv_listing(arxiv: list[Paper]) -> None:
    slam = fast_ids(sub(keywords=["SLAM"]), arxiv)
    assert {"2411.17928", "2411.17982", "2411.18174"} <= set(slam)
    vl = set(fast_ids(sub(keywords=["vision-language"]), arxiv))
    assert {"2411.18038", "2411.18111", "2411.18207"} <= vl  # "Vision Language", "Vision-Language"
    graph = set(fast_ids(sub(keywords=["graph"]), arxiv))
    assert "2411.17737" in graph
    assert "2411.18471" not in graph  # "Holography" contains "graph", but not as a word
    assert fast_ids(sub(keywords=["black hole"], categories=["hep-th"], sources=["hf"]), arxiv) == []
    rag = fast_ids(sub(keywords=["RAG"]), arxiv)
    assert {"2411.18216", "2411.18583", "2409.13694"} <= set(rag)


def test_golden_trimmed_listing() -> None:
    papers = parse_arxiv_rss(ARXIV_TRIMMED.read_bytes(), "arxiv")
    assert ids(sub(keywords=["generative AI"]), papers)[0] == "2411.17700"
    assert ids(sub(authors=["J. Cui"]), papers) == ["2411.17700"]


def test_example_profiles_each_match_a_handful(day: list[Paper]) -> None:
    """`digest demo` shows the example profiles on these listings: each should get a few papers."""
    example = Path(__file__).parent.parent / "subscribers.example.toml"
    subs = load_subscribers(example, source_names={"hf", "arxiv"})
    new = [p for p in merge_papers(day) if not p.is_replacement]
    result = both(subs, new)
    for s in subs:
        assert 2 <= len(result[s.email]) <= 15, s.email


# -- properties ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(hf: list[Paper], arxiv: list[Paper]) -> list[Paper]:
    # every HF paper and an arXiv slice with cs, physics and maths in it
    return hf + arxiv[:50]


def _vocabulary() -> tuple[list[str], list[str], list[str]]:
    hf, arxiv = _hf(), _arxiv()[:50]
    words = sorted({k for p in hf for k in p.ai_keywords if '"' not in k})[:150]  # quotable in a query
    words += ["LLM", "LLMs", "RAG", "SLAM", "model", "models", "agent", "graph", "vision-language", "diffusion",
              "quantum", "black hole", "learning", "queries", "data", "attention", "EEG", "CNN", "3D"]  # fmt: skip
    authors = [*sorted({a for p in hf + arxiv for a in p.authors})[:60], "Y. LeCun", "R. Kocielnik"]
    cats = [*sorted({c for p in arxiv for c in p.categories}), "cs", "math", "physics"]
    return words, authors, cats


WORDS, AUTHORS, CATS = _vocabulary()


@st.composite
def profiles(draw: st.DrawFn, email: str = "r@example.org", need_keyword: bool = False) -> Subscriber:
    keywords = draw(st.lists(st.sampled_from(WORDS), min_size=1 if need_keyword else 0, max_size=4))
    query = None
    if not need_keyword and draw(st.integers(0, 3)) == 0:
        a, b, c = draw(st.lists(st.sampled_from(WORDS), min_size=3, max_size=3))
        cat = draw(st.sampled_from(CATS))
        query = draw(
            st.sampled_from([f'"{a}" OR "{b}"', f'"{a}" NOT cat:{cat}', f'("{a}" OR title:"{b}") "{c}"'])
        )
    return Subscriber(
        email=email,
        keywords=tuple(keywords),
        exclude=tuple(draw(st.lists(st.sampled_from(WORDS), max_size=2))),
        authors=tuple(draw(st.lists(st.sampled_from(AUTHORS), max_size=2))),
        categories=tuple(draw(st.lists(st.sampled_from(CATS), max_size=2))),
        query=query,
        all=draw(st.integers(0, 9)) == 0,
        min_upvotes=draw(st.sampled_from([0, 0, 3, 10])),
        sources=tuple(draw(st.lists(st.sampled_from(["hf", "arxiv"]), max_size=1))),
    )


PROPS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])


@PROPS
@given(st.lists(profiles(), min_size=1, max_size=4))
def test_fast_and_naive_agree(sample: list[Paper], subs: list[Subscriber]) -> None:
    subs = [Subscriber(**{**_fields(s), "email": f"s{i}@example.org"}) for i, s in enumerate(subs)]
    both(subs, sample)


@PROPS
@given(profiles(), st.sampled_from(WORDS))
def test_adding_an_exclude_never_adds_a_match(sample: list[Paper], profile: Subscriber, word: str) -> None:
    before = set(fast_ids(profile, sample))
    after = set(fast_ids(Subscriber(**{**_fields(profile), "exclude": (*profile.exclude, word)}), sample))
    assert after <= before


@PROPS
@given(profiles(need_keyword=True), st.sampled_from(WORDS))
def test_adding_a_keyword_never_removes_a_match(sample: list[Paper], profile: Subscriber, word: str) -> None:
    before = set(fast_ids(profile, sample))
    after = set(fast_ids(Subscriber(**{**_fields(profile), "keywords": (*profile.keywords, word)}), sample))
    assert before <= after


@PROPS
@given(st.lists(profiles(), min_size=2, max_size=5), st.randoms(use_true_random=False))
def test_result_does_not_depend_on_subscriber_order(sample: list[Paper], subs: list[Subscriber], rnd) -> None:  # type: ignore[no-untyped-def]
    subs = [Subscriber(**{**_fields(s), "email": f"s{i}@example.org"}) for i, s in enumerate(subs)]
    shuffled = subs[:]
    rnd.shuffle(shuffled)
    assert Matcher(subs).match(sample) == Matcher(shuffled).match(sample)


def _fields(s: Subscriber) -> dict[str, object]:
    return {f: getattr(s, f) for f in Subscriber.__dataclass_fields__}


def test_alike_profiles_get_equal_but_separate_lists_and_gc_is_restored() -> None:
    import gc

    subs = [sub(email="a@example.org", all=True), sub(email="b@example.org", all=True, max_papers=3)]
    assert gc.isenabled()
    result = Matcher(subs).match(ABCD)
    assert gc.isenabled()
    assert result["a@example.org"] == result["b@example.org"]
    assert result["a@example.org"] is not result["b@example.org"]


def test_terms_that_normalise_alike_each_get_hits_with_their_own_text() -> None:
    # "LLMs", "LLM" and "llms" hit the same places; each reader's hits carry what they wrote,
    # whichever of them the run made first and whichever paper is asked about first.
    papers = [
        paper("x", "LLMs for code", abstract="We tune LLMs. An LLM helps."),
        paper("y", "Retrieval", abstract="No model here."),
        paper("z", "Small LLM", abstract="One LLM only."),
    ]
    subs = [
        sub(email="plural@example.org", keywords=["LLMs"]),
        sub(email="single@example.org", keywords=["LLM", "retrieval"]),
        sub(email="lower@example.org", keywords=["llms"], max_papers=1),
        sub(email="query@example.org", query="title:LLM OR retrieval"),
    ]
    fast = Matcher(subs).top(papers)
    naive = naive_match(subs, papers)
    for s in subs:
        found, total = fast[s.email]
        assert found == naive[s.email][: s.max_papers] and total == len(naive[s.email])
    hits = {s.email: {h.term for m in fast[s.email][0] for h in m.hits} for s in subs}
    assert hits["plural@example.org"] == {"LLMs"}
    assert hits["single@example.org"] == {"LLM", "retrieval"}
    assert hits["lower@example.org"] == {"llms"}
    assert hits["query@example.org"] == {"LLM", "retrieval"}
    x_plural = next(m for m in fast["plural@example.org"][0] if m.paper.id == "x")
    x_single = next(m for m in fast["single@example.org"][0] if m.paper.id == "x")
    assert [(h.field, h.start, h.end) for h in x_plural.hits] == [
        (h.field, h.start, h.end) for h in x_single.hits
    ]
    assert len(x_plural.hits) == 3  # the title's LLMs, the abstract's LLMs and LLM


def test_what_compiling_and_a_run_make_is_handed_to_the_oldest_generation() -> None:
    # Acyclic and long-lived: a young pass of the collector over them would find no garbage.
    import gc

    matcher = Matcher([sub(email="a@example.org", keywords=["graph"]), sub(email="b@example.org", all=True)])
    found = matcher.top(ABCD)["b@example.org"][0]
    assert found and gc.is_tracked(found[0])
    assert not any(o is found[0] for o in gc.get_objects(generation=0))
    assert any(o is found[0] for o in gc.get_objects(generation=2))
    assert gc.get_freeze_count() == 0  # nothing was left frozen


def test_garbage_made_before_a_run_is_still_collected() -> None:
    import gc
    import weakref

    class Node:
        pass

    cycle = Node()
    cycle.self = cycle  # type: ignore[attr-defined]
    gone = weakref.ref(cycle)
    del cycle
    Matcher([sub(email="a@example.org", all=True)]).top(ABCD)
    gc.collect()
    assert gone() is None


def test_a_program_s_own_frozen_objects_stay_frozen() -> None:
    import gc

    gc.freeze()
    try:
        frozen = gc.get_freeze_count()
        Matcher([sub(email="a@example.org", all=True)]).top(ABCD)
        # Unfreezing would empty the permanent generation. It may lose a few objects all the same:
        # a frozen object that dies meanwhile (an evicted cache entry, say) leaves it.
        after = gc.get_freeze_count()
        assert frozen > 1000 and frozen - 100 <= after <= frozen
        assert gc.isenabled()
    finally:
        gc.unfreeze()


# -- top: the best k without the rest --------------------------------------------------------------


def check_top(
    subs: Sequence[Subscriber], papers: Sequence[Paper], extra: dict[str, int] | None = None
) -> None:
    """`top` is `match` cut to max_papers + extra, in the same order, with the uncapped count."""
    full = Matcher(subs).match(papers)
    capped = Matcher(subs).top(papers, extra=extra)
    assert capped.keys() == full.keys()
    for s in subs:
        k = s.max_papers + (extra or {}).get(s.email, 0)
        found, total = capped[s.email]
        assert found == full[s.email][:k], s.email
        assert total == len(full[s.email]), s.email


@PROPS
@given(
    st.lists(st.tuples(profiles(), st.integers(1, 12), st.integers(0, 3)), min_size=1, max_size=4),
)
def test_top_is_match_cut_to_length(sample: list[Paper], drawn: list[tuple[Subscriber, int, int]]) -> None:
    subs = [replace(s, email=f"s{i}@example.org", max_papers=k) for i, (s, k, _) in enumerate(drawn)]
    check_top(subs, sample, extra={s.email: e for s, (_, _, e) in zip(subs, drawn, strict=True)})


def test_top_on_the_real_listings(day: list[Paper]) -> None:
    """Golden: the example profiles and some broad ones (many equal scores, so the tie-break
    decides the cut) on the whole day, at several caps."""
    example = Path(__file__).parent.parent / "subscribers.example.toml"
    subs = list(load_subscribers(example, source_names={"hf", "arxiv"}))
    subs += [
        sub(email="all@example.org", all=True),
        sub(email="cs@example.org", categories=["cs"], keywords=["model", "learning", "LLM"]),
        sub(email="q@example.org", query="(model OR title:learning) NOT cat:math", authors=["Y. LeCun"]),
    ]
    for cap in (1, 3, 20):
        capped = [replace(s, max_papers=cap) for s in subs]
        check_top(capped, day)
    check_top(subs, day, extra={"all@example.org": 7, "cs@example.org": 2000})
    # the cut falls inside a run of equal scores: best rank first
    [first] = Matcher([sub(all=True, max_papers=1)]).top(day)["r@example.org"][0]
    assert first.paper == min(day, key=tie_break_key)


def test_top_counts_what_it_leaves_out() -> None:
    s = sub(all=True, max_papers=2)
    found, total = Matcher([s]).top(ABCD)[s.email]
    assert total == 4 and found == Matcher([s]).match(ABCD)[s.email][:2]
    assert Matcher([s]).top(ABCD, extra={s.email: 1})[s.email][0] == Matcher([s]).match(ABCD)[s.email][:3]
    assert Matcher([s]).top([]) == {s.email: ([], 0)}


def test_score_planes_agree_with_term_score() -> None:
    """Each term's score is summed bit-sliced, in half points: check every combination of fields."""
    fields = ("title", "abstract", "keywords")
    for n in range(1, 8):
        hit = [bool(n >> i & 1) for i in range(3)]
        planes = field_planes(*(int(h) for h in hit))  # one paper, bit 0
        halves = sum(plane << b for b, plane in enumerate(planes))
        assert halves == 2 * term_score([f for f, h in zip(fields, hit, strict=True) if h])


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(0, 40), min_size=0, max_size=70), st.integers(0, 80), st.randoms())
def test_radix_select_is_a_sort(scores: list[int], k: int, rnd: random.Random) -> None:
    matched = sum(1 << p for p in range(len(scores)) if rnd.random() < 0.8)
    acc = [sum(1 << p for p, s in enumerate(scores) if s >> b & 1) for b in range(6)]
    got = [(s, p) for s, part in best(acc, matched, k) for p in set_bits(part)]
    want = sorted(((s, p) for p, s in enumerate(scores) if matched >> p & 1), key=lambda t: (-t[0], t[1]))
    assert got == want[:k]
    everything = best(acc, matched, None)
    assert [(s, p) for s, part in everything for p in set_bits(part)] == want
