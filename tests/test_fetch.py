"""The fetcher and `fetch_listing` against a real local HTTP server serving the captured listings.

No real sleeping: the fetcher's `sleep` is a list's `append`, so the tests assert on the delays.
"""

from __future__ import annotations

import copy
import datetime as dt
import email.utils
import gzip
import json
import re
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest import USER_AGENT
from digest.config import FetchConfig, SourceConfig
from digest.core.errors import FetchError, ParseError
from digest.sources import CachedResponse, Fetcher, fetch_listing

DATA = Path(__file__).parent / "data"  # the same paths as conftest.py
ARXIV_TRIMMED = DATA / "arxiv_rss_2024-11-28_trimmed.xml"
HF_DAY = DATA / "hf_daily_papers_2026-06-12.json"
RSS = "application/rss+xml"
NOW = dt.datetime(2024, 11, 28, 12, 0, tzinfo=dt.UTC)
RUN_DATE = dt.date(2026, 6, 12)


@pytest.fixture
def sleeps() -> list[float]:
    return []


@pytest.fixture
def config() -> FetchConfig:
    return FetchConfig(timeout=2, retries=2, backoff=0.5, max_bytes=5_000_000)


@pytest.fixture
def fetcher(config: FetchConfig, sleeps: list[float]) -> Iterator[Fetcher]:
    with Fetcher(config, sleep=sleeps.append) as f:
        yield f


def _requests(server: HTTPServer) -> list[Request]:
    return [request for request, _ in server.log]


# -- plain GET, conditional GET --------------------------------------------------------------------


