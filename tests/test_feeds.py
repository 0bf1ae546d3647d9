"""RSS and Atom feeds written by publish_site: they parse back cleanly, keep their guids, keep a
window of days, and carry hostile text safely. Also: every file is written atomically."""

from __future__ import annotations

import datetime as dt
import html
import os
import xml.etree.ElementTree as ET
from email.utils import parsedate_to_datetime
from pathlib import Path

import feedparser
import pytest
from test_render_email import HOSTILE, arxiv_papers, hf_papers, match

from digest.config import Settings
from digest.core import files as files_module
from digest.core.errors import RenderError
from digest.core.models import Subscriber
from digest.core.tokens import feed_token
from digest.render.archive import Day, publish_site
from digest.render.feeds import private_feed_path, private_feed_url

D1, D2 = dt.date(2026, 6, 11), dt.date(2026, 6, 12)
NOW = dt.datetime(2026, 6, 12, 7, 30, tzinfo=dt.UTC)
BASE = "https://digest.example.org/"
READER = Subscriber(email="ada@example.org", name="Ada", keywords=("LLM",), feed=True)


def site(tmp_path: Path, **output: object) -> Settings:
    return Settings(output={"dir": tmp_path / "public", "base_url": BASE, **output})  # type: ignore[arg-type]


def day1() -> Day:
    return Day(D1, tuple(arxiv_papers()[:5]))


def day2() -> Day:
    return Day(D2, tuple(hf_papers()[:6]))


def parse(path: Path) -> feedparser.FeedParserDict:
    parsed = feedparser.parse(path.read_bytes())
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    return parsed


def test_rss_parses_back_newest_day_first(tmp_path: Path) -> None:
    s = site(tmp_path)
    written = publish_site(s, [day1(), day2()], now=NOW)
    out = s.output.dir
    assert out / "feed.xml" in written and out / "feed.atom" in written
    feed = parse(out / "feed.xml")
    assert feed.version == "rss20"
    ids = [e.id for e in feed.entries]
    assert ids == [p.id for p in day2().papers] + [p.id for p in day1().papers]
    first = feed.entries[0]
    assert first.title == hf_papers()[0].title
    assert first.link == hf_papers()[0].url
    assert first.guidislink is False
    assert parsedate_to_datetime(first.published) == dt.datetime(2026, 6, 12, tzinfo=dt.UTC)
    assert parsedate_to_datetime(feed.entries[-1].published).date() == D1
    self_links = [link.href for link in feed.feed.links if link.rel == "self"]
    assert self_links == [f"{BASE}feed.xml"]
    raw = (out / "feed.xml").read_text()
    assert '<guid isPermaLink="false">2606.00467</guid>' in raw


def test_atom_parses_back(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [day2(), day1()], now=NOW)
    feed = parse(s.output.dir / "feed.atom")
    assert feed.version == "atom10"
    assert len(feed.entries) == 11
    assert feed.entries[0].id == "urn:digest:paper:2606.00467"
    assert feed.entries[0].link == hf_papers()[0].url


def test_no_atom_when_disabled(tmp_path: Path) -> None:
    s = site(tmp_path, atom=False)
    written = publish_site(s, [day1()], now=NOW)
    assert not (s.output.dir / "feed.atom").exists()
    assert s.output.dir / "feed.atom" not in written


def test_guids_are_stable_and_yesterday_stays_in_the_feed(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [day1()], now=NOW - dt.timedelta(days=1))
    monday = parse(s.output.dir / "feed.xml")
    publish_site(s, [day1(), day2()], now=NOW)
    tuesday = parse(s.output.dir / "feed.xml")
    monday_ids = [e.id for e in monday.entries]
    assert monday_ids == [e.id for e in tuesday.entries][-len(monday_ids) :]
    # rendering the same input twice gives the same items
    first = (s.output.dir / "feed.xml").read_text()
    publish_site(s, [day2(), day1()], now=NOW)
    assert _items(first) == _items((s.output.dir / "feed.xml").read_text())


def _items(xml: str) -> list[str]:
    return [ET.tostring(item, encoding="unicode") for item in ET.fromstring(xml).iter("item")]


def test_feed_keeps_the_last_feed_days(tmp_path: Path) -> None:
    s = site(tmp_path, feed_days=2)
    old = Day(D1 - dt.timedelta(days=1), (arxiv_papers()[10],))
    publish_site(s, [old, day1(), day2()], now=NOW)
    ids = {e.id for e in parse(s.output.dir / "feed.xml").entries}
    assert arxiv_papers()[10].id not in ids
    assert {p.id for p in day1().papers} <= ids
    assert (s.output.dir / "archive" / f"{old.date}.html").exists()  # the archive keeps every day given


