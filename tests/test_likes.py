"""Papers like these (issue 17), through the product: `like` / `dislike` profiles, `mode`, the
"more / fewer like this" links and `digest feedback`, liked papers resolved from the state or the
arXiv API, and `digest check` naming what cannot be resolved.

Two announcement days are made from the real captured arXiv day (tests/arxiv_days.py): the even
items on Monday, the odd ones on Tuesday, served by a real local HTTP server. A reader who likes
ten of Monday's robotics papers must get mostly robotics on Tuesday (cs.RO is 3% of the day).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import email
import email.policy
import re
import urllib.parse
from pathlib import Path

from arxiv_days import new_items, papers, rss_day
from cli_runner import digest
from pytest_httpserver import HTTPServer

from digest.cadence import week_digest
from digest.core.models import Subscriber
from digest.digests import Tastes, digests_for
from digest.relevance.ranker import Taste
from digest.store import Store
from digest.store.retention import epoch_day

MONDAY, TUESDAY = dt.date(2024, 11, 25), dt.date(2024, 11, 26)
ITEMS = new_items("")
ON = {MONDAY: ITEMS[0::2], TUESDAY: ITEMS[1::2]}
MONDAY_PAPERS, TUESDAY_PAPERS = papers(ON[MONDAY]), papers(ON[TUESDAY])
CATEGORIES = {p.id: set(p.categories) for p in (*MONDAY_PAPERS, *TUESDAY_PAPERS)}
ROBOTS = [p.id for p in MONDAY_PAPERS if p.categories and p.categories[0] == "cs.RO"][:10]


API: dict[int, bytes] = {}  # what the local arXiv API answers, per server


def setup(tmp: Path, server: HTTPServer, profiles: str, api: bytes = b"", links: str = "examples") -> Path:
    API[id(server)] = api or empty_api()
    server.expect_request("/api/query").respond_with_data(
        API[id(server)], content_type="application/atom+xml"
    )
    config = tmp / "digest.toml"
    config.write_text(
        f"""
[state]
path = "state/digest.sqlite3"

[[sources]]
name = "arxiv"
kind = "arxiv_rss"
url = "{server.url_for("/rss/all")}"
api_url = "{server.url_for("/api/query")}"

[fetch]
retries = 0
backfill_days = 0
api_delay = 0.01

[relevance]
api_url = "{server.url_for("/api/query")}"
feedback_links = "{links}"

[output]
dir = "public"

[delivery]
transport = "outbox"

