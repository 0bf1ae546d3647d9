"""No lost day: announcement days no run fetched are fetched late, through the arXiv API (or an
earlier `date=` of Hugging Face), and reach the readers in the next digest, once.

A real local HTTP server serves arXiv listings and arXiv API responses made from the real items of
a captured listing (tests/arxiv_days.py; provenance in tests/data/PROVENANCE.md); `digest run`
runs in-process; the mail goes to the outbox.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import time

from arxiv_days import api_page, dc, ids, mailed, new_items, rss_day, sent, write_config
from cli_runner import digest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.config import FetchConfig, SourceConfig
from digest.sources import Fetcher, fetch_listing
from digest.sources.arxiv_api import business_days_between, search_query, submission_window
from digest.store import Store

MON, TUE, WED, THU = (dt.date(2024, 11, d) for d in (25, 26, 27, 28))
NOW = dt.datetime(2024, 11, 28, 12, 0, tzinfo=dt.UTC)
ITEMS = new_items()
ON = {MON: ITEMS[0:6], TUE: ITEMS[6:13], WED: ITEMS[13:16], THU: ITEMS[16:20]}
# The windows arXiv's API is asked for (UTC; 14:00 US Eastern is 19:00 UTC in November):
# Tuesday's listing is Friday 14:00 to Monday 14:00, Wednesday's Monday 14:00 to Tuesday 14:00.
WINDOWS = {"202411221900 TO 202411251859": TUE, "202411251900 TO 202411261859": WED}


class ArxivApi:
    """The local arXiv API: each day's items in pages of `page` (the client follows the counts)."""

    def __init__(self, days: dict[dt.date, list[bytes]], page: int = 5) -> None:
        self.days, self.page = days, page
        self.asked: list[tuple[str, int, float]] = []  # (window, start, when)

    def __call__(self, request: Request) -> Response:
        query = request.args["search_query"]
        assert query.startswith("(cat:cs.CL) AND submittedDate:[")
        assert request.args["sortBy"] == "submittedDate" and request.args["sortOrder"] == "ascending"
        found = re.search(r"submittedDate:\[(\d{12} TO \d{12})\]", query)
        assert found, query
        start = int(request.args["start"])
        self.asked.append((found.group(1), start, time.monotonic()))
        items = self.days.get(WINDOWS.get(found.group(1), MON - dt.timedelta(days=99)), [])
        body = api_page(items[start : start + self.page], total=len(items), start=start)
        return Response(body, content_type="application/atom+xml")


def serve(server: HTTPServer, day: dt.date, api: ArxivApi) -> None:
    server.clear()
    server.expect_request("/rss/cs.CL").respond_with_data(
        rss_day(day, ON[day]), content_type="application/rss+xml"
    )
    server.expect_request("/api/query").respond_with_handler(api)


def run(config: object, day: dt.date, tmp: object) -> object:
    return digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp)


