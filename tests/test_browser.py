"""The email and the archive in a real browser (headless Chromium): nothing overflows on a phone
(375 px) or a desktop (800 px). Screenshots land in tests/artifacts/ for a person to look at.

Measuring: headless Chromium keeps a window at least 500 px wide whatever --window-size says when
it dumps the DOM, so the page is measured inside an iframe of the exact width (srcdoc, so the
wrapper may read it), and the script writes scrollWidth/innerWidth into the title for --dump-dom.
"""

from __future__ import annotations

import datetime as dt
import html
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from test_feeds import NOW, day1, day2, site
from test_render_email import arxiv_papers, golden_digest, links, match, settings

from digest.models import Digest, Paper
from digest.render.archive import publish_site
from digest.render.email import EmailRenderer

pytestmark = pytest.mark.browser

ARTIFACTS = Path(__file__).parent / "artifacts"
WIDTHS = (375, 800)


def chromium() -> str:
    for name in ("chromium", "chromium-browser", "google-chrome", "chrome"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("headless Chromium is not installed (apt-get install chromium); CI installs it")


def run_chromium(tmp_path: Path, *args: str) -> str:
    cmd = [
        chromium(),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--hide-scrollbars",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        *args,
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def measure(tmp_path: Path, page: str, width: int) -> tuple[int, int]:
    """(scrollWidth, innerWidth) of `page` laid out in a viewport `width` px wide."""
    wrapper = f"""<!doctype html><html><head><title>pending</title></head>
<body style="margin:0"><iframe id="f" style="width:{width}px;height:900px;border:0"
 srcdoc="{html.escape(page, quote=True)}"></iframe>
<script>
document.getElementById("f").addEventListener("load", function () {{
  var w = this.contentWindow;
  document.title = "measured " + w.document.documentElement.scrollWidth + " " + w.innerWidth;
}});
</script></body></html>"""
    path = tmp_path / f"measure-{width}.html"
    path.write_text(wrapper, encoding="utf-8")
    dom = run_chromium(tmp_path, "--window-size=1000,1000", "--virtual-time-budget=5000", "--dump-dom", path.as_uri())
    found = re.search(r"<title>measured (\d+) (\d+)</title>", dom)
    assert found, dom[:500]
    return int(found.group(1)), int(found.group(2))


def screenshot(tmp_path: Path, page: Path, name: str, width: int, height: int = 1400) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    out = ARTIFACTS / f"{name}-{width}.png"
    run_chromium(tmp_path, f"--window-size={width},{height}", f"--screenshot={out}", page.as_uri())
    assert out.stat().st_size > 1000
    return out


LONG = Paper(
    id="2411.99999",
    title="A_title_with_an_unbreakable_identifier_" * 3 + " and a very long URL in it",
    abstract="See https://example.org/" + "very-long-path-segment/" * 12 + " for the code. " + "Text " * 60,
    authors=tuple(f"Author Number {i}" for i in range(12)),
    categories=("cs.CL", "cs.LG", "cs.AI", "stat.ML"),
    url="https://arxiv.org/abs/2411.99999",
    pdf_url="https://arxiv.org/pdf/2411.99999",
    github_url="https://github.com/" + "x" * 80,
    sources=("hf", "arxiv"),
    upvotes=123,
    comments=45,
)


@pytest.mark.parametrize("width", WIDTHS)
def test_email_fits_phone_and_desktop(tmp_path: Path, width: int) -> None:
    digest = golden_digest()
    digest = Digest(digest.subscriber, digest.date, (match(LONG, "identifier"), *digest.matches), 20)
    page = EmailRenderer(settings()).render(digest, links()).html
    path = tmp_path / "email.html"
    path.write_text(page, encoding="utf-8")
    scroll, inner = measure(tmp_path, page, width)
    assert inner == width
    assert scroll <= inner, f"the email is {scroll}px wide in a {inner}px viewport"
    screenshot(tmp_path, path, "email", width)


def test_empty_email_fits_a_phone(tmp_path: Path) -> None:
    digest = golden_digest()
    page = EmailRenderer(settings()).render(Digest(digest.subscriber, digest.date, ()), links()).html
    scroll, inner = measure(tmp_path, page, 375)
    assert scroll <= inner


@pytest.mark.parametrize("width", WIDTHS)
def test_archive_page_fits(tmp_path: Path, width: int) -> None:
    s = site(tmp_path)
    publish_site(s, [day1(), day2(), _day_with(LONG)], now=NOW)
    index = s.output.dir / "index.html"
    scroll, inner = measure(tmp_path, index.read_text(encoding="utf-8"), width)
    assert scroll <= inner, f"index.html is {scroll}px wide in a {inner}px viewport"
    screenshot(tmp_path, index, "index", width)


def _day_with(paper: Paper):  # type: ignore[no-untyped-def]
    from digest.render.archive import Day

    return Day(dt.date(2026, 6, 13), (paper, *arxiv_papers()[:3]))
