"""Trending digests (issue 19): `trending = "week" | "month"`, Hugging Face's most upvoted papers of
a period, ranked by upvotes as they stand when the digest goes out.

The end-to-end tests run `digest run` day after day against a real local HTTP server that answers
Hugging Face's API as it does: `?date=` with a day's list, `?week=YYYY-Www` and `?month=YYYY-MM`
with a period's. The lists are the real captured Daily Papers page (tests/data, 30 papers): the
week lists are its two halves, the month list all of it, and each answer's upvotes are those of the
moment (the server changes them between days, as votes come in).
"""

from __future__ import annotations

import copy
import dataclasses
import datetime as dt
import email
import email.policy
import json
import re
from pathlib import Path

import pytest
from cli_runner import digest, offline_config
from pytest_httpserver import HTTPServer
from webhook_servers import WebhookServer
from werkzeug import Request, Response

from digest.commands import preview
from digest.config import load_settings
from digest.core.errors import ConfigError
from digest.core.models import Paper, Subscriber
from digest.profiles import load_subscribers
from digest.sources.hf import parse_hf_page
from digest.store import Store
from digest.trending import due, period, periods_due, trending_digest

DATA = Path(__file__).parent / "data"
CAPTURE = json.loads((DATA / "hf_daily_papers_2026-06-12.json").read_text())
MONDAY = dt.date(2026, 6, 8)  # ISO week 24; the week before is 2026-W23
LISTS = {"2026-W23": CAPTURE[:15], "2026-W24": CAPTURE[15:], "2026-06": CAPTURE}


def with_upvotes(items: list[dict], votes: dict[str, int]) -> list[dict]:
    out = copy.deepcopy(items)
    for item in out:
        item["paper"]["upvotes"] = votes.get(item["paper"]["id"], item["paper"]["upvotes"])
    return out


# -- the rules, pure ------------------------------------------------------------------------------
def test_the_period_a_date_closes() -> None:
    week = Subscriber("a@example.org", trending="week")
    assert period(week, MONDAY) == ("week", "2026-W23")  # Monday: the week just ended
    assert period(week, MONDAY + dt.timedelta(days=3)) == ("week", "2026-W23")  # still last Monday's
    friday = Subscriber("a@example.org", trending="week", weekday="friday")
    # another weekday: the last whole week too, so that no day of a week falls between two digests
    assert period(friday, dt.date(2026, 6, 12)) == ("week", "2026-W23")
    assert period(friday, dt.date(2026, 6, 19)) == ("week", "2026-W24")
    assert period(friday, dt.date(2026, 6, 11)) == ("week", "2026-W22")  # Thursday: last Friday's
    month = Subscriber("a@example.org", trending="month")
    assert period(month, dt.date(2026, 7, 1)) == ("month", "2026-06")
    assert period(month, dt.date(2026, 7, 31)) == ("month", "2026-06")
    assert period(month, dt.date(2026, 1, 1)) == ("month", "2025-12")
    assert period(week, dt.date(2027, 1, 4)) == ("week", "2026-W53")  # an ISO year of 53 weeks


def test_a_period_is_due_until_planned_and_never_again() -> None:
    sub = Subscriber("a@example.org", trending="week")
    assert due(sub, MONDAY, None)
    assert not due(sub, MONDAY, "2026-W23")
    assert due(sub, MONDAY + dt.timedelta(days=2), "2026-W22")  # Monday's was missed: due late
    # due days no run saw: their periods go out together, late, up to CATCH_UP_DAYS back
    assert periods_due(sub, dt.date(2026, 6, 23), "2026-W23") == [("week", "2026-W24"), ("week", "2026-W25")]
    assert periods_due(sub, dt.date(2026, 7, 20), "2026-W23") == [  # older ones are given up
        ("week", "2026-W27"),
        ("week", "2026-W28"),
        ("week", "2026-W29"),
    ]
    assert periods_due(sub, MONDAY, None) == [("week", "2026-W23")]  # a new reader: the latest only
    assert due(sub, MONDAY + dt.timedelta(days=7), "2026-W23")
    assert not due(sub, MONDAY, "2026-W24")  # an earlier date run again after a later one
    assert due(sub, dt.date(2026, 3, 9), "2026-W09")  # "W10" sorts after "W09"