def test_run_monday_skip_two_days_run_thursday_every_missed_paper_arrives_once(tmp_path, httpserver) -> None:
    config = write_config(tmp_path, httpserver)
    # Wednesday's API window also lists one of Thursday's papers: it still reaches a reader once.
    api = ArxivApi({TUE: ON[TUE], WED: [*ON[WED], ON[THU][0]]})
    serve(httpserver, MON, api)
    monday = run(config, MON, tmp_path)
    assert monday.returncode == 0, monday.stdout + monday.stderr
    assert api.asked == []  # the first run has nothing to catch up on

    serve(httpserver, THU, api)
    thursday = run(config, THU, tmp_path)
    assert thursday.returncode == 0, thursday.stdout + thursday.stderr
    assert "backfilled missed days 2024-11-26, 2024-11-27 (11 papers)" in thursday.stdout

    # Tuesday's 7 papers in two pages, Wednesday's 4 in one: the windows of those days only
    assert [(w, s) for w, s, _ in api.asked] == [
        ("202411221900 TO 202411251859", 0),
        ("202411221900 TO 202411251859", 5),
        ("202411251900 TO 202411261859", 0),
    ]
    everything = {i for day in (MON, TUE, WED, THU) for i in ids(ON[day])}
    assert sent(tmp_path) == {
        "grace@example.org": everything,
        "ada@example.org": set().union(*(dc(ON[day]) for day in (MON, TUE, WED, THU))),
    }
    got = mailed(tmp_path)
    for reader, expected in sent(tmp_path).items():
        assert len(got[reader]) == 2  # Monday's digest and Thursday's
        for paper_id in expected:  # in exactly one of the reader's emails
            assert sum(paper_id in one for one in got[reader]) == 1, (reader, paper_id)
    assert got["grace@example.org"][1] == {*ids(ON[TUE]), *ids(ON[WED]), *ids(ON[THU])}

    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        stored = {p.id: p for p in store.snapshot(THU) or []}
        assert {stored[i].announced for i in ids(ON[TUE])} == {TUE}  # each says the day it was announced
        assert {stored[i].announced for i in ids(ON[WED])} == {WED}
        assert stored[ids(ON[THU])[1]].announced is None  # today's own
        assert store.last_days() == {"arxiv": THU}

    again = run(config, THU, tmp_path)  # the day is stored: nothing fetched again, nothing sent twice
    assert again.returncode == 0 and len(api.asked) == 3
    assert sum(len(v) for v in mailed(tmp_path).values()) == 4

    # each late paper says the day it was announced, in both parts of the email; today's do not
    thursday_mail = [p for p in sorted((tmp_path / "outbox").glob("*.eml")) if "grace" in p.read_text()][-1]
    message = email.message_from_bytes(thursday_mail.read_bytes(), policy=email.policy.default)
    text = message.get_body(preferencelist=("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(preferencelist=("html",)).get_content()  # type: ignore[union-attr]
    for part in (text, html):
        assert part.count("announced 2024-11-26") == len(ON[TUE]), part[:2000]
        assert part.count("announced 2024-11-27") == len(ON[WED]) + 1  # and Thursday's paper the API listed
        assert "announced 2024-11-28" not in part


def test_the_backfill_cap_is_reported_and_only_recent_days_are_fetched(tmp_path, httpserver) -> None:
    config = write_config(tmp_path, httpserver, fetch="retries = 0\nbackfill_days = 1")
    api = ArxivApi({TUE: ON[TUE], WED: ON[WED]})
    serve(httpserver, MON, api)
    assert run(config, MON, tmp_path).returncode == 0
    serve(httpserver, THU, api)
    thursday = run(config, THU, tmp_path)
    assert thursday.returncode == 0, thursday.stdout + thursday.stderr
    assert "missed days 2024-11-26 are older than [fetch] backfill_days" in thursday.stdout
    assert {w for w, _, _ in api.asked} == {"202411251900 TO 202411261859"}  # Wednesday only
    assert ids(ON[WED])[0] in sent(tmp_path)["grace@example.org"]
    assert not set(ids(ON[TUE])) & sent(tmp_path)["grace@example.org"]


def test_api_pages_are_paced_and_a_429_is_retried_after_its_retry_after(httpserver) -> None:
    calls: list[float] = []

    def api(request: Request) -> Response:
        calls.append(time.monotonic())
        if len(calls) == 1:
            return Response("slow down", status=429, headers={"Retry-After": "0"})
        start = int(request.args["start"])
        return Response(
            api_page(ON[TUE][start : start + 4], total=7, start=start), content_type="application/atom+xml"
        )

    httpserver.expect_request("/rss/cs.CL").respond_with_data(rss_day(WED, ON[WED]))
    httpserver.expect_request("/api/query").respond_with_handler(api)
    source = SourceConfig(
        name="arxiv",
        kind="arxiv_rss",
        url=httpserver.url_for("/rss/cs.CL"),
        api_url=httpserver.url_for("/api/query"),
    )
    with Fetcher(FetchConfig(retries=1, backoff=0, api_delay=0.2)) as fetcher:
        listing, results = fetch_listing(source, fetcher, WED, now=NOW, last_day=MON, backfill_days=7)
    assert listing.backfilled == (TUE,) and listing.days == (TUE, WED) and listing.announced == WED
    assert {p.id for p in listing.papers} == {*ids(ON[TUE]), *ids(ON[WED])}
    assert len(calls) == 3 and len(results) == 3  # the 429, then two pages of 4 and 3
    assert calls[2] - calls[1] >= 0.2  # arXiv's politeness delay between pages


def test_submission_windows_and_missed_days() -> None:
    assert business_days_between(MON - dt.timedelta(days=3), THU) == [MON, TUE, WED]  # from Friday
    start, end = submission_window(MON)  # Monday lists Thursday 14:00 to Friday 14:00 (EST)
    assert (start, end) == (
        dt.datetime(2024, 11, 21, 19, tzinfo=dt.UTC),
        dt.datetime(2024, 11, 22, 19, tzinfo=dt.UTC),
    )
    summer = submission_window(dt.date(2024, 7, 10))  # EDT: 14:00 is 18:00 UTC
    assert summer[1] == dt.datetime(2024, 7, 9, 18, tzinfo=dt.UTC)
    query = search_query(["cs.CL", "math"], TUE)
    assert query == "(cat:cs.CL OR cat:math.*) AND submittedDate:[202411221900 TO 202411251859]"


def test_hugging_face_backfills_missed_days_by_date(httpserver) -> None:
    asked: list[str] = []

    def daily(request: Request) -> Response:
        asked.append(request.args["date"])
        return Response("[]", content_type="application/json")

    httpserver.expect_request("/api/daily_papers").respond_with_handler(daily)
    source = SourceConfig(name="hf", kind="hf_daily", url=httpserver.url_for("/api/daily_papers"))
    with Fetcher(FetchConfig(retries=0)) as fetcher:
        listing, _ = fetch_listing(
            source, fetcher, THU, now=NOW, last_day=MON - dt.timedelta(days=1), backfill_days=2
        )
    # days = 2 covers Thursday and Wednesday; Tuesday is backfilled; Monday is past the cap of 2
    assert asked == ["2024-11-28", "2024-11-27", "2024-11-26"]
    assert listing.backfilled == (TUE,) and listing.cut == (MON,)
    assert listing.days == (TUE, WED, THU)


def test_a_failed_backfill_keeps_the_day_s_own_listing_and_is_tried_again(tmp_path, httpserver) -> None:
    """The arXiv API is down when Thursday's run finds Tuesday and Wednesday missed: Thursday's
    own papers still go out (exit 4, the failure named), and Friday's run fetches the two days."""
    config = write_config(tmp_path, httpserver)
    api = ArxivApi({TUE: ON[TUE], WED: ON[WED]})
    serve(httpserver, MON, api)
    assert run(config, MON, tmp_path).returncode == 0
    httpserver.clear()
    httpserver.expect_request("/rss/cs.CL").respond_with_data(
        rss_day(THU, ON[THU]), content_type="application/rss+xml"
    )
    httpserver.expect_request("/api/query").respond_with_data("down", status=503)
    thursday = run(config, THU, tmp_path)
    assert thursday.returncode == 4, thursday.stdout + thursday.stderr
    assert "could not be fetched ([[sources]] api_url)" in thursday.stdout
    assert "the next run tries them again" in thursday.stdout
    assert set(ids(ON[THU])) <= sent(tmp_path)["grace@example.org"]  # the day's own papers went out
    fri = THU + dt.timedelta(days=1)
    on_fri = ITEMS[20:24]
    httpserver.clear()
    httpserver.expect_request("/rss/cs.CL").respond_with_data(
        rss_day(fri, on_fri), content_type="application/rss+xml"
    )
    httpserver.expect_request("/api/query").respond_with_handler(api)
    friday = run(config, fri, tmp_path)
    assert friday.returncode == 0, friday.stdout + friday.stderr
    everything = {i for day in (MON, TUE, WED, THU) for i in ids(ON[day])} | set(ids(on_fri))
    assert sent(tmp_path)["grace@example.org"] == everything
    got = mailed(tmp_path)["grace@example.org"]
    assert sum(len(one) for one in got) == len(everything)  # each paper in exactly one email
