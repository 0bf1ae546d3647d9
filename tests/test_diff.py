"""The diff's promises, as properties over generated listings and histories."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from digest.core.models import Paper
from digest.diff import diff
from digest.store import Seen, Store

D0 = dt.date(2026, 11, 1)
NOW = dt.datetime(2026, 11, 21, tzinfo=dt.UTC)

ids = st.sampled_from([f"2411.{n:05d}" for n in range(12)])
papers = st.builds(
    lambda pid, version, replacement, source: Paper(
        id=pid, title=pid, version=version, is_replacement=replacement, sources=(source,)
    ),
    ids,
    st.integers(1, 3),
    st.booleans(),
    st.sampled_from(["hf", "arxiv"]),
)
listings = st.lists(papers, max_size=10)
# a history: for each of a few consecutive days, that day's listing
histories = st.lists(listings, min_size=1, max_size=5)


def test_new_updates_and_old() -> None:
    seen = {"old": Seen(D0, 1), "bumped": Seen(D0, 1)}
    listing = [
        Paper(id="fresh", title="t", version=1),
        Paper(id="old", title="t", version=1),
        Paper(id="bumped", title="t", version=2),
        Paper(id="replaced-unseen", title="t", version=3, is_replacement=True),
        Paper(id="fresh", title="t", version=1, sources=("hf",)),  # same paper from a second source
    ]
    result = diff(listing, seen)
    assert [p.id for p in result.new] == ["fresh"]
    assert result.new[0].sources == ("hf",)  # merged
    assert [p.id for p in result.updates] == ["bumped", "replaced-unseen"]


def run_history(path: Path, history: list[list[Paper]], rerun: bool = False) -> list[set[str]]:
    """Store each day's listing like a run would and return each day's new ids."""
    out = []
    with Store.open(path) as store:
        for offset, listing in enumerate(history):
            day = D0 + dt.timedelta(days=offset)
            seen = store.seen_before(day, [p.id for p in listing])
            result = diff(listing, seen)
            store.record_snapshot(day, list({p.id: p for p in listing}.values()), [], sources=["s"], now=NOW)
            if rerun:
                again = diff(listing, store.seen_before(day, [p.id for p in listing]))
                assert again == result, "re-running a date must give the same new set"
            out.append({p.id for p in result.new})
    return out


@settings(max_examples=40, deadline=None)
@given(histories)
def test_idempotent_and_never_new_twice(tmp_path_factory: object, history: list[list[Paper]]) -> None:
    path = tmp_path_factory.mktemp("state") / "d.sqlite3"  # type: ignore[attr-defined]
    news = run_history(path, history, rerun=True)
    everything: set[str] = set()
    for day_new, listing in zip(news, history, strict=True):
        assert not (day_new & everything), "a paper seen on an earlier day was reported new"
        everything |= {p.id for p in listing}


@settings(max_examples=40, deadline=None)
@given(
    listings, st.dictionaries(ids, st.builds(Seen, st.just(D0), st.integers(1, 3) | st.none())), st.randoms()
)
def test_order_of_sources_does_not_matter(listing: list[Paper], seen: dict[str, Seen], rnd: object) -> None:
    shuffled = list(listing)
    rnd.shuffle(shuffled)  # type: ignore[attr-defined]
    a, b = diff(listing, seen), diff(shuffled, seen)
    assert {p.id for p in a.new} == {p.id for p in b.new}
    assert {p.id for p in a.updates} == {p.id for p in b.updates}


@settings(max_examples=40, deadline=None)
@given(listings, st.dictionaries(ids, st.builds(Seen, st.just(D0), st.integers(1, 3) | st.none())))
def test_seen_papers_are_never_new(listing: list[Paper], seen: dict[str, Seen]) -> None:
    result = diff(listing, seen)
    assert not {p.id for p in result.new} & set(seen)
    assert not {p.id for p in result.new} & {p.id for p in result.updates}