def papers() -> list[Paper]:
    return parse_hf_page(json.dumps(CAPTURE).encode(), "hf")


def test_the_digest_is_the_most_upvoted_papers_that_pass_the_profile() -> None:
    listed = papers()
    everything = trending_digest(Subscriber("a@example.org", trending="week", max_papers=5), MONDAY, listed)
    votes = sorted((p.upvotes or 0 for p in listed), reverse=True)
    assert [m.paper.upvotes for m in everything.matches] == votes[:5]
    assert everything.total_matched == len(listed)

    # a profile's rules still choose; upvotes rank what they chose
    sub = Subscriber("b@example.org", trending="week", keywords=("agent",), max_papers=50)
    chosen = trending_digest(sub, MONDAY, listed)
    assert chosen.matches and all(
        "agent" in (m.paper.title + m.paper.abstract).lower() for m in chosen.matches
    )
    assert len(chosen.matches) < len(listed)
    ups = [m.paper.upvotes or 0 for m in chosen.matches]
    assert ups == sorted(ups, reverse=True)
    assert all(m.hits for m in chosen.matches)  # the "why" line has something to say

    # a paper emailed before is never in it again, nor counted
    top = everything.matches[0].paper.id
    again = trending_digest(Subscriber("a@example.org", trending="week", max_papers=5), MONDAY, listed, {top})
    assert top not in {m.paper.id for m in again.matches}
    assert again.total_matched == len(listed) - 1

    # min_upvotes and exclude count with no other rules
    some = trending_digest(Subscriber("c@example.org", trending="week", min_upvotes=10), MONDAY, listed)
    assert {m.paper.id for m in some.matches} == {p.id for p in listed if (p.upvotes or 0) >= 10}


def test_two_sources_listing_a_paper_count_it_once_with_its_higher_votes() -> None:
    listed = papers()
    first = listed[0]
    louder = dataclasses.replace(first, upvotes=10_000, sources=("hf2",))
    got = trending_digest(
        Subscriber("a@example.org", trending="week", max_papers=3), MONDAY, [*listed, louder]
    )
    assert got.matches[0].paper.id == first.id and got.matches[0].paper.upvotes == 10_000
    assert got.total_matched == len(listed)


def test_trending_needs_a_hugging_face_source(tmp_path: Path) -> None:
    path = tmp_path / "subscribers.toml"
    path.write_text('[[subscribers]]\nemail = "a@example.org"\ntrending = "week"\n')
    with pytest.raises(ConfigError) as err:
        load_subscribers(path, source_names=["arxiv"], hf_sources=[])
    assert "trending" in str(err.value) and "hf_daily" in str(err.value)
    assert load_subscribers(path, source_names=["hf"], hf_sources=["hf"])[0].trending == "week"
    # its own `sources` must keep a Hugging Face one too
    path.write_text('[[subscribers]]\nemail = "a@example.org"\ntrending = "week"\nsources = ["arxiv"]\n')
    with pytest.raises(ConfigError) as err:
        load_subscribers(path, source_names=["arxiv", "hf"], hf_sources=["hf"])
    assert "subscribers.toml:4: subscriber a@example.org: sources: names no Hugging Face source" in str(
        err.value
    )
    path.write_text('[[subscribers]]\nemail = "a@example.org"\ntrending = "day"\n')
    with pytest.raises(ConfigError) as err:
        load_subscribers(path, source_names=["hf"], hf_sources=["hf"])
    assert "trending" in str(err.value) and "'week'" in str(err.value)


# -- end to end: `digest run` day after day against a local Hugging Face ---------------------------
PROFILES = """
[[subscribers]]
email = "top@example.org"
trending = "week"
max_papers = 5
feed = true

[[subscribers]]
email = "agent@example.org"
trending = "week"
weekday = "wednesday"
keywords = ["agent"]

[[subscribers]]
email = "month@example.org"
trending = "month"
max_papers = 3

[[subscribers]]
email = "daily@example.org"
all = true
"""