def test_get_sends_user_agent_and_keeps_validators(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    body = ARXIV_TRIMMED.read_bytes()
    httpserver.expect_request("/rss/cs").respond_with_data(
        body, content_type=RSS, headers={"ETag": '"v1"', "Last-Modified": "Thu, 28 Nov 2024 05:00:00 GMT"}
    )
    result = fetcher.get(httpserver.url_for("/rss/cs"))
    assert result.body == body and result.status == 200 and not result.not_modified
    assert result.etag == '"v1"' and result.last_modified == "Thu, 28 Nov 2024 05:00:00 GMT"
    assert result.url == httpserver.url_for("/rss/cs")
    (request,) = _requests(httpserver)
    assert request.headers["User-Agent"] == USER_AGENT
    assert "If-None-Match" not in request.headers


def test_params_are_part_of_the_cache_key(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/api", query_string={"a": "1", "date": "2026-06-12"}).respond_with_data("[]")
    result = fetcher.get(httpserver.url_for("/api?a=1"), {"date": "2026-06-12"})
    assert result.url == httpserver.url_for("/api?a=1&date=2026-06-12")


def test_conditional_get_reuses_the_cached_body(
    httpserver: HTTPServer, config: FetchConfig, sleeps: list[float]
) -> None:
    url = httpserver.url_for("/rss/cs")
    cached_body = ARXIV_TRIMMED.read_bytes()
    last_modified = "Thu, 28 Nov 2024 05:00:00 GMT"

    def handler(request: Request) -> Response:
        if request.headers.get("If-None-Match") == '"v1"':
            return Response(status=304, headers={"ETag": '"v1"'})
        return Response(cached_body, content_type=RSS, headers={"ETag": '"v1"'})

    httpserver.expect_request("/rss/cs").respond_with_handler(handler)
    cache = {url: CachedResponse(url=url, etag='"v1"', last_modified=last_modified, body=cached_body)}
    with Fetcher(config, cache, sleep=sleeps.append) as fetcher:
        result = fetcher.get(url)
    assert result.not_modified and result.status == 304
    assert result.body == cached_body
    assert (result.etag, result.last_modified) == ('"v1"', last_modified)
    ((request, response),) = httpserver.log
    assert request.headers["If-None-Match"] == '"v1"'
    assert request.headers["If-Modified-Since"] == last_modified
    assert response.status_code == 304 and response.get_data() == b""  # nothing downloaded again
    assert sleeps == []


def test_changed_resource_replaces_the_cached_body(httpserver: HTTPServer, config: FetchConfig) -> None:
    url = httpserver.url_for("/feed")
    httpserver.expect_request("/feed").respond_with_data(b"new", headers={"ETag": '"v2"'})
    cache = {url: CachedResponse(url=url, etag='"v1"', last_modified=None, body=b"old")}
    with Fetcher(config, cache) as fetcher:
        result = fetcher.get(url)
    assert (result.body, result.status, result.etag, result.not_modified) == (b"new", 200, '"v2"', False)
    assert "If-Modified-Since" not in _requests(httpserver)[0].headers


def test_unasked_304_is_an_error(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/feed").respond_with_data(b"", status=304)
    with pytest.raises(FetchError, match="304"):
        fetcher.get(httpserver.url_for("/feed"))


# -- retries ---------------------------------------------------------------------------------------


def test_503_then_200_succeeds_after_a_retry(
    httpserver: HTTPServer, fetcher: Fetcher, sleeps: list[float]
) -> None:
    httpserver.expect_ordered_request("/feed").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/feed").respond_with_data(b"ok")
    result = fetcher.get(httpserver.url_for("/feed"))
    assert result.body == b"ok"
    assert len(sleeps) == 1 and 0.5 <= sleeps[0] <= 0.75  # backoff plus up to half of it as jitter
    httpserver.check_assertions()


def test_retries_give_up_with_one_clear_line(
    httpserver: HTTPServer, fetcher: Fetcher, sleeps: list[float]
) -> None:
    httpserver.expect_request("/feed").respond_with_data("down", status=502)
    url = httpserver.url_for("/feed")
    with pytest.raises(FetchError) as info:
        fetcher.get(url)
    message = str(info.value)
    assert message.startswith(f"fetching {url}: HTTP 502") and "gave up after 3 attempts" in message
    assert "try again later" in message and "\n" not in message
    assert info.value.url == url
    assert len(_requests(httpserver)) == 3
    assert len(sleeps) == 2 and 0.5 <= sleeps[0] <= 0.75 and 1.0 <= sleeps[1] <= 1.5  # doubling


def test_429_retry_after_seconds_is_honoured(
    httpserver: HTTPServer, fetcher: Fetcher, sleeps: list[float]
) -> None:
    httpserver.expect_ordered_request("/api").respond_with_data(
        "slow down", status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request("/api").respond_with_data("[]")
    assert fetcher.get(httpserver.url_for("/api")).body == b"[]"
    assert sleeps == [7.0]


def test_retry_after_http_date_and_cap(httpserver: HTTPServer, fetcher: Fetcher, sleeps: list[float]) -> None:
    later = email.utils.format_datetime(dt.datetime.now(dt.UTC) + dt.timedelta(seconds=30), usegmt=True)
    httpserver.expect_ordered_request("/api").respond_with_data(
        "", status=503, headers={"Retry-After": later}
    )
    httpserver.expect_ordered_request("/api").respond_with_data(
        "", status=429, headers={"Retry-After": "86400"}
    )
    httpserver.expect_ordered_request("/api").respond_with_data("[]")
    assert fetcher.get(httpserver.url_for("/api")).body == b"[]"
    assert 28 <= sleeps[0] <= 30 and sleeps[1] == 300.0  # a day is capped at 5 minutes


def test_4xx_fails_at_once(httpserver: HTTPServer, fetcher: Fetcher, sleeps: list[float]) -> None:
    httpserver.expect_request("/missing").respond_with_data("Not here", status=404)
    url = httpserver.url_for("/missing")
    with pytest.raises(FetchError) as info:
        fetcher.get(url)
    assert (
        str(info.value)
        == f"fetching {url}: HTTP 404 NOT FOUND (Not here); no such page; check [[sources]] url"
    )
    assert len(_requests(httpserver)) == 1 and sleeps == []


def test_connection_refused_is_retried_then_named(config: FetchConfig, sleeps: list[float]) -> None:
    server = HTTPServer(port=0)
    server.start()
    url = server.url_for("/feed")
    server.stop()  # nothing listens on that port any more
    with Fetcher(config, sleep=sleeps.append) as fetcher, pytest.raises(FetchError) as info:
        fetcher.get(url)
    assert (
        url in str(info.value)
        and "network error" in str(info.value)
        and "check the network" in str(info.value)
    )
    assert len(sleeps) == 2


def test_timeout(httpserver: HTTPServer, sleeps: list[float]) -> None:
    def slow(request: Request) -> Response:
        time.sleep(0.6)
        return Response("late")

    httpserver.expect_request("/slow").respond_with_handler(slow)
    config = FetchConfig(timeout=0.2, retries=0)
    with (
        Fetcher(config, sleep=sleeps.append) as fetcher,
        pytest.raises(FetchError, match=r"timed out after 0.2 s"),
    ):
        fetcher.get(httpserver.url_for("/slow"))


def test_redirects_are_followed(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/old").respond_with_data("", status=301, headers={"Location": "/new"})
    httpserver.expect_request("/new").respond_with_data(b"here")
    result = fetcher.get(httpserver.url_for("/old"))
    assert result.body == b"here" and result.url == httpserver.url_for("/old")


def test_bad_url(fetcher: Fetcher) -> None:
    with pytest.raises(FetchError, match="check \\[\\[sources\\]\\] url"):
        fetcher.get("ftp://example.org/feed")


# -- size cap --------------------------------------------------------------------------------------


def test_declared_size_over_the_cap(httpserver: HTTPServer, sleeps: list[float]) -> None:
    httpserver.expect_request("/big").respond_with_data(b"x" * 2000)
    with (
        Fetcher(FetchConfig(max_bytes=1000), sleep=sleeps.append) as fetcher,
        pytest.raises(FetchError) as info,
    ):
        fetcher.get(httpserver.url_for("/big"))
    assert "response is 2,000 bytes, over the [fetch] max_bytes cap of 1,000" in str(info.value)
    assert sleeps == []


def test_endless_body_is_cut_while_streaming(httpserver: HTTPServer) -> None:
    chunk = b"<item>" + b"x" * 65536
    sent = 0

    def endless() -> Iterator[bytes]:
        nonlocal sent
        while sent < 200_000_000:  # stops the server thread in the worst case
            sent += len(chunk)
            yield chunk

    httpserver.expect_request("/huge").respond_with_response(Response(endless(), content_type=RSS))
    with Fetcher(FetchConfig(max_bytes=1_000_000)) as fetcher, pytest.raises(FetchError) as info:
        fetcher.get(httpserver.url_for("/huge"))
    assert "over the [fetch] max_bytes cap of 1,000,000" in str(info.value)
    assert sent < 20_000_000


def test_compressed_body_is_capped_after_decompression(httpserver: HTTPServer) -> None:
    bomb = gzip.compress(b"\0" * 3_000_000)
    assert len(bomb) < 10_000
    httpserver.expect_request("/bomb").respond_with_data(bomb, headers={"Content-Encoding": "gzip"})
    with Fetcher(FetchConfig(max_bytes=1_000_000)) as fetcher, pytest.raises(FetchError, match="max_bytes"):
        fetcher.get(httpserver.url_for("/bomb"))


def test_the_streamed_cap_names_the_url_the_size_and_the_key(httpserver: HTTPServer) -> None:
    def endless() -> Iterator[bytes]:
        for _ in range(100):
            yield b"x" * 65536

    httpserver.expect_request("/huge").respond_with_response(Response(endless(), content_type=RSS))
    url = httpserver.url_for("/huge")
    with Fetcher(FetchConfig(max_bytes=1_000_000)) as fetcher, pytest.raises(FetchError) as info:
        fetcher.get(url)
    assert str(info.value) == (
        f"fetching {url}: response is more than 1,000,000 bytes, over the [fetch] max_bytes cap of "
        "1,000,000 bytes; raise max_bytes if that is expected"
    )


def test_corrupt_gzip_is_a_fetch_error(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/gz").respond_with_data(
        b"not gzip at all", headers={"Content-Encoding": "gzip"}
    )
    with pytest.raises(FetchError, match="unreadable response"):
        fetcher.get(httpserver.url_for("/gz"))


# -- fetch_listing: arXiv --------------------------------------------------------------------------


def _arxiv(httpserver: HTTPServer, path: str = "/rss/cs.XX") -> SourceConfig:
    return SourceConfig(name="arxiv-cs", kind="arxiv_rss", url=httpserver.url_for(path))


def test_arxiv_listing(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/rss/cs").respond_with_data(ARXIV_TRIMMED.read_bytes(), content_type=RSS)
    listing, results = fetch_listing(_arxiv(httpserver, "/rss/cs"), fetcher, dt.date(2024, 11, 28), now=NOW)
    assert listing.source == "arxiv-cs" and listing.fetched_at == NOW
    assert len(listing.papers) == 23 and all(p.sources == ("arxiv-cs",) for p in listing.papers)
    assert sum(p.is_replacement for p in listing.papers) == 6
    assert [r.url for r in results] == [httpserver.url_for("/rss/cs")]


def test_arxiv_empty_day(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/rss/test").respond_with_data((DATA / "arxiv_rss_empty.xml").read_bytes())
    listing, results = fetch_listing(_arxiv(httpserver, "/rss/test"), fetcher, dt.date(2024, 11, 30), now=NOW)
    assert listing.papers == () and len(results) == 1


@pytest.mark.parametrize("status", [400, 200])
def test_arxiv_unknown_category(
    httpserver: HTTPServer, fetcher: Fetcher, sleeps: list[float], status: int
) -> None:
    body = (DATA / "arxiv_rss_error_bad_category.xml").read_bytes()
    httpserver.expect_request("/rss/cs.XX").respond_with_data(body, status=status, content_type=RSS)
    source = _arxiv(httpserver)
    with pytest.raises(FetchError) as info:
        fetch_listing(source, fetcher, RUN_DATE, now=NOW)
    message = str(info.value)
    assert (
        f"arXiv says the feed URL is wrong: unknown category 'cs.XX' in {source.url}; check [[sources]] url"
        in message
    )
    assert "Valid archive names are" in message and "\n" not in message
    assert len(_requests(httpserver)) == 1 and sleeps == []  # a 400 is not retried


def test_plain_400_without_arxiv_body(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/rss/cs.XX").respond_with_data("Bad Request", status=400)
    with pytest.raises(FetchError, match="HTTP 400 BAD REQUEST"):
        fetch_listing(_arxiv(httpserver), fetcher, RUN_DATE, now=NOW)


HTML_ERROR = b"""<!DOCTYPE html>
<html><head><title>Just a moment...</title></head><body><p>Checking your browser</p></body></html>"""


@pytest.mark.parametrize("kind", ["arxiv_rss", "feed"])
@pytest.mark.parametrize(
    "body", [HTML_ERROR, ARXIV_TRIMMED.read_bytes()[:15000]], ids=["html-error-page", "truncated-xml"]
)
def test_broken_feed_body_is_a_parse_error(
    httpserver: HTTPServer, fetcher: Fetcher, kind: str, body: bytes
) -> None:
    httpserver.expect_request("/feed").respond_with_data(body, content_type="text/html")
    source = SourceConfig(name="mine", kind=kind, url=httpserver.url_for("/feed"))  # type: ignore[arg-type]
    with pytest.raises(ParseError) as info:
        fetch_listing(source, fetcher, RUN_DATE, now=NOW)
    assert info.value.source == "mine" and "\n" not in str(info.value)


def test_generic_feed_listing(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/api/query").respond_with_data((DATA / "arxiv_api_atom.xml").read_bytes())
    source = SourceConfig(name="api", kind="feed", url=httpserver.url_for("/api/query"))
    listing, _ = fetch_listing(source, fetcher, RUN_DATE, now=NOW)
    assert [p.id for p in listing.papers][:1] == ["2606.13677"] and len(listing.papers) == 5


# -- fetch_listing: Hugging Face -------------------------------------------------------------------


def _hf(httpserver: HTTPServer, days: int = 1) -> SourceConfig:
    return SourceConfig(name="hf", kind="hf_daily", url=httpserver.url_for("/api/daily_papers"), days=days)


def _hf_items(count: int, prefix: str = "2607") -> list[dict[str, Any]]:
    template = json.loads(HF_DAY.read_bytes())[0]
    items = []
    for i in range(count):
        item = copy.deepcopy(template)
        item["paper"]["id"] = f"{prefix}.{i:05d}"
        items.append(item)
    return items


def _query(day: str, page: int) -> dict[str, str]:
    return {"date": day, "limit": "100", "p": str(page)}


def test_hf_pages_until_a_short_page(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    real = json.loads(HF_DAY.read_bytes())
    httpserver.expect_request("/api/daily_papers", query_string=_query("2026-06-12", 0)).respond_with_json(
        _hf_items(100)
    )
    httpserver.expect_request("/api/daily_papers", query_string=_query("2026-06-12", 1)).respond_with_json(
        real
    )
    listing, results = fetch_listing(_hf(httpserver), fetcher, RUN_DATE, now=NOW)
    assert len(listing.papers) == 130
    assert [r.url.split("?")[1] for r in results] == [
        "date=2026-06-12&limit=100&p=0",
        "date=2026-06-12&limit=100&p=1",
    ]
    httpserver.check_assertions()


def test_hf_fetches_the_day_before_and_merges(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    today = json.loads(HF_DAY.read_bytes())
    yesterday = copy.deepcopy(today[:3]) + _hf_items(2, prefix="2608")
    yesterday[0]["paper"]["upvotes"] = 999  # the same paper, seen with more votes the day before
    httpserver.expect_request("/api/daily_papers", query_string=_query("2026-06-12", 0)).respond_with_json(
        today
    )
    httpserver.expect_request("/api/daily_papers", query_string=_query("2026-06-11", 0)).respond_with_json(
        yesterday
    )
    listing, results = fetch_listing(_hf(httpserver, days=2), fetcher, RUN_DATE, now=NOW)
    assert [r.url.split("?")[1] for r in results] == [
        "date=2026-06-12&limit=100&p=0",
        "date=2026-06-11&limit=100&p=0",
    ]
    ids = [p.id for p in listing.papers]
    assert len(ids) == len(set(ids)) == 32
    first = next(p for p in listing.papers if p.id == today[0]["paper"]["id"])
    assert first.upvotes == 999


def test_hf_server_ignoring_the_page_stops(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_json(_hf_items(100))
    listing, results = fetch_listing(_hf(httpserver), fetcher, RUN_DATE, now=NOW)
    assert len(results) == 2 and len(listing.papers) == 100


def test_hf_empty_day_and_400(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/api/daily_papers", query_string=_query("2026-06-12", 0)).respond_with_json([])
    httpserver.expect_request("/api/daily_papers", query_string=_query("2026-06-11", 0)).respond_with_json(
        {"error": "Invalid date"}, status=400
    )
    source = _hf(httpserver, days=2)
    with pytest.raises(FetchError) as info:
        fetch_listing(source, fetcher, RUN_DATE, now=NOW)
    assert "HTTP 400" in str(info.value) and "Invalid date" in str(info.value)
    assert "date=2026-06-11" in info.value.url


def test_hf_non_json_is_a_parse_error(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_data(HTML_ERROR, content_type="text/html")
    with pytest.raises(ParseError, match="expected JSON") as info:
        fetch_listing(_hf(httpserver), fetcher, RUN_DATE, now=NOW)
    assert info.value.source == "hf"


# -- display names ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("display_name", "label"), [(None, "Hugging Face"), ("  HF   papers ", "HF papers")])
def test_hf_papers_carry_the_display_name_whatever_the_source_is_called(
    httpserver: HTTPServer, fetcher: Fetcher, display_name: str | None, label: str
) -> None:
    httpserver.expect_request("/api/daily_papers").respond_with_json(json.loads(HF_DAY.read_bytes()))
    url = httpserver.url_for("/api/daily_papers")
    source = SourceConfig(name="hugging", kind="hf_daily", url=url, days=1, display_name=display_name)
    listing, _ = fetch_listing(source, fetcher, RUN_DATE, now=NOW)
    assert len(listing.papers) == 30
    assert {(p.sources, p.source_labels) for p in listing.papers} == {(("hugging",), (label,))}


def test_a_feed_is_labelled_with_its_own_title_else_its_name(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    untitled = b"""<?xml version="1.0"?><rss version="2.0"><channel>
<item><title>T</title><link>https://example.org/1</link></item></channel></rss>"""
    httpserver.expect_request("/api/query").respond_with_data((DATA / "arxiv_api_atom.xml").read_bytes())
    httpserver.expect_request("/untitled").respond_with_data(untitled, content_type=RSS)
    titled = SourceConfig(name="api", kind="feed", url=httpserver.url_for("/api/query"))
    listing, _ = fetch_listing(titled, fetcher, RUN_DATE, now=NOW)
    assert {p.source_labels for p in listing.papers} == {
        ("arXiv Query: search_query=all:transformer AND cat:cs.LG&id_list=&start=0&max_results=5",)
    }
    listing, _ = fetch_listing(
        SourceConfig(name="lab", kind="feed", url=httpserver.url_for("/untitled")), fetcher, RUN_DATE, now=NOW
    )
    assert [p.source_labels for p in listing.papers] == [("lab",)]
    listing, _ = fetch_listing(
        titled.model_copy(update={"display_name": "Robots"}), fetcher, RUN_DATE, now=NOW
    )
    assert {p.source_labels for p in listing.papers} == {("Robots",)}


def test_an_arxiv_listing_fetched_as_a_plain_feed_keeps_revisions_out_of_the_new(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    body = (DATA / "arxiv_rss_2024-11-28_all.xml").read_bytes()
    httpserver.expect_request("/rss/all").respond_with_data(body, content_type=RSS)
    url = httpserver.url_for("/rss/all")
    date = dt.date(2024, 11, 28)
    as_feed, _ = fetch_listing(SourceConfig(name="a", kind="feed", url=url), fetcher, date, now=NOW)
    as_arxiv, _ = fetch_listing(SourceConfig(name="a", kind="arxiv_rss", url=url), fetcher, date, now=NOW)
    split = [(p.id, p.is_replacement) for p in as_feed.papers]
    assert split == [(p.id, p.is_replacement) for p in as_arxiv.papers]
    assert sum(r for _, r in split) == 569 and len(split) == 1504
    assert {p.source_labels for p in as_arxiv.papers} == {("arXiv",)}


def test_a_body_that_is_not_the_listing_names_its_url(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    # parsers see only bytes: the URL is added where the response is known, for feeds and for
    # Hugging Face's pages alike, so the operator knows which request to look at
    httpserver.expect_request("/rss/cs.CL").respond_with_data(HTML_ERROR, content_type="text/html")
    arxiv = SourceConfig(name="arxiv", kind="arxiv_rss", url=httpserver.url_for("/rss/cs.CL"))
    with pytest.raises(ParseError) as info:
        fetch_listing(arxiv, fetcher, RUN_DATE, now=NOW)
    assert info.value.url == httpserver.url_for("/rss/cs.CL")
    assert str(info.value).startswith(f"source 'arxiv' ({httpserver.url_for('/rss/cs.CL')}): ")
    httpserver.expect_request("/api/daily_papers").respond_with_data(HTML_ERROR, content_type="text/html")
    with pytest.raises(ParseError, match="expected JSON") as hf:
        fetch_listing(_hf(httpserver), fetcher, RUN_DATE, now=NOW)
    assert hf.value.url is not None and hf.value.url.startswith(httpserver.url_for("/api/daily_papers"))


# -- feeds as other projects captured them (tests/data/feeds/, see its PROVENANCE.md) ---------------

FEEDS = DATA / "feeds"


@pytest.mark.parametrize("include", [False, True], ids=["replacements-out", "replacements-in"])
def test_a_real_arxiv_category_listing_as_a_plain_feed_keeps_its_announce_types(
    httpserver: HTTPServer, fetcher: Fetcher, include: bool
) -> None:
    # arXiv's hep-ex listing as captured (legacy RDF: the flag is in the title) and the current
    # format's capture: kind = "feed" reads the same announcements as kind = "arxiv_rss".
    for path, capture in (("/rss/hep-ex", "arxiv_rss_legacy_rdf_2018.xml"), ("/rss/cs", ARXIV_TRIMMED.name)):
        httpserver.expect_request(path).respond_with_data((DATA / capture).read_bytes(), content_type=RSS)
        url = httpserver.url_for(path)
        day = dt.date(2024, 11, 28)
        kinds = {
            kind: fetch_listing(
                SourceConfig(name="a", kind=kind, url=url, include_replacements=include),  # type: ignore[arg-type]
                fetcher,
                day,
                now=NOW,
            )[0]
            for kind in ("feed", "arxiv_rss")
        }
        said = {k: [(p.id, p.announce_type, p.is_replacement) for p in v.papers] for k, v in kinds.items()}
        assert said["feed"] == said["arxiv_rss"]
        types = {t for _, t, _ in said["feed"]}
        assert {"new", "cross", "replace"} <= types
        assert all(r == (t in ("replace", "replace-cross") and not include) for _, t, r in said["feed"])


def test_a_json_feed_is_a_feed(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    body = (FEEDS / "rsparser-3960.json").read_bytes()
    doc = json.loads(body)
    httpserver.expect_request("/feed.json").respond_with_data(body, content_type="application/feed+json")
    source = SourceConfig(name="blog", kind="feed", url=httpserver.url_for("/feed.json"))
    listing, _ = fetch_listing(source, fetcher, RUN_DATE, now=NOW)
    assert [p.id for p in listing.papers] == [str(item["id"]) for item in doc["items"]]
    assert {p.source_labels for p in listing.papers} == {(doc["title"],)}
    assert listing.skipped == listing.duplicates == 0


def test_title_less_items_are_listed_and_what_is_left_out_is_counted(
    httpserver: HTTPServer, fetcher: Fetcher
) -> None:
    # Scripting News: 39 of 50 items have no title, two repeat a guid; the JSON Feed of authors has
    # four items with nothing to list them under.
    body = (FEEDS / "rsparser-scriptingNews.rss").read_bytes()
    guids = re.findall(rb"<guid>([^<]*)</guid>", body)
    assert len(guids) == body.count(b"<item>")
    httpserver.expect_request("/scripting").respond_with_data(body, content_type=RSS)
    httpserver.expect_request("/authors").respond_with_data(
        (FEEDS / "rsparser-authors.json").read_bytes(), content_type="application/json"
    )
    scripting, _ = fetch_listing(
        SourceConfig(name="s", kind="feed", url=httpserver.url_for("/scripting")), fetcher, RUN_DATE, now=NOW
    )
    repeats = len(guids) - len(set(guids))
    assert (len(scripting.papers), scripting.skipped, scripting.duplicates) == (len(set(guids)), 0, repeats)
    assert all(p.title for p in scripting.papers) and repeats > 0
    authors, _ = fetch_listing(
        SourceConfig(name="j", kind="feed", url=httpserver.url_for("/authors")), fetcher, RUN_DATE, now=NOW
    )
    assert (len(authors.papers), authors.skipped) == (0, 4)


def test_a_newline_before_the_xml_declaration_is_read(httpserver: HTTPServer, fetcher: Fetcher) -> None:
    body = (FEEDS / "feedjira-TechCrunch.xml").read_bytes()
    assert body.startswith(b"\n<?xml")  # as captured
    httpserver.expect_request("/tc").respond_with_data(body, content_type=RSS)
    source = SourceConfig(name="tc", kind="feed", url=httpserver.url_for("/tc"))
    listing, _ = fetch_listing(source, fetcher, RUN_DATE, now=NOW)
    assert len(listing.papers) == body.count(b"<item>") > 0
