"""Hostile servers (issue 24): every fetch is bounded in time and memory, and a listing's bad or
repeated items are left out, counted and reported.

What a well-behaved server cannot do (drip bytes, stall mid-headers) is done by `RawServer`, a
real TCP server that writes its HTTP by hand; the rest by pytest-httpserver. Runs go through
`digest run` in this process (tests/cli_runner.py), except the one whose memory high-water mark
is read from its own process.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import gzip
import hashlib
import json
import os
import re
import socket
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import psutil
import pytest
from cli_runner import ROOT, base_env, digest
from conftest import ARXIV_TRIMMED, DATA, HF_DAY
from pytest_httpserver import HTTPServer

from digest.config import FetchConfig, SourceConfig
from digest.core.errors import FetchError, ParseError
from digest.core.models import Listing
from digest.pipeline.summary import RunSummary
from digest.sources import Fetcher, fetch_listing, parse_feed, parse_hf_daily
from digest.store import Store

BOMB = DATA / "zeros_1GiB.gz.gz"  # 1 GiB of zeros, gzipped twice: 1,827 bytes (PROVENANCE.md)
DATE, DAY_BEFORE, DAY_AFTER = "2026-06-12", "2026-06-11", "2026-06-13"
NOW = dt.datetime(2026, 6, 12, 12, 0, tzinfo=dt.UTC)
MB = 1024 * 1024
PROFILES = '[[subscribers]]\nemail = "grace@example.org"\nall = true\n'


# -- a server that misbehaves on purpose -----------------------------------------------------------


class RawServer:
    """A real TCP server on 127.0.0.1 answering each request with `respond(conn)`, by hand."""

    def __init__(self, respond: Callable[[socket.socket], None]) -> None:
        self.respond = respond
        self.stop = threading.Event()
        self.requests = 0
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port = self._listener.getsockname()[1]
        self._threads: list[threading.Thread] = []

    def url(self, path: str = "/feed") -> str:
        return f"http://127.0.0.1:{self.port}{path}"

    def __enter__(self) -> RawServer:
        self._listener.settimeout(0.05)
        self._start(self._accept)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()

    def _start(self, target: Callable[..., None], *args: object) -> None:
        thread = threading.Thread(target=target, args=args, daemon=True)
        self._threads.append(thread)
        thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except TimeoutError:
                continue
            self._start(self._serve, conn)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            conn.settimeout(5)
            head = b""
            while b"\r\n\r\n" not in head:
                data = conn.recv(4096)
                if not data:
                    return
                head += data
            self.requests += 1
            with contextlib.suppress(OSError):  # the client hung up: what a deadline does
                self.respond(conn)

    def drip(self, conn: socket.socket, data: bytes, every: float = 0.1) -> None:
        """Send `data` a byte at a time, `every` seconds apart: never idle long enough to time out."""
        for byte in data:
            if self.stop.wait(every):
                return
            conn.sendall(bytes([byte]))


def _drip_body(server: RawServer) -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        conn.sendall(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nContent-Length: 100000\r\n\r\n"
        )
        server.drip(conn, b"<" * 100_000)

    return respond


def _drip_headers(server: RawServer) -> Callable[[socket.socket], None]:
    def respond(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\n")
        server.drip(conn, b"X-Slow: " + b"a" * 10_000 + b"\r\n\r\n")

    return respond


def _drip_until_close(server: RawServer) -> Callable[[socket.socket], None]:
    """No Content-Length: the body ends when the connection does, so a cut looks like its end."""

    def respond(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n")
        server.drip(conn, b"x" * 100_000)

    return respond


# -- the deadline ----------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [_drip_body, _drip_headers, _drip_until_close])
def test_a_server_that_drips_is_given_up_at_the_deadline(
    kind: Callable[[RawServer], Callable[[socket.socket], None]],
) -> None:
    sleeps: list[float] = []
    config = FetchConfig(timeout=2, deadline=0.5, retries=2, backoff=0.01)
    with RawServer(lambda conn: None) as server:
        server.respond = kind(server)
        start = time.monotonic()
        with Fetcher(config, sleep=sleeps.append) as fetcher, pytest.raises(FetchError) as info:
            fetcher.get(server.url())
        took = time.monotonic() - start
    message = str(info.value)
    assert message.startswith(f"fetching {server.url()}: ") and "\n" not in message
    assert "[fetch] deadline of 0.5 s" in message and "raise [fetch] deadline" in message
    # The idle timeout (2 s) never tripped: each byte came within it. Not retried: a server that
    # dripped through one deadline would through the next.
    assert took < 1.5 and server.requests == 1 and sleeps == []


def test_the_idle_timeout_still_applies_within_the_deadline() -> None:
    def silent(conn: socket.socket) -> None:
        server.stop.wait(3)

    with (
        RawServer(silent) as server,
        Fetcher(FetchConfig(timeout=0.2, deadline=5, retries=0)) as fetcher,
        pytest.raises(FetchError, match=r"timed out after 0.2 s"),
    ):
        fetcher.get(server.url())


def test_a_fast_response_is_untouched_by_the_deadline(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(ARXIV_TRIMMED.read_bytes())
    with Fetcher(FetchConfig(deadline=0.5, retries=0)) as fetcher:
        for _ in range(3):  # a connection per request: each gets its own deadline
            assert fetcher.get(httpserver.url_for("/feed")).body == ARXIV_TRIMMED.read_bytes()
    time.sleep(0.6)  # the timers of finished requests fire on nothing


# -- decoded bytes ---------------------------------------------------------------------------------


def test_the_bomb_is_what_it_says() -> None:
    inner = zlib.decompressobj(31).decompress(BOMB.read_bytes())
    assert len(BOMB.read_bytes()) < 2000 and inner[:2] == b"\x1f\x8b" and 1_000_000 < len(inner) < 1_100_000


@contextmanager
def rss_growth() -> Iterator[Callable[[], int]]:
    """How far this process's resident memory rose above where it started, sampled every 2 ms."""
    process = psutil.Process()
    base = process.memory_info().rss
    peak = [base]
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            peak[0] = max(peak[0], process.memory_info().rss)
            done.wait(0.002)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield lambda: peak[0] - base
    finally:
        done.set()
        thread.join()