class FakeHub:
    """Hugging Face's API as the local server answers it: a day's list, a period's list, each
    with the upvotes of the moment (`votes`), or a failure for a period (`broken`)."""

    def __init__(self) -> None:
        self.votes: dict[str, int] = {}
        self.broken: set[str] = set()
        self.asked: list[str] = []

    def __call__(self, request: Request) -> Response:
        args = request.args
        key = args.get("week") or args.get("month")
        page = int(args.get("p", "0"))
        if key is None:
            # a day lists the second half only: week 23's papers are in no day's snapshot
            items = CAPTURE[15:] if args.get("date") == "2026-06-08" else []
        elif key in self.broken:
            self.asked.append(key)
            return Response("upstream down", status=503)
        else:
            self.asked.append(key)
            items = LISTS.get(key, [])
        body = json.dumps(with_upvotes(items, self.votes) if page == 0 else [])
        return Response(body, content_type="application/json")


def setup(tmp: Path, server: HTTPServer, hub: FakeHub) -> Path:
    server.expect_request("/api/daily_papers").respond_with_handler(hub)
    sources = f"""
[[sources]]
name = "hf"
kind = "hf_daily"
url = "{server.url_for("/api/daily_papers")}"
days = 1
"""
    config = offline_config(tmp, sources)
    (tmp / "subscribers.toml").write_text(PROFILES)
    return config


def run(tmp: Path, config: Path, day: dt.date, ok: tuple[int, ...] = (0, 5)) -> str:
    done = digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp)
    assert done.returncode in ok, done.stdout + done.stderr
    return done.stdout + done.stderr