[smtp]
from = "Digest <digest@example.org>"
"""
    )
    (tmp / "subscribers.toml").write_text(profiles)
    return config


def empty_api() -> bytes:
    return (Path(__file__).parent / "data" / "arxiv_api_atom.xml").read_bytes().split(b"<entry>")[
        0
    ] + b"</feed>\n"


def run(tmp: Path, config: Path, server: HTTPServer, day: dt.date) -> str:
    server.clear_all_handlers()
    server.expect_request("/api/query").respond_with_data(
        API[id(server)], content_type="application/atom+xml"
    )
    server.expect_request("/rss/all").respond_with_data(
        rss_day(day, ON[day]), content_type="application/rss+xml"
    )
    done = digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def emails(tmp: Path) -> dict[str, list[str]]:
    """Per reader, the text part of each email in the outbox, oldest first."""
    out: dict[str, list[str]] = {}
    for path in sorted((tmp / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        out.setdefault(message["To"].addresses[0].addr_spec, []).append(text)
    return out


def ids_in(text: str) -> list[str]:
    return list(dict.fromkeys(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text)))


LIKE_ONLY = f"""
[[subscribers]]
email = "robots@example.org"
like = {[f"https://arxiv.org/abs/{i}" for i in ROBOTS]!r}
max_papers = 10
feed = true
""".replace("'", '"')


def test_a_like_only_reader_gets_papers_like_the_ones_they_like(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = setup(tmp_path, httpserver, LIKE_ONLY)
    run(tmp_path, config, httpserver, MONDAY)
    monday = emails(tmp_path).get("robots@example.org", [])  # nothing similar enough, or a little
    assert not {i for text in monday for i in ids_in(text)} & set(ROBOTS)  # never a liked paper itself
    run(tmp_path, config, httpserver, TUESDAY)
    tuesday = emails(tmp_path)["robots@example.org"][-1]
    shown = ids_in(tuesday)
    assert len(shown) == 10
    on_topic = sum(1 for i in shown if "cs.RO" in CATEGORIES[i])
    assert on_topic >= 5, f"only {on_topic} of 10 are robotics"  # by chance: 0.3 of 10
    titles = {p.id: p.title for p in MONDAY_PAPERS}
    assert tuesday.count("Similar to \u201c") == 10
    liked_titles = [titles[i] for i in ROBOTS]
    assert any(t[:30] in tuesday.replace("\n    ", " ") for t in liked_titles)
    scores = [float(s) for s in re.findall(r"\u201d \((\d\.\d\d)\)", tuesday)]
    assert scores == sorted(scores, reverse=True) and len(scores) == 10
    # the private feed says the same, with the feedback links
    (feed,) = (tmp_path / "public" / "feeds").glob("*.xml")
    xml = feed.read_text()
    assert xml.count("Similar to \u201c") >= 10 and xml.count("More like this") >= 10
    # the same day again: nothing twice
    run(tmp_path, config, httpserver, TUESDAY)
    assert len(emails(tmp_path)["robots@example.org"]) == len(monday) + 1
    # deterministic: `digest preview` ranks the same way, twice
    first = digest(
        "preview", "robots@example.org", "--config", str(config), "--date", "2024-11-26", cwd=tmp_path
    )
    second = digest(
        "preview", "robots@example.org", "--config", str(config), "--date", "2024-11-26", cwd=tmp_path
    )
    assert first.returncode == 0 and first.stdout == second.stdout
    assert re.findall(r"\d{4}\.\d{5}", first.stdout)[:10] == shown


def test_rules_gate_and_similarity_ranks_or_widens(tmp_path: Path, httpserver: HTTPServer) -> None:
    profiles = f"""
[[subscribers]]
email = "rank@example.org"
keywords = ["learning"]
like = {ROBOTS!r}
max_papers = 1000

[[subscribers]]
email = "widen@example.org"
categories = ["math.CO"]
like = {ROBOTS!r}
mode = "widen"
max_papers = 1000

