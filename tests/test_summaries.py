"""[summaries] against a real local HTTP server speaking the chat-completions protocol
(tests/chat_server.py): the client's retries and limits, the stage's cache, caps and breaker, and
whole runs through the CLI, where summaries show up in the emails, the private feed, the archive
and `digest preview`, fall back where they fail, and never change the exit code."""

from __future__ import annotations

import asyncio
import datetime as dt
import email
import email.policy
import socket
import time
from pathlib import Path
from typing import Any

import pytest
from chat_server import ChatServer, Reply, paper_of, usual_answer
from cli_runner import digest
from pytest_httpserver import HTTPServer
from test_run import DATE, serve_listings, state_bytes, write_config

from digest.config import Settings, SummariesConfig
from digest.core.models import Delivery, Digest, Match, Paper, Subscriber
from digest.core.status import DeliveryStatus
from digest.pipeline.summarizing import BREAKER, summarize
from digest.plan import Send
from digest.store import Store
from digest.summaries import ChatClient, request_body

DAY = dt.date(2026, 6, 12)
PAPER = Paper(id="2411.00001", title="Prompt tuning at scale", abstract="We study prompt tuning.", version=1)


def ask(config: SummariesConfig, paper: Paper = PAPER, *, deadline: float = 30.0) -> tuple[Any, float]:
    async def go() -> Any:
        async with ChatClient(config) as chat:
            return await chat.ask(
                request_body(config.model, paper, "English"), until=time.monotonic() + deadline
            )

    start = time.monotonic()
    answer = asyncio.run(go())
    return answer, time.monotonic() - start


def settings_for(url: str, **keys: Any) -> SummariesConfig:
    return SummariesConfig(enabled=True, base_url=url, model="test-model", backoff=0.01, **keys)


# -- the client ---------------------------------------------------------------------------------


def test_an_answer_derived_from_the_request_comes_back_with_its_tokens() -> None:
    with ChatServer() as server:
        answer, _ = ask(settings_for(server.url))
    assert answer.text == usual_answer(server.requests[0]) and answer.error == ""
    assert answer.tokens_in > 0 and answer.tokens_out > 0 and answer.attempts == 1
    assert server.requests[0]["model"] == "test-model"
    assert "Authorization" not in server.headers[0]  # no key configured, none sent


def test_the_key_goes_as_a_bearer_token(monkeypatch: pytest.MonkeyPatch) -> None:
    with ChatServer() as server:
        config = settings_for(server.url, api_key="sk-test")
        answer, _ = ask(config)
    assert answer.text and server.headers[0]["Authorization"] == "Bearer sk-test"


def test_429_waits_as_long_as_retry_after_says() -> None:
    def behave(_body: dict[str, Any], attempt: int) -> Reply | None:
        return (
            Reply(429, b'{"error": {"message": "slow down"}}', {"Retry-After": "1"}) if attempt == 1 else None
        )

    with ChatServer(behave) as server:
        answer, took = ask(settings_for(server.url))
    assert answer.text and answer.attempts == 2 and len(server.requests) == 2
    assert took >= 1.0  # Retry-After, not the 0.01 s backoff


def test_5xx_is_retried_with_backoff_until_it_works() -> None:
    with ChatServer(lambda _b, attempt: Reply(500 + attempt, b"oops") if attempt < 3 else None) as server:
        answer, _ = ask(settings_for(server.url, retries=3))
    assert answer.text and answer.attempts == 3 and len(server.requests) == 3


def test_5xx_for_good_gives_up_after_the_retries() -> None:
    with ChatServer(lambda _b, _a: Reply(500, b"down")) as server:
        answer, _ = ask(settings_for(server.url, retries=2))
    assert answer.text is None and answer.error == "HTTP 500" and len(server.requests) == 3


def test_a_stall_past_the_timeout_is_cut_off_and_retried() -> None:
    with ChatServer(lambda _b, _a: Reply(stall=5)) as server:
        answer, took = ask(settings_for(server.url, timeout=0.3, retries=1))
    assert answer.text is None and "no answer within 0.3s" in answer.error
    assert len(server.requests) == 2 and took < 2.0