def mails(tmp: Path) -> dict[str, list[tuple[str, list[str]]]]:
    """Per reader, each email's file day and the arXiv ids it links, in the email's order."""
    out: dict[str, list[tuple[str, list[str]]]] = {}
    for path in sorted((tmp / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
        reader = message["To"].addresses[0].addr_spec
        found = list(dict.fromkeys(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text)))
        out.setdefault(reader, []).append((path.name[:10], found))
    return out


def messages(tmp: Path) -> list[email.message.EmailMessage]:
    return [
        email.message_from_bytes(path.read_bytes(), policy=email.policy.default)  # type: ignore[misc]
        for path in sorted((tmp / "outbox").glob("*.eml"))
    ]


def ranked(items: list[dict], votes: dict[str, int], n: int) -> list[str]:
    """The ids of `items` most upvoted (as `votes` has them) first, ties by id."""
    counted = [(votes.get(i["paper"]["id"], i["paper"]["upvotes"]), i["paper"]["id"]) for i in items]
    return [pid for _, pid in sorted(counted, key=lambda c: (-c[0], c[1]))[:n]]


def test_a_fortnight_each_period_once_ranked_by_the_votes_when_sent(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    # the votes move: on Monday the least upvoted paper of week 23 has become the most upvoted
    low = min(CAPTURE[:15], key=lambda i: i["paper"]["upvotes"])["paper"]["id"]
    hub.votes = {low: 5_000}
    run(tmp_path, config, MONDAY)
    got = mails(tmp_path)
    assert got["top@example.org"] == [("2026-06-08", ranked(LISTS["2026-W23"], hub.votes, 5))]
    assert got["top@example.org"][0][1][0] == low  # as voted on the day it went out
    (sent,) = [m for m in messages(tmp_path) if m["To"].addresses[0].addr_spec == "top@example.org"]
    text = sent.get_body(preferencelist=("plain",)).get_content()
    assert "trending papers" in sent["Subject"] and "trending papers for you" in text
    assert "/archive/" not in text  # its "more" are the week's, on no day's archive page
    (feed,) = (tmp_path / "public" / "feeds").glob("*.xml")  # the private feed shows the digest too
    assert set(got["top@example.org"][0][1]) <= set(
        re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", feed.read_text())
    )
    # a new reader gets the period just closed at once: for the Wednesday reader, week 22 (the
    # week before last Wednesday's), which has no list here: it stays due
    assert "agent@example.org" not in got
    assert "month@example.org" not in got  # May's list is empty here: nothing to send, still due
    run(tmp_path, config, MONDAY)  # the same date again: nothing twice
    assert len(mails(tmp_path)["top@example.org"]) == 1
    # `digest preview` shows the period's digest from the list the run fetched
    (shown,) = preview(
        load_settings(config), "top@example.org", subscribers_path=tmp_path / "subscribers.toml", date=MONDAY
    )
    assert [m.paper.id for m in shown.digest.matches] == got["top@example.org"][0][1]
    assert shown.new == 15 and shown.digest.date == MONDAY
    shown_cli = digest(
        "preview", "top@example.org", "--config", str(config), "--date", "2026-06-08", cwd=tmp_path
    )
    assert shown_cli.returncode == 0 and got["top@example.org"][0][1][0] in shown_cli.stdout

    for n in range(1, 8):  # Tuesday to next Monday
        run(tmp_path, config, MONDAY + dt.timedelta(days=n))
    got = mails(tmp_path)
    top = got["top@example.org"]
    assert [day for day, _ in top] == ["2026-06-08", "2026-06-15"]
    assert top[1][1] == ranked(LISTS["2026-W24"], hub.votes, 5)
    assert not set(top[0][1]) & set(top[1][1])
    agent = got["agent@example.org"]
    # Wednesday's weekly: on 2026-06-10 week 23 (the last whole week); week 22's empty list was
    # asked on each run while it was due (Monday's twice), then week 23 took its place
    assert [day for day, _ in agent] == ["2026-06-10"]
    assert hub.asked.count("2026-W22") == 3  # Monday twice (the date run again), Tuesday
    for _, ids in agent:
        assert ids  # only papers that say "agent"
    everything = {p.id: p for p in papers()}
    assert all(
        "agent" in (everything[i].title + everything[i].abstract).lower() for _, ids in agent for i in ids
    )
    seen = [i for _, ids in agent for i in ids]
    assert len(seen) == len(set(seen))
    # each week list asked once per due day, not every day
    assert hub.asked.count("2026-W24") == 1  # top's Monday
    assert len(got["daily@example.org"]) == 1  # daily readers as before: the day's new papers


def test_a_period_whose_list_failed_goes_out_late_and_once(tmp_path: Path, httpserver: HTTPServer) -> None:
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    hub.broken = {"2026-W23"}
    out = run(tmp_path, config, MONDAY, ok=(4,))  # a source failed: exit 4
    assert "trending 2026-W23" in out
    assert "top@example.org" not in mails(tmp_path)
    assert len(mails(tmp_path)["daily@example.org"]) == 1  # the others' emails went out
    hub.broken = set()
    tuesday = MONDAY + dt.timedelta(days=1)
    hub.votes = {CAPTURE[3]["paper"]["id"]: 9_999}  # votes of Tuesday
    run(tmp_path, config, tuesday)
    top = mails(tmp_path)["top@example.org"]
    assert top == [("2026-06-09", ranked(LISTS["2026-W23"], hub.votes, 5))]
    assert top[0][1][0] == CAPTURE[3]["paper"]["id"]
    run(tmp_path, config, tuesday + dt.timedelta(days=1))
    run(tmp_path, config, tuesday)
    assert len(mails(tmp_path)["top@example.org"]) == 1


def test_a_recorded_digest_unsent_goes_out_late_from_the_stored_list(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    """Monday's digest is recorded but the SMTP server is down: Tuesday sends Monday's digest,
    rebuilt from the list stored with the state, even though no day's listing holds its papers."""
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    text = config.read_text()
    config.write_text(
        text.replace('transport = "outbox"', 'transport = "smtp"\nretry_backoff = 0.01')
        + '\n[smtp]\nhost = "127.0.0.1"\nport = 9\nsecurity = "none"\n'
    )
    run(tmp_path, config, MONDAY, ok=(1, 2, 3, 4, 6, 7))
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        row = store.delivery(MONDAY, "top@example.org")
        assert row is not None and row.status == "pending"
        monday_ids = list(row.papers)
        assert len(monday_ids) == 5
        assert not set(monday_ids) & {p.id for p in store.snapshot(MONDAY) or []}  # no day listed them
        assert set(store.papers(monday_ids)) == set(monday_ids)  # the stored list has them
    config.write_text(text)
    hub.broken = {"2026-W23"}  # the list cannot be fetched again: the stored one is used
    run(tmp_path, config, MONDAY + dt.timedelta(days=1))
    top = mails(tmp_path)["top@example.org"]
    assert top == [("2026-06-08", monday_ids)]


def test_a_month_once_on_the_first(tmp_path: Path, httpserver: HTTPServer) -> None:
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    first = dt.date(2026, 7, 1)
    run(tmp_path, config, first)
    run(tmp_path, config, first + dt.timedelta(days=1))
    month = mails(tmp_path)["month@example.org"]
    assert month == [("2026-07-01", ranked(CAPTURE, {}, 3))]
    assert hub.asked.count("2026-06") == 1


def test_a_trending_channel_posts_each_week_once(tmp_path: Path, httpserver: HTTPServer) -> None:
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    config.write_text(
        config.read_text()
        + '\n[[channels]]\nname = "team"\n[channels.profile]\ntrending = "week"\nmax_papers = 3\n'
    )
    with WebhookServer() as hook:
        env = {"DIGEST_CHANNEL_URLS__TEAM": f"json://{hook.address}/hook"}
        for n in range(8):  # Monday to next Monday
            day = MONDAY + dt.timedelta(days=n)
            done = digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp_path, env=env)
            assert done.returncode in (0, 5), done.stdout + done.stderr
        posts = hook.messages()
    assert len(posts) == 2  # week 23 on the first Monday, week 24 on the next
    linked = [re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text) for _, text in posts]
    assert [list(dict.fromkeys(ids)) for ids in linked] == [
        ranked(LISTS["2026-W23"], {}, 3),
        ranked(LISTS["2026-W24"], {}, 3),
    ]


ONE = '[[subscribers]]\nemail = "top@example.org"\ntrending = "week"\nmax_papers = 50\n'


def test_weeks_no_run_saw_go_out_together_in_the_next_digest(tmp_path: Path, httpserver: HTTPServer) -> None:
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    (tmp_path / "subscribers.toml").write_text(ONE)
    LISTS["2026-W25"] = CAPTURE[10:20]  # the week after: overlapping week 24 (a paper trends twice)
    try:
        run(tmp_path, config, MONDAY)  # week 23
        run(tmp_path, config, dt.date(2026, 6, 23))  # no run on Monday 06-15 nor 06-22
    finally:
        del LISTS["2026-W25"]
    top = mails(tmp_path)["top@example.org"]
    assert [day for day, _ in top] == ["2026-06-08", "2026-06-23"]
    missed = {i["paper"]["id"] for i in CAPTURE[10:]} - {i["paper"]["id"] for i in CAPTURE[:15]}
    assert set(top[1][1]) == missed  # weeks 24 and 25, each paper once, none of week 23's again
    assert {"2026-W24", "2026-W25"} <= set(hub.asked)


def test_an_empty_list_leaves_the_period_due(tmp_path: Path, httpserver: HTTPServer) -> None:
    """Hugging Face answers [] for a week it has not made the list of yet: asked again next run."""
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    (tmp_path / "subscribers.toml").write_text(ONE)
    saved = LISTS["2026-W23"]
    LISTS["2026-W23"] = []
    try:
        run(tmp_path, config, MONDAY)
    finally:
        LISTS["2026-W23"] = saved
    assert "top@example.org" not in mails(tmp_path)
    run(tmp_path, config, MONDAY + dt.timedelta(days=1))
    assert [day for day, _ in mails(tmp_path)["top@example.org"]] == ["2026-06-09"]


def test_a_reader_turned_trending_after_the_date_s_digest_went_out_gets_the_period_next(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    hub = FakeHub()
    config = setup(tmp_path, httpserver, hub)
    (tmp_path / "subscribers.toml").write_text('[[subscribers]]\nemail = "top@example.org"\nall = true\n')
    run(tmp_path, config, MONDAY)  # the daily digest of Monday, sent
    (tmp_path / "subscribers.toml").write_text(ONE)
    run(tmp_path, config, MONDAY)  # the same date again, now trending: one digest a date
    run(tmp_path, config, MONDAY + dt.timedelta(days=1))
    days = [day for day, _ in mails(tmp_path)["top@example.org"]]
    assert days == ["2026-06-08", "2026-06-09"]  # week 23 the day after