def test_stacked_gzip_is_capped_on_the_decoded_bytes(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/bomb").respond_with_data(
        BOMB.read_bytes(), headers={"Content-Encoding": "gzip, gzip"}
    )
    url = httpserver.url_for("/bomb")
    with (
        rss_growth() as growth,
        Fetcher(FetchConfig(retries=0)) as fetcher,
        pytest.raises(FetchError) as info,
    ):
        fetcher.get(url)
    assert str(info.value) == (
        f"fetching {url}: response is more than 50,000,000 bytes once decoded (Content-Encoding: "
        f"gzip, gzip, from 1,827 bytes received), over the [fetch] max_bytes cap of 50,000,000 bytes; "
        "raise max_bytes if that is expected"
    )
    assert growth() < 200 * MB, f"grew {growth() / MB:.0f} MB"


@pytest.mark.parametrize(
    ("encoding", "match"),
    [
        ("br", "Content-Encoding br, which digest did not ask for and does not decode"),
        ("gzip, gzip, gzip, gzip", "Content-Encoding with 4 layers"),
    ],
)
def test_codings_that_cannot_be_bounded_are_refused(
    httpserver: HTTPServer, encoding: str, match: str
) -> None:
    httpserver.expect_request("/odd").respond_with_data(b"whatever", headers={"Content-Encoding": encoding})
    url = httpserver.url_for("/odd")
    with Fetcher(FetchConfig(retries=0)) as fetcher, pytest.raises(FetchError, match=match) as info:
        fetcher.get(url)
    assert info.value.url == url


@pytest.mark.parametrize(
    ("encoding", "body"),
    [
        # mtime=0: the same bytes in every process (pytest-xdist's workers must collect the same ids)
        ("gzip", gzip.compress(b"first ", mtime=0) + gzip.compress(b"second", mtime=0)),  # two members
        ("deflate", zlib.compress(b"first second")),
        ("deflate", zlib.compress(b"first second")[2:-4]),  # raw deflate, as some servers send it
        ("gzip, deflate", zlib.compress(gzip.compress(b"first second", mtime=0))),
        ("identity", b"first second"),
        ("x-gzip", gzip.compress(b"first second", mtime=0) + b"\0\0trailing junk"),
    ],
    ids=["gzip-two-members", "zlib", "raw-deflate", "gzip-then-deflate", "identity", "x-gzip-with-junk"],
)
def test_what_the_fetcher_decodes(httpserver: HTTPServer, encoding: str, body: bytes) -> None:
    httpserver.expect_request("/x").respond_with_data(body, headers={"Content-Encoding": encoding})
    with Fetcher(FetchConfig(retries=0)) as fetcher:
        assert fetcher.get(httpserver.url_for("/x")).body == b"first second"
    assert httpserver.log[0][0].headers["Accept-Encoding"] == "gzip, deflate"