def test_retry_after_past_the_deadline_gives_up_at_once() -> None:
    with ChatServer(lambda _b, _a: Reply(429, b"{}", {"Retry-After": "120"})) as server:
        answer, took = ask(settings_for(server.url), deadline=10)
    assert answer.text is None and "deadline" in answer.error and took < 2 and len(server.requests) == 1


@pytest.mark.parametrize(
    "body",
    [b"{not json", b'{"choices": []}', b'{"choices": [{"message": {"content": 42}}]}', b"[]"],
)
def test_an_answer_that_is_no_chat_completion_fails_without_a_retry(body: bytes) -> None:
    with ChatServer(lambda _b, _a: Reply(200, body)) as server:
        answer, _ = ask(settings_for(server.url))
    assert answer.text is None and "not" in answer.error and len(server.requests) == 1


def test_a_4xx_fails_at_once_with_the_servers_message() -> None:
    reply = Reply(401, b'{"error": {"message": "Incorrect API key provided"}}')
    with ChatServer(lambda _b, _a: reply) as server:
        answer, _ = ask(settings_for(server.url))
    assert answer.error == "HTTP 401: Incorrect API key provided" and len(server.requests) == 1


def test_an_endpoint_that_is_not_there_fails_quickly() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    answer, took = ask(settings_for(f"http://127.0.0.1:{port}/v1", retries=1))
    assert answer.text is None and "Connect" in answer.error and took < 5


# -- the stage ----------------------------------------------------------------------------------


def papers(n: int) -> list[Paper]:
    return [
        Paper(id=f"2406.{i:05d}", title=f"Paper number {i} on prompts", abstract=f"Abstract {i}.", version=1)
        for i in range(n)
    ]


def send(email_: str, items: list[Paper], language: str = "") -> Send:
    reader = Subscriber(email=email_, all=True, language=language)
    return Send(DAY, reader, digest=Digest(reader, DAY, tuple(Match(p, 1.0) for p in items), len(items)))


def test_each_paper_is_asked_once_per_language_then_served_from_the_cache(tmp_path: Path) -> None:
    ten = papers(10)
    sends = [
        send("a@example.org", ten[:6]),
        send("b@example.org", ten[3:]),
        send("c@example.org", ten[:2], "German"),
    ]
    with ChatServer() as server, Store.open(tmp_path / "s.sqlite3") as store:
        book, counts = summarize(Settings(summaries=settings_for(server.url)), store, sends, DAY)
        assert len(server.requests) == 12 and set(server.attempts.values()) == {1}  # 10 English, 2 German
        assert counts.summarised == 12 and counts.cached == 0 and counts.failed == 0
        assert counts.tokens_in > 0 and counts.tokens_out > 0 and counts.requests == 12
        assert book.for_language("German")[ten[0].id].text.startswith("In German: the paper Paper number 0")
        assert book.for_language("English")[ten[9].id].model == "test-model"
        again, counts = summarize(Settings(summaries=settings_for(server.url)), store, sends, DAY)
        assert len(server.requests) == 12  # not one more
        assert counts.cached == 12 and counts.summarised == 0 and counts.requests == 0
        assert again.for_language("English") == book.for_language("English")
        # a new version of a paper is a new summary; another model too
        newer = [Paper(id=ten[0].id, title=ten[0].title, abstract="Revised.", version=2)]
        _, counts = summarize(
            Settings(summaries=settings_for(server.url)), store, [send("a@example.org", newer)], DAY
        )
        assert counts.summarised == 1 and len(server.requests) == 13


def test_a_late_digest_shows_what_the_cache_has_and_asks_nothing(tmp_path: Path) -> None:
    two = papers(2)
    with ChatServer() as server, Store.open(tmp_path / "s.sqlite3") as store:
        summarize(Settings(summaries=settings_for(server.url)), store, [send("a@example.org", two[:1])], DAY)
        row = Delivery(DAY, "b@example.org", DeliveryStatus.PENDING, 0, None, None, tuple(p.id for p in two))
        late = Send(DAY, Subscriber(email="b@example.org", all=True), late=row)
        book, counts = summarize(
            Settings(summaries=settings_for(server.url)), store, [late], DAY + dt.timedelta(days=1)
        )
    assert len(server.requests) == 1 and counts.requests == 0
    assert set(book.for_language("English")) == {two[0].id}


