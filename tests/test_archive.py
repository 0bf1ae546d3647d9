"""The web archive: index.html is the latest day, one page per day, navigation, feed links."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path

from test_feeds import D1, D2, NOW, day1, day2, site
from test_render_email import HOSTILE, check_golden, visible_text

from digest.config import Settings
from digest.render import archive_url
from digest.render.archive import Day, publish_site


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.links: list[dict[str, str | None]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("a", "link"):
            self.links.append({"tag": tag, **dict(attrs)})


def links_in(path: Path) -> list[dict[str, str | None]]:
    parser = _Links()
    parser.feed(path.read_text())
    return parser.links


def test_index_is_the_latest_day_and_every_day_has_a_page(tmp_path: Path) -> None:
    s = site(tmp_path)
    written = publish_site(s, [day2(), day1()], now=NOW)
    out = s.output.dir
    for path in (out / "index.html", out / "archive/2026-06-11.html", out / "archive/2026-06-12.html"):
        assert path in written
    index = (out / "index.html").read_text()
    assert "Friday, 12 June 2026" in index
    assert all(p.title.split(":")[0] in index for p in day2().papers)
    assert "Thursday, 11 June 2026" in (out / "archive/2026-06-11.html").read_text()


def test_navigation_between_days_and_feed_links(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [day1(), day2()], now=NOW)
    out = s.output.dir
    first = links_in(out / "archive/2026-06-11.html")
    assert any(link.get("rel") == "next" and link["href"] == "../archive/2026-06-12.html" for link in first)
    assert not any(link.get("rel") == "prev" for link in first)
    index = links_in(out / "index.html")
    assert any(link.get("rel") == "prev" and link["href"] == "archive/2026-06-11.html" for link in index)
    alternates = {link["type"]: link["href"] for link in index if link.get("rel") == "alternate"}
    assert alternates == {"application/rss+xml": "feed.xml", "application/atom+xml": "feed.atom"}
    page = {link["type"]: link["href"] for link in first if link.get("rel") == "alternate"}
    assert page["application/rss+xml"] == "../feed.xml"
    # every relative link points at a file that exists
    for path in (out / "index.html", out / "archive/2026-06-11.html"):
        for link in links_in(path):
            href = link.get("href") or ""
            if href and "://" not in href:
                assert (path.parent / href).resolve().exists(), (path, href)


def test_archive_url() -> None:
    assert (
        archive_url(Settings(output={"base_url": "https://x.org/d"}), D2)
        == "https://x.org/d/archive/2026-06-12.html"
    )  # type: ignore[arg-type]
    assert archive_url(Settings(), D1) is None


def test_hostile_text_is_escaped(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [Day(D2, (HOSTILE,))], now=NOW)
    html = (s.output.dir / "index.html").read_text()
    assert "<script" not in html and "<img" not in html and "javascript:" not in html
    assert "&lt;script&gt;" in html and "\x00" not in html


def test_empty_day(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [Day(D2, ())], now=NOW)
    assert "Nothing new on this day" in (s.output.dir / "index.html").read_text()


def test_golden_day_page(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [day1(), day2()], now=NOW)
    check_golden("day.html.txt", visible_text((s.output.dir / "archive/2026-06-12.html").read_text()))


def test_now_only_shows_in_the_footer(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [day1()], now=NOW)
    first = (s.output.dir / "index.html").read_text()
    publish_site(s, [day1()], now=NOW + dt.timedelta(hours=1))
    second = (s.output.dir / "index.html").read_text()
    assert [a for a, b in zip(first.splitlines(), second.splitlines(), strict=True) if a != b] == [
        "  <p>Generated 2026-06-12 07:30 UTC.</p>"
    ]