def test_the_cap_holds_on_an_error_body_too(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/gone").respond_with_data(
        BOMB.read_bytes(), status=404, headers={"Content-Encoding": "gzip, gzip"}
    )
    with (
        rss_growth() as growth,
        Fetcher(FetchConfig(retries=0)) as fetcher,
        pytest.raises(FetchError, match="HTTP 404") as info,
    ):
        fetcher.get(httpserver.url_for("/gone"))
    assert len(info.value.body) == 64 * 1024 and growth() < 100 * MB  # type: ignore[attr-defined]


# -- repeated ids, malformed items -----------------------------------------------------------------


def _rss(items: list[tuple[str, str]]) -> bytes:
    entries = "".join(
        f"<item><title>{title}</title><guid isPermaLink='false'>{guid}</guid>"
        f"<link>https://example.org/{i}</link></item>"
        for i, (guid, title) in enumerate(items)
    )
    return f'<?xml version="1.0"?><rss version="2.0"><channel><title>Lab</title>{entries}</channel></rss>'.encode()


SHARED_GUID = [("urn:paper:same", f"Paper {n}") for n in range(1, 21)]
FEED = _rss([("urn:paper:a", "Alpha"), *SHARED_GUID, ("urn:paper:b", "Beta")])


def test_items_sharing_an_id_keep_the_first_and_are_counted(caplog: pytest.LogCaptureFixture) -> None:
    papers = parse_feed(FEED, "lab")
    assert [(p.id, p.title) for p in papers] == [
        ("urn:paper:a", "Alpha"),
        ("urn:paper:same", "Paper 1"),  # the first, as it is: not merged with the 19 others
        ("urn:paper:b", "Beta"),
    ]
    assert "19 items repeat the id of an earlier item ('urn:paper:same' is listed 20 times)" in caplog.text