def test_the_daily_caps_leave_the_rest_to_the_fallback(tmp_path: Path) -> None:
    ten = papers(10)
    with ChatServer() as server, Store.open(tmp_path / "s.sqlite3") as store:
        config = settings_for(server.url, max_papers=4)
        book, counts = summarize(Settings(summaries=config), store, [send("a@example.org", ten)], DAY)
        assert len(server.requests) == 4 and counts.summarised == 4 and counts.capped == 6
        assert len(book.for_language("English")) == 4
        # the same day again: the four are cached, the cap is spent
        _, counts = summarize(Settings(summaries=config), store, [send("a@example.org", ten)], DAY)
        assert len(server.requests) == 4 and counts.cached == 4 and counts.capped == 6
        # the next day has its own cap
        _, counts = summarize(
            Settings(summaries=config), store, [send("a@example.org", ten)], DAY + dt.timedelta(days=1)
        )
        assert len(server.requests) == 8 and counts.summarised == 4
        tokens = settings_for(server.url, max_tokens=1, concurrency=1)
        _, counts = summarize(
            Settings(summaries=tokens), store, [send("a@example.org", papers(12)[10:])], DAY
        )
        assert counts.summarised == 0 and counts.capped == 2 and len(server.requests) == 8  # spent today


def test_failures_in_a_row_trip_the_breaker(tmp_path: Path) -> None:
    with (
        ChatServer(lambda _b, _a: Reply(503, b"down")) as server,
        Store.open(tmp_path / "s.sqlite3") as store,
    ):
        config = settings_for(server.url, retries=0, concurrency=1)
        book, counts = summarize(Settings(summaries=config), store, [send("a@example.org", papers(20))], DAY)
    assert not book and counts.failed == BREAKER and counts.capped == 20 - BREAKER
    assert len(server.requests) == BREAKER and counts.reasons == {"HTTP 503": BREAKER}


def test_the_stage_ends_by_its_deadline(tmp_path: Path) -> None:
    with ChatServer(lambda _b, _a: Reply(stall=10)) as server, Store.open(tmp_path / "s.sqlite3") as store:
        config = settings_for(server.url, timeout=30, deadline=1.0, concurrency=4)
        start = time.monotonic()
        book, counts = summarize(Settings(summaries=config), store, [send("a@example.org", papers(8))], DAY)
        took = time.monotonic() - start
    assert took < 3 and not book and counts.failed + counts.capped == 8 and counts.failed >= 4


def test_a_dry_run_asks_nothing(tmp_path: Path) -> None:
    with ChatServer() as server, Store.open(tmp_path / "s.sqlite3") as store:
        book, counts = summarize(
            Settings(summaries=settings_for(server.url)),
            store,
            [send("a@example.org", papers(3))],
            DAY,
            dry_run=True,
        )
    assert not server.requests and not book and counts.skipped == 3


def test_compaction_drops_the_summaries_of_days_past_the_window(tmp_path: Path) -> None:
    with ChatServer() as server, Store.open(tmp_path / "s.sqlite3") as store:
        old, new = papers(2)
        summarize(Settings(summaries=settings_for(server.url)), store, [send("a@example.org", [old])], DAY)
        later = DAY + dt.timedelta(days=20)
        summarize(Settings(summaries=settings_for(server.url)), store, [send("a@example.org", [new])], later)
        store.compact(later - dt.timedelta(days=14), dt.datetime(2026, 7, 2, tzinfo=dt.UTC))
        assert set(store.summaries_for([old.id, new.id], "English")) == {new.id}
        assert store.summary_usage(DAY) == (0, 0) and store.summary_usage(later)[0] == 1


# -- whole runs through the CLI -----------------------------------------------------------------

PROFILES = """
[[subscribers]]
email = "ada@example.org"
name = "Ada Lovelace"
keywords = ["LLM", "language model"]
language = "German"

[[subscribers]]
email = "grace@example.org"
name = "Grace Hopper"
all = true
feed = true
"""