[[subscribers]]
email = "plain@example.org"
keywords = ["learning"]
max_papers = 1000
""".replace("'", '"')
    config = setup(tmp_path, httpserver, profiles)
    run(tmp_path, config, httpserver, MONDAY)
    run(tmp_path, config, httpserver, TUESDAY)
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:  # whole digests, not what fit an email
        rows = store.deliveries(TUESDAY)
    rank, plain = list(rows["rank@example.org"].papers), list(rows["plain@example.org"].papers)
    assert set(rank) == set(plain)  # "rank": the rules choose the same papers...
    assert rank != plain  # ...in another order: the most like the robotics papers first
    assert sum("cs.RO" in CATEGORIES[i] for i in rank[:10]) > sum(
        "cs.RO" in CATEGORIES[i] for i in plain[:10]
    )
    widen = list(rows["widen@example.org"].papers)
    combinatorics = {p.id for p in TUESDAY_PAPERS if "math.CO" in p.categories}
    assert combinatorics <= set(widen)  # every paper the rules chose...
    assert any("cs.RO" in CATEGORIES[i] for i in set(widen) - combinatorics)  # ...and similar ones
    # feedback links (`feedback_links = "examples"`): for the readers with liked papers only
    got = emails(tmp_path)
    assert (
        "More like this" in got["rank@example.org"][1] and "More like this" not in got["plain@example.org"][1]
    )


def test_a_dislike_pushes_its_neighbours_down() -> None:
    liked = [p for p in MONDAY_PAPERS if p.id in ROBOTS]
    library = {p.id: p for p in MONDAY_PAPERS}
    sub = Subscriber("a@example.org", like=tuple(f"arxiv:{p.id}" for p in liked), max_papers=20)
    before = digests_for(
        [sub], TUESDAY_PAPERS, TUESDAY, {}, Tastes(library, {sub.email: Taste(tuple(ROBOTS))})
    )[0]
    top = before.matches[0].paper
    # dislike the Monday paper most like Tuesday's top one
    near = max(
        (p for p in MONDAY_PAPERS if p.id not in ROBOTS),
        key=lambda p: len(set(p.abstract.lower().split()) & set(top.abstract.lower().split())),
    )
    taste = Taste(tuple(ROBOTS), (near.id,))
    after = digests_for([sub], TUESDAY_PAPERS, TUESDAY, {}, Tastes(library, {sub.email: taste}))[0]
    rank_before = [m.paper.id for m in before.matches].index(top.id)
    ranked_after = [m.paper.id for m in after.matches]
    assert top.id not in ranked_after or ranked_after.index(top.id) > rank_before
    # and the papers a reader was sent are never offered again
    again = digests_for(
        [sub],
        TUESDAY_PAPERS,
        TUESDAY,
        {sub.email: {top.id}},
        Tastes(library, {sub.email: Taste(tuple(ROBOTS))}),
    )[0]
    assert top.id not in {m.paper.id for m in again.matches}


def test_feedback_by_mail_joins_the_readers_likes(tmp_path: Path, httpserver: HTTPServer) -> None:
    profiles = """
[[subscribers]]
email = "ada@example.org"
keywords = ["learning"]
max_papers = 30
"""
    config = setup(tmp_path, httpserver, profiles, links="all")  # links for a reader with no examples yet
    run(tmp_path, config, httpserver, MONDAY)
    monday = emails(tmp_path)["ada@example.org"][0]
    assert "Similar to" not in monday  # no examples yet: the keyword ranking
    links = re.findall(r"More like this:\s+(mailto:\S+)", monday)
    assert len(links) == len(ids_in(monday))
    robot = next(i for i in ids_in(monday) if "cs.RO" in CATEGORIES[i])
    link = links[ids_in(monday).index(robot)]
    assert link.startswith("mailto:digest@example.org?subject=more%20")
    subject = urllib.parse.unquote(link.split("subject=", 1)[1])
    # as the operator's mailbox receives it: a reply's subject, applied with `digest feedback`
    done = digest("feedback", f"Re: {subject}", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    assert f"ada@example.org: more like {robot}" in done.stdout
    tampered = subject[:-3] + ("AAA" if not subject.endswith("AAA") else "BBB")
    bad = digest("feedback", tampered, "--config", str(config), cwd=tmp_path)
    assert (
        bad.returncode != 0
        and "not a feedback token" in bad.stderr
        and len(bad.stderr.strip().splitlines()) == 1
    )
    check = digest("check", "--config", str(config), cwd=tmp_path)
    assert (
        check.returncode == 0
        and "ada@example.org: 0 liked, 0 disliked papers; feedback: 1 more, 0 fewer" in check.stdout
    )
    run(tmp_path, config, httpserver, TUESDAY)
    tuesday = emails(tmp_path)["ada@example.org"][1]
    assert "Similar to" in tuesday  # the paper taught the ranking
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert [f.paper_id for f in store.feedback(["ada@example.org"])["ada@example.org"]] == [robot]
    reset = digest("feedback", "--reset", "ada@example.org", "--config", str(config), cwd=tmp_path)
    assert reset.returncode == 0 and "1 papers" in reset.stdout
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert store.feedback(["ada@example.org"]) == {}


def test_liked_papers_resolve_from_the_api_once_and_unknown_ids_fail_check(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    api = (Path(__file__).parent / "data" / "arxiv_api_atom.xml").read_bytes()  # real: 2606.13677 and others
    profiles = """