def test_fetch_listing_counts_repeats_per_response(httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(FEED, content_type="application/rss+xml")
    source = SourceConfig(name="lab", kind="feed", url=httpserver.url_for("/feed"))
    with Fetcher(FetchConfig(retries=0)) as fetcher:
        listing, _ = fetch_listing(source, fetcher, dt.date(2026, 6, 12), now=NOW)
    assert (len(listing.papers), listing.duplicates, listing.skipped) == (3, 19, 0)


def _hf_day_with_bad_items() -> list[dict[str, object]]:
    items = json.loads(HF_DAY.read_bytes())
    items[3] = {"paper": {"title": "an item without an id"}}
    items[7]["paper"]["title"] = "   "
    items[7].pop("title", None)  # the outer item's title stands in for the paper's
    items.append(items[0])  # a repeat of the first
    return items


def test_a_malformed_hugging_face_item_is_skipped_not_fatal(caplog: pytest.LogCaptureFixture) -> None:
    papers = parse_hf_daily(json.dumps(_hf_day_with_bad_items()).encode(), "hf")
    assert len(papers) == 28  # 30, less the two that are not papers
    assert "skipped 2 of 31 items that are not papers (item 3 is not a paper (no paper.id)" in caplog.text
    assert "item 7 (paper 2606." in caplog.text and "has no title" in caplog.text
    # A page with no paper at all is not the Daily Papers API: that still fails the source.
    with pytest.raises(ParseError, match="item 0 is not a paper"):
        parse_hf_daily(b'[{"paper": {}}, 3]', "hf")


def test_hugging_face_counts_skipped_and_repeated_items(httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/api/daily_papers", query_string={"date": DATE, "limit": "100", "p": "0"}
    ).respond_with_json(_hf_day_with_bad_items())
    source = SourceConfig(name="hf", kind="hf_daily", url=httpserver.url_for("/api/daily_papers"), days=1)
    with Fetcher(FetchConfig(retries=0)) as fetcher:
        listing, results = fetch_listing(source, fetcher, dt.date(2026, 6, 12), now=NOW)
    assert (len(listing.papers), listing.skipped, listing.duplicates, len(results)) == (28, 2, 1, 1)


def test_the_summary_reports_what_each_source_left_out() -> None:
    summary = RunSummary(date=dt.date(2026, 6, 12), malformed_items={"hf": 2}, duplicate_ids={"lab": 19})
    assert "source hf: skipped 2 malformed items (not papers)" in summary.lines()
    assert "source lab: 19 items repeated an earlier item's id; kept the first of each" in summary.lines()
    assert summary.as_dict()["malformed_items"] == {"hf": 2}
    assert summary.as_dict()["duplicate_ids"] == {"lab": 19}
    assert Listing("x", (), NOW).skipped == 0 == Listing("x", (), NOW).duplicates


# -- through `digest run` --------------------------------------------------------------------------


def _config(
    tmp_path: Path, url: str, *, kind: str = "feed", name: str = "lab", deadline: float = 120
) -> Path:
    config = tmp_path / "digest.toml"
    config.write_text(
        f"""
[state]
path = "state/digest.sqlite3"

[[sources]]
name = "{name}"
kind = "{kind}"
url = "{url}"

[fetch]
retries = 2
backoff = 0.01
timeout = 5
deadline = {deadline}

[output]
dir = "public"
base_url = "https://papers.example.org/digest/"
"""
    )
    (tmp_path / "subscribers.toml").write_text(PROFILES)
    return config


def _state(tmp_path: Path) -> dict[str, str]:
    return {
        p.name: hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted((tmp_path / "state").iterdir())
        if p.is_file() and not p.name.endswith((".lock", "-shm"))
    }


def _run(config: Path, date: str, tmp_path: Path) -> tuple[int, str, list[str]]:
    result = digest("run", "--config", str(config), "--date", date, cwd=tmp_path)
    assert "Traceback" not in result.stderr, result.stderr[-4000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    return result.returncode, result.stdout, errors


def test_run_against_a_dripping_server_fails_at_the_deadline_and_stores_nothing(tmp_path: Path) -> None:
    feed = ARXIV_TRIMMED.read_bytes()

    def good(conn: socket.socket) -> None:
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n" % len(feed) + feed)

    with RawServer(good) as server:
        config = _config(tmp_path, server.url(), deadline=0.5)
        assert digest("fetch", "--config", str(config), "--date", DAY_BEFORE, cwd=tmp_path).returncode == 0
        before = _state(tmp_path)

        server.respond = _drip_body(server)
        start = time.monotonic()
        code, _, errors = _run(config, DATE, tmp_path)
        assert time.monotonic() - start < 5
        assert code == 1
        assert errors == [
            f"error: fetching {server.url()}: no complete response within the [fetch] deadline of 0.5 s "
            "(the server sends too slowly, or a byte at a time); try again later, or raise [fetch] deadline"
        ]
        assert _state(tmp_path) == before and not (tmp_path / "outbox").exists()

        server.respond = good  # the server recovers: the next run fetches the day and sends it
        code, _, errors = _run(config, DATE, tmp_path)
        assert (code, errors) == (0, [])
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert store.snapshot_dates() == [dt.date(2026, 6, 12), dt.date(2026, 6, 11)]


def test_run_against_a_stacked_gzip_bomb_fails_on_the_cap(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(
        BOMB.read_bytes(), headers={"Content-Encoding": "gzip, gzip"}
    )
    config = _config(tmp_path, httpserver.url_for("/feed"))
    with rss_growth() as growth:
        code, _, errors = _run(config, DATE, tmp_path)
    assert code == 1 and len(errors) == 1
    assert errors[0].startswith(
        f"error: fetching {httpserver.url_for('/feed')}: response is more than 50,000,000"
    )
    assert "over the [fetch] max_bytes cap of 50,000,000 bytes" in errors[0]
    assert growth() < 300 * MB, f"grew {growth() / MB:.0f} MB"
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert store.snapshot_dates() == []

    httpserver.clear()  # the server is fixed: the next run goes through
    httpserver.expect_request("/feed").respond_with_data(
        gzip.compress(ARXIV_TRIMMED.read_bytes()), headers={"Content-Encoding": "gzip"}
    )
    code, _, errors = _run(config, DATE, tmp_path)
    assert (code, errors) == (0, [])


# Runs argv[1:] and prints its wait status and its own high-water mark (KiB), from a process of
# its own size (see the test below).
_MEASURED = (
    "import os, subprocess, sys\n"
    "child = subprocess.Popen(sys.argv[1:], stdout=subprocess.DEVNULL)\n"
    "_, status, usage = os.wait4(child.pid, 0)\n"
    "print(status, usage.ru_maxrss)\n"
)


@pytest.mark.e2e
def test_the_stacked_gzip_bomb_peaks_under_300_mb(tmp_path: Path, httpserver: HTTPServer) -> None:
    """The whole `digest run` in a process of its own, its high-water mark read when it ends."""
    httpserver.expect_request("/feed").respond_with_data(
        BOMB.read_bytes(), headers={"Content-Encoding": "gzip, gzip"}
    )
    config = _config(tmp_path, httpserver.url_for("/feed"))
    env = base_env()
    env["PYTHONPATH"] = str(ROOT)
    # Started by a small launcher, not by this test process: on Linux a child's high-water mark
    # includes its parent's at the exec (the mm it replaced), and a pytest worker that ran the
    # relevance tests before this one is bigger than the bar itself.
    with (tmp_path / "stderr").open("wb") as err:
        launched = subprocess.run(
            [sys.executable, "-c", _MEASURED, sys.executable, "-m", "digest", "run", "--config", str(config),
             "--date", DATE],
            cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=err, timeout=120,
        )  # fmt: skip
    status, maxrss = (int(x) for x in launched.stdout.split())
    process = subprocess.CompletedProcess(launched.args, os.waitstatus_to_exitcode(status))
    stderr = (tmp_path / "stderr").read_text()
    assert process.returncode == 1, stderr
    assert [line for line in stderr.splitlines() if line.startswith("error:")] == [
        f"error: fetching {httpserver.url_for('/feed')}: response is more than 50,000,000 bytes once "
        "decoded (Content-Encoding: gzip, gzip, from 1,827 bytes received), over the [fetch] max_bytes "
        "cap of 50,000,000 bytes; raise max_bytes if that is expected"
    ]
    peak = maxrss * 1024  # KiB on Linux
    assert peak < 300 * MB, f"peak {peak / MB:.0f} MB"


def test_run_reports_repeated_ids_and_keeps_the_first(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request("/feed").respond_with_data(FEED, content_type="application/rss+xml")
    config = _config(tmp_path, httpserver.url_for("/feed"))
    code, stdout, errors = _run(config, DATE, tmp_path)
    assert (code, errors) == (0, [])
    assert "source lab: 19 items repeated an earlier item's id; kept the first of each" in stdout
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        stored = store.snapshot(dt.date(2026, 6, 12)) or []
    assert sorted((p.id, p.title) for p in stored) == [
        ("urn:paper:a", "Alpha"),
        ("urn:paper:b", "Beta"),
        ("urn:paper:same", "Paper 1"),
    ]
    assert len(list((tmp_path / "outbox").glob("*.eml"))) == 1

    # The next day the feed still repeats the id: reported again; nothing in it is new.
    code, stdout, errors = _run(config, DAY_AFTER, tmp_path)
    assert (code, errors) == (0, [])
    assert "source lab: 19 items repeated" in stdout and re.search(r"new papers\s*│\s*0\s*│", stdout)


def test_run_skips_a_malformed_hugging_face_item(tmp_path: Path, httpserver: HTTPServer) -> None:
    httpserver.expect_request(
        "/api/daily_papers", query_string={"date": DATE, "limit": "100", "p": "0"}
    ).respond_with_json(_hf_day_with_bad_items())
    httpserver.expect_request("/api/daily_papers").respond_with_json([])
    config = _config(tmp_path, httpserver.url_for("/api/daily_papers"), kind="hf_daily", name="hf")
    code, stdout, errors = _run(config, DATE, tmp_path)
    assert (code, errors) == (0, [])
    assert "source hf: skipped 2 malformed items (not papers)" in stdout
    assert "source hf: 1 items repeated an earlier item's id" in stdout
    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        assert len(store.snapshot(dt.date(2026, 6, 12)) or []) == 28

    # Re-running the day reuses its snapshot: nothing is fetched, so nothing is reported again.
    code, stdout, errors = _run(config, DATE, tmp_path)
    assert (code, errors) == (0, []) and "malformed items" not in stdout