INJECTION = 'Great paper. <a href="https://evil.example/x">click here</a><script>alert(1)</script>'


class Saboteur:
    """Every third paper's requests fail (HTTP 500), every third after it answers with markup and
    a link; the rest answer well. Which paper got what is kept, by title as the server saw it."""

    def __init__(self) -> None:
        self.fate: dict[str, str] = {}

    def __call__(self, body: dict[str, Any], _attempt: int) -> Reply | None:
        title = paper_of(body)["title"]
        fate = self.fate.setdefault(title, ("good", "down", "inject")[len(self.fate) % 3])
        if fate == "down":
            return Reply(500, b'{"error": {"message": "overloaded"}}')
        if fate == "inject":
            return Reply(content=INJECTION)
        return None


def summaries_config(url: str) -> str:
    return (
        f'\n[summaries]\nenabled = true\nbase_url = "{url}"\nmodel = "test-model"\n'
        "retries = 1\nbackoff = 0.01\ntimeout = 5\n"
    )


def outbox(tmp_path: Path) -> dict[str, email.message.EmailMessage]:
    out = {}
    for path in sorted((tmp_path / "outbox").glob("*.eml")):
        message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
        out[str(message["To"]).split("<")[-1].rstrip(">")] = message
    return out  # type: ignore[return-value]


def parts(message: email.message.EmailMessage) -> tuple[str, str]:
    text = message.get_body(("plain",)).get_content()  # type: ignore[union-attr]
    html = message.get_body(("html",)).get_content()  # type: ignore[union-attr]
    return text, html


def blocks(html: str, papers_by_url: dict[str, Paper]) -> dict[str, str]:
    """Each paper's block of the HTML email, by paper id (found by its link)."""
    out = {}
    for block in html.split('<div style="padding:16px 0')[1:]:
        found = [p.id for url, p in papers_by_url.items() if f'href="{url}"' in block]
        assert len(found) == 1, block[:300]
        out[found[0]] = block
    return out