[[subscribers]]
email = "ada@example.org"
like = ["https://huggingface.co/papers/2606.13677"]
"""
    config = setup(tmp_path, httpserver, profiles, api=api)
    done = digest("check", "--config", str(config), cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    asked = [r for r, _ in httpserver.log if r.path == "/api/query"]
    assert len(asked) == 1 and "2606.13677" in asked[0].args["id_list"]
    run(tmp_path, config, httpserver, MONDAY)  # the state exists now: resolved and kept
    digest("check", "--config", str(config), cwd=tmp_path)
    assert (
        len([r for r, _ in httpserver.log if r.path == "/api/query"]) == 2
    )  # check before the state, and the run
    digest("check", "--config", str(config), cwd=tmp_path)
    assert len([r for r, _ in httpserver.log if r.path == "/api/query"]) == 2  # kept: not asked again
    (tmp_path / "subscribers.toml").write_text(profiles.replace("2606.13677", "2411.99999"))
    bad = digest("check", "--config", str(config), cwd=tmp_path)
    assert bad.returncode != 0
    assert "subscriber ada@example.org" in bad.stderr and "arxiv:2411.99999" in bad.stderr


def test_check_says_when_the_arxiv_api_cannot_be_reached(tmp_path: Path, httpserver: HTTPServer) -> None:
    profiles = '[[subscribers]]\nemail = "ada@example.org"\nlike = ["2411.01234"]\n'
    config = setup(tmp_path, httpserver, profiles)
    config.write_text(
        config.read_text().replace(httpserver.url_for("/api/query"), "http://127.0.0.1:9/api/query", 1)
    )
    config.write_text(
        config.read_text().replace(
            f'[relevance]\napi_url = "{httpserver.url_for("/api/query")}"',
            '[relevance]\napi_url = "http://127.0.0.1:9/api"',
        )
    )
    bad = digest("check", "--config", str(config), cwd=tmp_path)
    assert bad.returncode != 0
    assert "arxiv:2411.01234 could not be resolved: the arXiv API could not be reached" in bad.stderr
    assert not (tmp_path / "state").exists()  # `digest check` created no state


def taste_of(sub: Subscriber, disliked: tuple[str, ...] = ()) -> Tastes:
    return Tastes({p.id: p for p in MONDAY_PAPERS}, {sub.email: Taste(tuple(ROBOTS), disliked)})


def test_widen_counts_each_paper_once_in_its_total() -> None:
    like = tuple(f"arxiv:{i}" for i in ROBOTS)
    capped = Subscriber("w@example.org", categories=("cs.RO",), mode="widen", max_papers=3, like=like)
    whole = dataclasses.replace(capped, max_papers=10_000)
    got = digests_for([capped], TUESDAY_PAPERS, TUESDAY, {}, taste_of(capped))[0]
    every = digests_for([whole], TUESDAY_PAPERS, TUESDAY, {}, taste_of(whole))[0]
    assert len(got.matches) == 3
    assert (
        got.total_matched == len(every.matches) == every.total_matched
    )  # the rules' and the similar ones, once
    # and a paper already sent is neither offered nor counted
    top = every.matches[0].paper.id
    again = digests_for([capped], TUESDAY_PAPERS, TUESDAY, {capped.email: {top}}, taste_of(capped))[0]
    assert top not in {m.paper.id for m in again.matches} and again.total_matched == every.total_matched - 1
    like_only = dataclasses.replace(capped, categories=(), mode=None)
    alone = digests_for([like_only], TUESDAY_PAPERS, TUESDAY, {like_only.email: {top}}, taste_of(like_only))[
        0
    ]
    full = digests_for(
        [dataclasses.replace(like_only, max_papers=10_000)],
        TUESDAY_PAPERS,
        TUESDAY,
        {like_only.email: {top}},
        taste_of(like_only),
    )[0]
    assert alone.total_matched == len(full.matches)


def test_a_liked_or_disliked_paper_of_the_day_is_never_sent_even_when_the_rules_match_it() -> None:
    robot = next(p for p in TUESDAY_PAPERS if p.categories and p.categories[0] == "cs.RO")
    for liked, disliked in (((robot.id,), ()), (tuple(ROBOTS), (robot.id,))):
        sub = Subscriber("r@example.org", categories=("cs.RO",), max_papers=50)
        tastes = Tastes({p.id: p for p in (*MONDAY_PAPERS, robot)}, {sub.email: Taste(liked, disliked)})
        got = digests_for([sub], TUESDAY_PAPERS, TUESDAY, {}, tastes)[0]
        assert got.matches and robot.id not in {m.paper.id for m in got.matches}


def test_a_weekly_like_reader_s_week_is_the_week_s_most_similar() -> None:
    sub = Subscriber(
        "wk@example.org", categories=("cs.RO", "cs.LG", "cs.CV"), max_papers=5, cadence="weekly",
        like=tuple(f"arxiv:{i}" for i in ROBOTS),
    )  # fmt: skip
    monday = digests_for([sub], [p for p in MONDAY_PAPERS if p.id not in ROBOTS], MONDAY, {}, taste_of(sub))[
        0
    ]
    tuesday = digests_for([sub], TUESDAY_PAPERS, TUESDAY, {}, taste_of(sub))[0]
    week = week_digest(tuesday, [monday])
    similar = {pid: score for day in (monday, tuesday) for pid, (_, score) in day.similar.items()}
    assert [similar[m.paper.id] for m in week.matches] == sorted(similar.values(), reverse=True)[:5]


def test_check_says_a_doi_off_arxiv_resolves_only_from_a_stored_listing(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = setup(
        tmp_path, httpserver, '[[subscribers]]\nemail = "ada@example.org"\nlike = ["10.1000/xyz123"]\n'
    )
    bad = digest("check", "--config", str(config), cwd=tmp_path)
    assert bad.returncode != 0
    assert "doi:10.1000/xyz123 could not be resolved: a DOI is found only in a stored listing" in bad.stderr
    assert not [r for r, _ in httpserver.log if r.path == "/api/query"]  # not asked: the API has no DOIs


def test_the_semantic_engine_embeds_each_paper_once_and_keeps_it(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = setup(tmp_path, httpserver, LIKE_ONLY)
    config.write_text(config.read_text().replace("[relevance]\n", '[relevance]\nengine = "semantic"\n'))
    run(tmp_path, config, httpserver, MONDAY)
    run(tmp_path, config, httpserver, TUESDAY)
    state = tmp_path / "state" / "digest.sqlite3"
    with Store.open(state) as store:
        rows = store.conn.execute(
            "SELECT paper_id, day FROM paper_vectors WHERE engine = 'wordllama'"
        ).fetchall()
    made = dict(rows)
    # Tuesday's papers, Monday's, and the liked ones (Monday's too): each embedded once, on its day
    assert {p.id for p in TUESDAY_PAPERS} | {p.id for p in MONDAY_PAPERS} <= set(made)
    assert len(rows) == len(made)
    monday_only = {p.id for p in MONDAY_PAPERS} - {p.id for p in TUESDAY_PAPERS}
    assert {made[i] for i in monday_only} == {epoch_day(MONDAY)}  # made on Monday, not again on Tuesday
    tuesday = emails(tmp_path)["robots@example.org"][-1]
    assert "Similar to \u201c" in tuesday
    run(tmp_path, config, httpserver, TUESDAY)  # the same date again: nothing new to embed
    with Store.open(state) as store:
        again = dict(store.conn.execute("SELECT paper_id, day FROM paper_vectors").fetchall())
    assert again == made
