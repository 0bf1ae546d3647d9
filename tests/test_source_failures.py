"""One bad source never stops the others, and a stale one is reported.

Two sources (Hugging Face, arXiv) on a real local HTTP server, `digest run` in-process, mail in the
outbox: when one fails (HTTP 500 after retries, a body that is not its listing) the readers get
what the other had, the run exits 4 naming it, nothing of it is stored, and the next run fetches
it again and backfills the day it missed. A listing not newer than the last one stored is stale:
exit 5, named, nothing recorded, checked again by the next run.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

from arxiv_days import api_page, ids, mailed, new_items, rss_day, sent, write_config
from cli_runner import digest
from conftest import HF_DAY
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.store import Store

MON, TUE, WED = (dt.date(2024, 11, d) for d in (25, 26, 27))
ITEMS = new_items()
ON = {MON: ITEMS[0:6], TUE: ITEMS[6:13], WED: ITEMS[13:16]}
TUE_WINDOW = "submittedDate:[202411221900 TO 202411251859]"  # what Tuesday's listing announced
HF_IDS = {item["paper"]["id"] for item in json.loads(HF_DAY.read_bytes())}


def hf_daily(request: Request) -> Response:
    """Hugging Face's Daily Papers: the captured day's list on Tuesday, nothing on other days."""
    body = HF_DAY.read_bytes() if request.args.get("date") == TUE.isoformat() else b"[]"
    return Response(body, content_type="application/json")


def arxiv_api(request: Request) -> Response:
    """The arXiv API: Tuesday's papers for Tuesday's window, nothing for any other."""
    items = ON[TUE] if TUE_WINDOW in request.args["search_query"] else []
    return Response(api_page(items, total=len(items)), content_type="application/atom+xml")


def serve(server: HTTPServer, *, rss: bytes | None = None, status: int = 200, hf: object = hf_daily) -> None:
    server.clear()
    server.expect_request("/api/daily_papers").respond_with_handler(hf)  # type: ignore[arg-type]
    server.expect_request("/api/query").respond_with_handler(arxiv_api)
    if status != 200:
        server.expect_request("/rss/cs.CL").respond_with_data(
            "<html>Internal Server Error</html>", status=status
        )
    else:
        server.expect_request("/rss/cs.CL").respond_with_data(
            rss, content_type="application/rss+xml", headers={"ETag": f'"{hash(rss)}"'}
        )


def run(config: Path, day: dt.date, tmp: Path) -> object:
    return digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp)


def requests_to(server: HTTPServer, path: str) -> int:
    return sum(1 for request, _ in server.log if request.path == path)


def http_cache(tmp: Path) -> list[tuple[str, str]]:
    conn = sqlite3.connect(tmp / "state" / "digest.sqlite3")
    try:
        return conn.execute("SELECT url, etag FROM http_cache WHERE url LIKE '%/rss/%'").fetchall()
    finally:
        conn.close()


def state(tmp: Path, day: dt.date) -> tuple[dict[str, dt.date], list[str] | None]:
    with Store.open(tmp / "state" / "digest.sqlite3") as store:
        return store.last_days(), store.snapshot_sources(day)


def test_one_source_down_the_others_readers_get_their_mail_exit_4_and_the_next_day_backfills(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = write_config(tmp_path, httpserver, hf=True)
    serve(httpserver, rss=rss_day(MON, ON[MON]))
    assert run(config, MON, tmp_path).returncode == 0
    validators = http_cache(tmp_path)
    assert len(validators) == 1

    serve(httpserver, status=500)
    tuesday = run(config, TUE, tmp_path)
    assert tuesday.returncode == 4, tuesday.stdout + tuesday.stderr
    assert "source failed" in tuesday.stdout and "arxiv" in tuesday.stdout and "500" in tuesday.stdout
    # Hugging Face's readers got Tuesday's list: grace (all) every paper, ada (cs.DC) nothing
    assert sent(tmp_path)["grace@example.org"] >= HF_IDS
    assert len(mailed(tmp_path)["grace@example.org"]) == 2
    # nothing of arXiv was stored: its validators, its days; Tuesday's snapshot covers hf only
    assert http_cache(tmp_path) == validators
    assert state(tmp_path, TUE) == ({"arxiv": MON, "hf": TUE}, ["hf"])

    # arXiv is back the same day: Tuesday's digests went out, so its papers wait for the next run
    serve(httpserver, rss=rss_day(TUE, ON[TUE]))
    rerun = run(config, TUE, tmp_path)
    assert rerun.returncode == 0, rerun.stdout + rerun.stderr
    assert "the next run backfills it" in rerun.stdout
    assert requests_to(httpserver, "/rss/cs.CL") == 0

    # Wednesday: Wednesday's listing, and Tuesday's through the API; each paper reaches grace once
    serve(httpserver, rss=rss_day(WED, ON[WED]))
    wednesday = run(config, WED, tmp_path)
    assert wednesday.returncode == 0, wednesday.stdout + wednesday.stderr
    assert "backfilled missed days 2024-11-26" in wednesday.stdout
    last = mailed(tmp_path)["grace@example.org"][-1]
    assert last == {*ids(ON[TUE]), *ids(ON[WED])}
    assert sent(tmp_path)["grace@example.org"] == {*HF_IDS, *ids(ON[MON]), *ids(ON[TUE]), *ids(ON[WED])}
    assert state(tmp_path, WED)[0]["arxiv"] == WED


def test_a_source_that_failed_is_fetched_alone_by_a_rerun_before_any_digest_went_out(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = write_config(tmp_path, httpserver, hf=True)
    serve(httpserver, status=503)
    fetched = digest("fetch", "--config", str(config), "--date", TUE.isoformat(), cwd=tmp_path)
    # as `digest run`: 4, the failed source named, the other stored
    assert fetched.returncode == 4, fetched.stdout + fetched.stderr
    assert "arxiv" in fetched.stderr and "503" in fetched.stderr  # logged
    assert "source failed (the next run retries it): arxiv:" in fetched.stdout
    assert state(tmp_path, TUE)[1] == ["hf"]

    serve(httpserver, rss=rss_day(TUE, ON[TUE]))
    tuesday = run(config, TUE, tmp_path)
    assert tuesday.returncode == 0, tuesday.stdout + tuesday.stderr
    assert requests_to(httpserver, "/api/daily_papers") == 0  # hf is stored: only arXiv is fetched
    assert requests_to(httpserver, "/rss/cs.CL") == 1
    assert sent(tmp_path)["grace@example.org"] == {*HF_IDS, *ids(ON[TUE])}
    assert state(tmp_path, TUE)[1] == ["hf", "arxiv"]


def test_a_body_that_is_not_the_listing_fails_only_its_source(tmp_path: Path, httpserver: HTTPServer) -> None:
    config = write_config(tmp_path, httpserver, hf=True)

    def login_page(_request: Request) -> Response:
        return Response("<!DOCTYPE html><html><body>Sign in</body></html>", content_type="text/html")

    serve(httpserver, rss=rss_day(MON, ON[MON]), hf=login_page)
    monday = run(config, MON, tmp_path)
    assert monday.returncode == 4, monday.stdout + monday.stderr
    assert "source failed" in monday.stdout and "hf" in monday.stdout and "JSON" in monday.stdout
    assert sent(tmp_path)["grace@example.org"] == set(ids(ON[MON]))
    assert state(tmp_path, MON) == ({"arxiv": MON}, ["arxiv"])


def test_every_source_down_stops_before_sending_with_the_state_unchanged(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = write_config(tmp_path, httpserver, hf=True)
    serve(httpserver, rss=rss_day(MON, ON[MON]))
    assert run(config, MON, tmp_path).returncode == 0
    before = sqlite_dump(tmp_path)

    def down(_request: Request) -> Response:
        return Response("down", status=500)

    serve(httpserver, status=500, hf=down)
    failed = run(config, TUE, tmp_path)
    assert failed.returncode == 1
    assert "every source failed" in failed.stderr and "hf" in failed.stderr and "arxiv" in failed.stderr
    assert sqlite_dump(tmp_path) == before
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 2  # Monday's, for grace and ada


def test_a_stale_feed_is_reported_exit_5_nothing_recorded_and_checked_again(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = write_config(tmp_path, httpserver)
    serve(httpserver, rss=rss_day(MON, ON[MON]))
    assert run(config, MON, tmp_path).returncode == 0

    serve(httpserver, rss=rss_day(MON, ON[MON]))  # Tuesday, and arXiv still shows Monday
    for _ in range(2):  # a re-run checks again
        tuesday = run(config, TUE, tmp_path)
        assert tuesday.returncode == 5, tuesday.stdout + tuesday.stderr
        assert "source stale: arxiv" in tuesday.stdout and "2024-11-25" in tuesday.stdout
        assert "stale" in tuesday.stderr  # and in the log
        assert state(tmp_path, TUE) == ({"arxiv": MON}, [])

    serve(httpserver, rss=rss_day(TUE, ON[TUE]))  # it caught up: nothing hid the day
    caught_up = run(config, TUE, tmp_path)
    assert caught_up.returncode == 0, caught_up.stdout + caught_up.stderr
    assert sent(tmp_path)["grace@example.org"] == {*ids(ON[MON]), *ids(ON[TUE])}
    assert state(tmp_path, TUE) == ({"arxiv": TUE}, ["arxiv"])


def test_a_new_days_listing_of_old_items_is_stale_and_the_day_is_backfilled_later(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    config = write_config(tmp_path, httpserver)
    serve(httpserver, rss=rss_day(MON, ON[MON]))
    assert run(config, MON, tmp_path).returncode == 0
    serve(httpserver, rss=rss_day(TUE, ON[MON]))  # Tuesday's date on Monday's items
    tuesday = run(config, TUE, tmp_path)
    assert tuesday.returncode == 5, tuesday.stdout + tuesday.stderr
    assert "every one of its 6 items of 2024-11-26 was listed before" in tuesday.stdout

    serve(httpserver, rss=rss_day(WED, ON[WED]))
    wednesday = run(config, WED, tmp_path)
    assert wednesday.returncode == 0, wednesday.stdout + wednesday.stderr
    assert sent(tmp_path)["grace@example.org"] == {*ids(ON[MON]), *ids(ON[TUE]), *ids(ON[WED])}


def sqlite_dump(tmp: Path) -> list[str]:
    conn = sqlite3.connect(tmp / "state" / "digest.sqlite3")
    try:
        return list(conn.iterdump())
    finally:
        conn.close()