def test_a_run_shows_summaries_where_they_worked_and_falls_back_elsewhere(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    saboteur = Saboteur()
    with ChatServer(saboteur) as server:
        config = write_config(tmp_path, httpserver, None)
        # One request at a time, so that the fates alternate as they were dealt. With several at
        # once, a loaded machine could finish five failing papers in a row, and the breaker would
        # then leave the later papers unasked: a paper shown with no fate (seen once in CI).
        config.write_text(config.read_text() + summaries_config(server.url) + "concurrency = 1\n")
        (tmp_path / "subscribers.toml").write_text(PROFILES)
        run = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert run.returncode == 0, run.stderr + run.stdout  # failures never change the exit code
        asked = len(server.requests)
        again = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
        assert again.returncode == 0 and len(server.requests) == asked  # nothing sent twice
        preview = digest(
            "preview", "grace@example.org", "--config", str(config), "--date", DATE, cwd=tmp_path
        )

    fates = saboteur.fate
    assert set(fates.values()) == {"good", "down", "inject"}
    # one request per (paper, language), two for the ones that failed (one retry)
    for (title, _language), n in server.attempts.items():
        assert n == (2 if fates[title] == "down" else 1)
    asked_for = [fates[title] for title, _language in server.attempts]  # (paper, language) pairs
    failed = asked_for.count("down") + asked_for.count("inject")
    assert f"{asked_for.count('good')} made, 0 cached, {failed} failed" in run.stdout, run.stdout
    assert "summaries failed (the abstract shown instead): HTTP 500" in run.stdout

    with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
        listing = {p.id: p for p in store.snapshot(dt.date.fromisoformat(DATE)) or []}
        rows = store.deliveries(dt.date.fromisoformat(DATE))
    by_url = {p.url: p for p in listing.values() if p.url}
    mail = outbox(tmp_path)
    assert set(mail) == {"ada@example.org", "grace@example.org"}
    for address, language in (("grace@example.org", "English"), ("ada@example.org", "German")):
        text, html = parts(mail[address])
        assert "evil.example" not in html + text and "<script" not in html and "alert(1)" not in text
        shown = blocks(html, by_url)
        assert set(shown) == set(rows[address].papers)
        for pid, block in shown.items():
            fate = fates[" ".join(listing[pid].title.split())]
            tldr = f"In {language}: the paper {' '.join(listing[pid].title.split()[:8])}"
            if fate == "good":
                assert "TL;DR, generated by test-model:" in block and tldr.split(":")[0] in block
            else:  # the paper's own summary or the abstract, as without [summaries]
                assert "TL;DR" not in block
        good = sum(1 for pid in shown if fates[" ".join(listing[pid].title.split())] == "good")
        assert text.count("TL;DR, generated by test-model:") == good > 0
        assert html.count("TL;DR, generated by test-model:") == good

    public = tmp_path / "public"
    feed = next((public / "feeds").glob("*.xml")).read_text()
    assert feed.count("TL;DR&lt;/strong&gt; (generated by test-model)") == sum(
        1 for pid in rows["grace@example.org"].papers if fates[" ".join(listing[pid].title.split())] == "good"
    )
    assert "evil.example" not in feed
    page = (public / "archive" / f"{DATE}.html").read_text()
    assert "TL;DR, generated by test-model:" in page and "In English: the paper" in page
    assert "In German" not in page and "evil.example" not in page
    assert (
        preview.returncode == 0 and "TL;DR, generated by test-model: In English: the paper" in preview.stdout
    )


def test_an_endpoint_that_is_down_changes_nothing_but_the_summary_line(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    serve_listings(httpserver)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    config = write_config(tmp_path, httpserver, None)
    plain = tmp_path / "plain"
    plain.mkdir()
    (plain / "digest.toml").write_text(config.read_text())
    (plain / "subscribers.toml").write_text((tmp_path / "subscribers.toml").read_text())
    config.write_text(config.read_text() + summaries_config(f"http://127.0.0.1:{port}/v1"))

    run = digest("run", "--config", str(config), "--date", DATE, cwd=tmp_path)
    without = digest("run", "--config", str(plain / "digest.toml"), "--date", DATE, cwd=plain)
    assert run.returncode == without.returncode == 0, run.stderr + run.stdout
    assert "0 made, 0 cached" in run.stdout and "ConnectError" in run.stdout
    assert "summaries" not in without.stdout
    ours, theirs = outbox(tmp_path), outbox(plain)
    assert set(ours) == set(theirs) and ours
    for address, message in ours.items():
        assert parts(message) == parts(theirs[address])  # the same email, as without [summaries]


def test_a_dry_run_asks_nothing_and_changes_no_state(tmp_path: Path, httpserver: HTTPServer) -> None:
    serve_listings(httpserver)
    with ChatServer() as server:
        config = write_config(tmp_path, httpserver, None)
        config.write_text(config.read_text() + summaries_config(server.url))
        assert digest("fetch", "--config", str(config), "--date", DATE, cwd=tmp_path).returncode == 0
        before = state_bytes(tmp_path)
        dry = digest("run", "--config", str(config), "--date", DATE, "--dry-run", cwd=tmp_path)
    assert dry.returncode == 0, dry.stderr
    assert not server.requests and "not asked (dry run)" in dry.stdout
    assert state_bytes(tmp_path) == before and not (tmp_path / "outbox").exists()


def test_empty_and_hostile_answers_fall_back_and_are_counted_by_why(tmp_path: Path) -> None:
    answers = [
        "",
        "   ",
        '<img src=x onerror="alert(1)"> Nice paper about prompts.',
        "See https://evil.example now ok",
    ]

    def behave(body: dict[str, Any], _attempt: int) -> Reply:
        number = int(paper_of(body)["title"].split()[2])
        return Reply(content=answers[number % len(answers)])

    with ChatServer(behave) as server, Store.open(tmp_path / "s.sqlite3") as store:
        book, counts = summarize(
            Settings(summaries=settings_for(server.url)), store, [send("a@example.org", papers(8))], DAY
        )
        assert not book and counts.failed == 8 and counts.summarised == 0 and counts.capped == 0
        assert counts.reasons == {"empty answer": 4, "markup in the answer": 2, "a link in the answer": 2}
        assert store.summaries_for([p.id for p in papers(8)], "English") == {}  # nothing cached