def test_private_feed_has_the_matched_papers_and_why(tmp_path: Path) -> None:
    s = site(tmp_path)
    token = feed_token(b"key", READER.email)
    matched = [match(p, "LLM") for p in hf_papers()[:6] if "LLM" in p.title]
    written = publish_site(s, [day2()], private=[(READER, token, [(D2, matched)])], now=NOW)
    path = private_feed_path(s, token)
    assert path == s.output.dir / "feeds" / f"{token}.xml" and path in written
    feed = parse(path)
    assert [e.id for e in feed.entries] == [m.paper.id for m in matched]
    assert "Why: matched" in feed.entries[0].summary
    assert "<strong>LLM</strong>" in feed.entries[0].summary  # highlighted in the description
    # with no text colour of its own: a dark feed reader would show near-black on black
    assert "strong style" not in html.unescape(path.read_text())
    assert feed.feed.title == "Paper Digest for Ada"
    assert private_feed_url(s, token) == f"{BASE}feeds/{token}.xml"
    assert (s.output.dir / "feeds" / "index.html").exists()  # no folder listing of private feeds


def test_urls_need_a_base_url(tmp_path: Path) -> None:
    s = Settings(output={"dir": tmp_path})  # type: ignore[arg-type]
    assert private_feed_url(s, "t") is None
    publish_site(s, [day1()], now=NOW)
    feed = parse(tmp_path / "feed.xml")
    assert not [link for link in feed.feed.get("links", []) if link.rel == "self"]


def test_hostile_text_keeps_the_xml_well_formed(tmp_path: Path) -> None:
    s = site(tmp_path)
    token = feed_token(b"key", READER.email)
    publish_site(
        s, [Day(D2, (HOSTILE,))], private=[(READER, token, [(D2, [match(HOSTILE, "quotes")])])], now=NOW
    )
    for path in (s.output.dir / "feed.xml", s.output.dir / "feed.atom", private_feed_path(s, token)):
        feed = parse(path)
        entry = feed.entries[0]
        assert entry.title.startswith('<script>alert("x")</script> & "quotes" ]]>')  # text, not markup
        assert "\x00" not in path.read_text() and "\x1b" not in path.read_text()
        assert "<script" not in path.read_text()
        assert "javascript:" not in path.read_text()


def test_empty_history_still_writes_valid_feeds(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [], now=NOW)
    assert parse(s.output.dir / "feed.xml").entries == []
    assert parse(s.output.dir / "feed.atom").entries == []


def test_a_crash_mid_write_leaves_the_old_feed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    s = site(tmp_path)
    publish_site(s, [day1()], now=NOW)
    before = (s.output.dir / "feed.xml").read_bytes()

    def crash(src: object, dst: object) -> None:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(files_module.os, "replace", crash)
    with pytest.raises(RenderError, match=r"feed\.xml: No space left on device"):
        publish_site(s, [day1(), day2()], now=NOW)
    assert (s.output.dir / "feed.xml").read_bytes() == before
    assert not [p for p in s.output.dir.rglob("*") if p.name.endswith(".tmp")]


def test_files_are_world_readable(tmp_path: Path) -> None:
    s = site(tmp_path)
    for path in publish_site(s, [day1()], now=NOW):
        assert os.stat(path).st_mode & 0o644 == 0o644


def test_a_feed_renamed_for_spam_filters_keeps_its_old_address_up_to_date(tmp_path: Path) -> None:
    s = site(tmp_path)
    token = "1a2b3c4d5e6f7a8b9c1d2e3f4a5b6c7d"  # reads as a Bitcoin address: the name gets an "f"
    entries = [(D2, [match(p, "LLM") for p in hf_papers()[:6] if "LLM" in p.title])]
    publish_site(s, [day2()], private=[(READER, token, entries)], now=NOW)
    feeds = s.output.dir / "feeds"
    assert private_feed_path(s, token) == feeds / f"f{token}.xml"
    assert private_feed_url(s, token) == f"{BASE}feeds/f{token}.xml"
    assert not (feeds / f"{token}.xml").exists()  # no old address to keep: none made
    (feeds / f"{token}.xml").write_text("published before the rename")
    publish_site(s, [day2()], private=[(READER, token, entries)], now=NOW)
    assert (feeds / f"{token}.xml").read_bytes() == (feeds / f"f{token}.xml").read_bytes()
    assert parse(feeds / f"{token}.xml").entries
