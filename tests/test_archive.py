"""The web archive: index.html is the latest day, one page per day, navigation, feed links."""

from __future__ import annotations

import datetime as dt
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import unquote

from test_feeds import D1, D2, NOW, day1, day2, site
from test_render_email import HOSTILE, check_golden, visible_text

from digest.config import Settings
from digest.core.models import Paper
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
    # every relative link points at a file that exists, and a jump link at an id of its page
    for path in (out / "index.html", out / "archive/2026-06-11.html"):
        for link in links_in(path):
            href = link.get("href") or ""
            if href and "://" not in href:
                file, _, fragment = href.partition("#")
                target = (path.parent / file).resolve() if file else path
                assert target.exists(), (path, href)
                if fragment:
                    assert f'id="{unquote(fragment)}"' in target.read_text(), (path, href)


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


# -- a bounded archive (issue 15) -------------------------------------------------------------------
def _all_arxiv() -> tuple[Paper, ...]:
    from conftest import ARXIV_ALL

    from digest.sources.arxiv import parse_arxiv_rss

    return tuple(p for p in parse_arxiv_rss(ARXIV_ALL.read_bytes(), "arxiv") if not p.is_replacement)


def test_a_day_of_all_arxiv_is_a_small_page_with_the_most_matched_in_full(tmp_path: Path) -> None:
    from digest.render.archive import FULL_PAPERS

    papers = _all_arxiv()
    assert len(papers) > 900
    matched = {p.id: 1 for p in papers[-150:]} | {p.id: 5 for p in papers[-20:]}  # the most matched
    s = site(tmp_path)
    publish_site(s, [Day(D2, papers)], now=NOW, matched={D2: matched})
    page = (s.output.dir / "archive/2026-06-12.html").read_text()
    assert len(page.encode()) < 700_000  # 2.4 MB with every paper in full
    articles = page.count("<article ")
    assert articles == FULL_PAPERS
    for p in papers[-20:]:
        assert f'<article id="{p.id}"' in page
    # the others are one line each, linked, and every paper of the day is on the page
    assert f"<h2>{len(papers) - FULL_PAPERS} more</h2>" in page
    assert f'<li id="{papers[0].id}"><a href="{papers[0].url}">' in page
    assert all(f'id="{p.id}"' in page for p in papers)


def test_a_short_day_shows_every_paper_in_full(tmp_path: Path) -> None:
    s = site(tmp_path)
    publish_site(s, [day1(), day2()], now=NOW)
    index = (s.output.dir / "index.html").read_text()
    assert index.count("<article ") == len(day2().papers)
    assert 'class="others"' not in index


def test_day_pages_older_than_archive_days_are_removed_and_the_index_lists_what_is_left(
    tmp_path: Path,
) -> None:
    s = site(tmp_path, feed_days=2, archive_days=30)
    archive = s.output.dir / "archive"
    archive.mkdir(parents=True)
    kept, gone = dt.date(2026, 5, 20), dt.date(2026, 5, 10)  # 23 and 33 days before D2
    for old in (kept, gone):
        (archive / f"{old}.html").write_text("<!doctype html><title>an earlier run's page</title>")
    (archive / "notes.html").write_text("not a day page")  # left alone
    publish_site(s, [day1(), day2()], now=NOW)
    assert (archive / f"{kept}.html").exists()
    assert not (archive / f"{gone}.html").exists()
    assert (archive / "notes.html").exists()
    index = archive / "index.html"
    hrefs = [link["href"] for link in links_in(index) if link["tag"] == "a"]
    assert [h for h in hrefs if h and h.endswith(".html") and h[0].isdigit()] == [
        "2026-06-12.html",
        "2026-06-11.html",
        f"{kept}.html",
    ]
    for href in hrefs:  # every link of the index points at a page that exists
        assert href is not None and (archive / href).resolve().exists(), href
    day_page = links_in(archive / "2026-06-12.html")
    assert any(link.get("rel") == "index" and link["href"] == "../archive/index.html" for link in day_page)


def test_archive_days_zero_keeps_every_page(tmp_path: Path) -> None:
    s = site(tmp_path, archive_days=0)
    archive = s.output.dir / "archive"
    archive.mkdir(parents=True)
    (archive / "2020-01-01.html").write_text("old")
    publish_site(s, [day2()], now=NOW)
    assert (archive / "2020-01-01.html").exists()
    assert "2020-01-01.html" in (archive / "index.html").read_text()
