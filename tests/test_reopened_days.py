"""A stored day is reopened only while nothing was decided on it.

Regressions found in review: `digest fetch` adding a late source's papers to a day whose digests
were already recorded (the papers were then "seen before" the next day and in nobody's digest),
and a re-run of an earlier day, after a later day was stored, filing the source's current
listing (the later day's news) under the earlier day, which sent it twice. Both now leave the
source to the next run's backfill. Real local HTTP server, real outbox files, real SQLite.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import re
import threading
from collections import defaultdict
from pathlib import Path

import pytest
from conftest import DATA
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from digest.config import DeliveryConfig, FetchConfig, OutputConfig, Settings, SourceConfig, StateConfig
from digest.core.errors import ConfigError
from digest.pipeline import fetch_day, run
from digest.store import Store

ALL = (DATA / "arxiv_rss_2024-11-28_all.xml").read_bytes()
ITEMS = re.findall(rb"<item>.*?</item>\s*", ALL, re.S)
HEAD, TAIL = ALL[: ALL.index(b"<item>")], ALL[ALL.rindex(b"</item>") + len(b"</item>") :]
QUANTUM = [i for i in ITEMS if b"uantum" in i]
OTHER = [i for i in ITEMS if b"uantum" not in i]
D, D1, D2 = dt.date(2026, 6, 10), dt.date(2026, 6, 11), dt.date(2026, 6, 12)


class Feeds:
    """What sources A and B list now; B can be made to fail."""

    def __init__(self, server: HTTPServer) -> None:
        self.lists: dict[str, list[bytes]] = {"A": [], "B": []}
        self.failing: set[str] = set()
        for name in self.lists:
            server.expect_request(f"/{name}").respond_with_handler(self.handler(name))

    def handler(self, name: str):
        def answer(_request: Request) -> Response:
            if name in self.failing:
                return Response("down", status=500)
            return Response(HEAD + b"".join(self.lists[name]) + TAIL, content_type="application/rss+xml")

        return answer


@pytest.fixture
def setup(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> tuple[Settings, Path, Feeds]:
    for name in [n for n in __import__("os").environ if n.startswith("DIGEST_")]:
        monkeypatch.delenv(name)
    settings = Settings(
        state=StateConfig(path=tmp_path / "state.sqlite3"),
        sources=[SourceConfig(name=n, kind="feed", url=httpserver.url_for(f"/{n}")) for n in ("A", "B")],
        output=OutputConfig(dir=tmp_path / "public", base_url="https://papers.example.org/"),
        delivery=DeliveryConfig(transport="outbox", outbox=tmp_path / "outbox"),
        fetch=FetchConfig(retries=0),
        secret="test-secret",
    )
    subscribers = tmp_path / "subscribers.toml"
    subscribers.write_text('[[subscribers]]\nemail = "ada@example.org"\nkeywords = ["quantum"]\n')
    return settings, subscribers, Feeds(httpserver)


def at(day: dt.date, hour: int = 12) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(hour), tzinfo=dt.UTC)


def delivered(outbox: Path) -> dict[str, list[str]]:
    """paper id -> the messages it arrived in."""
    out: dict[str, list[str]] = defaultdict(list)
    for path in sorted(outbox.glob("*.eml")):
        text = email.message_from_bytes(path.read_bytes(), policy=email.policy.default).get_body(("plain",))
        for pid in set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text.get_content())):
            out[pid].append(path.name)
    return out


def test_fetch_on_a_recorded_day_leaves_a_late_source_to_the_next_run(
    setup: tuple[Settings, Path, Feeds],
) -> None:
    settings, subscribers, feeds = setup
    feeds.lists = {"A": OTHER[:20], "B": QUANTUM[:5]}
    feeds.failing = {"B"}
    first = run(settings, subscribers_path=subscribers, date=D, now=at(D))
    assert [name for name, _ in first.failed_sources] == ["B"]
    feeds.failing = set()
    with Store.from_config(settings.state) as store:  # `digest fetch` later that day: B is back
        report = fetch_day(settings, store, D, at(D, 14), plans=False)  # as `digest fetch`
        assert store.snapshot_sources(D) == ["A"]  # the recorded day is not reopened
    assert any("B: not in" in note and "backfills" in note for note in report.notes)
    feeds.lists = {"A": OTHER[20:40], "B": QUANTUM[:10]}  # a rolling feed: D's 5 and 5 new
    run(settings, subscribers_path=subscribers, date=D1, now=at(D1))
    got = delivered(settings.delivery.outbox)
    wanted = set(re.findall(rb"arxiv\.org/abs/(\d{4}\.\d{4,5})", b"".join(QUANTUM[:10])))
    assert {pid.decode() for pid in wanted} <= set(got)  # none of B's papers lost
    assert all(len(messages) == 1 for messages in got.values())


def test_rerunning_an_earlier_day_after_a_later_one_sends_nothing_twice(
    setup: tuple[Settings, Path, Feeds],
) -> None:
    settings, subscribers, feeds = setup
    feeds.lists = {"A": OTHER[:20], "B": QUANTUM[:5]}
    feeds.failing = {"B"}
    run(settings, subscribers_path=subscribers, date=D, now=at(D))
    feeds.failing = set()
    feeds.lists = {"A": OTHER[20:40], "B": QUANTUM[:10]}
    stopped = threading.Event()
    stopped.set()  # D+1's sending stopped at once: its digest stays pending
    run(settings, subscribers_path=subscribers, date=D1, now=at(D1), stop=stopped)
    rerun = run(settings, subscribers_path=subscribers, date=D, now=at(D1, 15))  # to fill in B
    assert rerun.new == 0 or all("B" not in s for s in rerun.failed_sources)
    with Store.from_config(settings.state) as store:
        assert store.snapshot_sources(D) == ["A"]  # D+1's news is not filed under D
    feeds.lists = {"A": OTHER[40:60], "B": QUANTUM[10:12]}
    run(settings, subscribers_path=subscribers, date=D2, now=at(D2))
    got = delivered(settings.delivery.outbox)
    assert got and all(len(messages) == 1 for messages in got.values()), {
        pid: m for pid, m in got.items() if len(m) > 1
    }


def test_a_compacted_day_is_not_run_again(setup: tuple[Settings, Path, Feeds]) -> None:
    settings, subscribers, feeds = setup
    settings = settings.model_copy(update={"state": StateConfig(path=settings.state.path, keep_days=15)})
    for offset in range(18):
        day = D + dt.timedelta(days=offset)
        feeds.lists = {"A": OTHER[offset * 5 : offset * 5 + 5], "B": QUANTUM[offset : offset + 1]}
        run(settings, subscribers_path=subscribers, date=day, now=at(day))
    before = sorted(settings.delivery.outbox.glob("*.eml"))
    with pytest.raises(ConfigError, match=r"older than \[state\] keep_days .* compacted"):
        run(settings, subscribers_path=subscribers, date=D, now=at(D + dt.timedelta(days=17), 15))
    assert sorted(settings.delivery.outbox.glob("*.eml")) == before
