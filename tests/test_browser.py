"""The email and the archive in a real browser (headless Chromium): nothing overflows on a phone
(375 px) or a desktop (800 px). Screenshots land in tests/artifacts/ for a person to look at.

Measuring: headless Chromium keeps a window at least 500 px wide whatever --window-size says when
it dumps the DOM, so each page is measured inside an iframe of the exact width (srcdoc, so the
wrapper may read it), all in one browser run, and a script writes every scrollWidth/innerWidth
into the title for --dump-dom to report.
"""

from __future__ import annotations

import datetime as dt
import email
import email.policy
import html
import re
import shutil
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from test_feeds import NOW, day1, day2, site
from test_render_email import arxiv_papers, golden_digest, links, match, settings

from digest.core.models import Digest, Paper, Subscriber
from digest.deliver.message import build_message
from digest.render.archive import Day, publish_site
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


def measure(
    tmp_path: Path, pages: dict[str, str], widths: tuple[int, ...]
) -> dict[tuple[str, int], tuple[int, int]]:
    """(scrollWidth, innerWidth) of each page laid out `width` px wide: one browser run for all."""
    frames = {f"{name} {width}": (page, width) for name, page in pages.items() for width in widths}
    report = in_frames(
        tmp_path,
        frames,
        'f.dataset.key + " " + w.document.documentElement.scrollWidth + " " + w.innerWidth',
    )
    out = {}
    for entry in report:
        name, width, scroll, inner = entry.split(" ")
        out[(name, int(width))] = (int(scroll), int(inner))
    return out


def in_frames(tmp_path: Path, frames: dict[str, tuple[str, int]], collect: str) -> list[str]:
    """Lay out each page (key -> (html, width px)) in an iframe, all in one browser run, and
    return what the JavaScript expression `collect` gives for each frame `f` (window `w`)."""
    iframes = "".join(
        f'<iframe data-key="{key}" style="width:{width}px;height:900px;border:0" '
        f'srcdoc="{html.escape(page, quote=True)}"></iframe>'
        for key, (page, width) in frames.items()
    )
    wrapper = f"""<!doctype html><html><head><meta charset="utf-8"><title>pending</title></head><body style="margin:0">{iframes}
<script>
// window "load" waits for every iframe: a listener on each frame could miss a fast one.
window.addEventListener("load", function () {{
  var results = [];
  document.querySelectorAll("iframe").forEach(function (f) {{
    var w = f.contentWindow;
    results.push(encodeURIComponent({collect}));
  }});
  document.title = "measured|" + results.join("|");
}});
</script></body></html>"""
    path = tmp_path / "measure.html"
    path.write_text(wrapper, encoding="utf-8")
    dom = run_chromium(
        tmp_path, "--window-size=1000,1000", "--virtual-time-budget=10000", "--dump-dom", path.as_uri()
    )
    found = re.search(r"<title>measured\|([^<]*)</title>", dom)
    assert found, dom[:500]
    return [urllib.parse.unquote(entry) for entry in found.group(1).split("|")]


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


@pytest.fixture(scope="module")
def pages(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The email, the empty email and the archive's index.html, with long unbreakable text."""
    tmp = tmp_path_factory.mktemp("pages")
    renderer = EmailRenderer(settings())
    digest = golden_digest()
    full = Digest(digest.subscriber, digest.date, (match(LONG, "identifier"), *digest.matches), 20)
    (tmp / "email.html").write_text(renderer.render(full, links()).html, encoding="utf-8")
    empty = Digest(digest.subscriber, digest.date, ())
    (tmp / "empty.html").write_text(renderer.render(empty, links()).html, encoding="utf-8")
    s = site(tmp)
    publish_site(s, [day1(), day2(), Day(dt.date(2026, 6, 13), (LONG, *arxiv_papers()[:3]))], now=NOW)
    return {"email": tmp / "email.html", "empty": tmp / "empty.html", "index": s.output.dir / "index.html"}


@pytest.fixture(scope="module")
def widths(
    pages: dict[str, Path], tmp_path_factory: pytest.TempPathFactory
) -> dict[tuple[str, int], tuple[int, int]]:
    texts = {name: path.read_text(encoding="utf-8") for name, path in pages.items()}
    return measure(tmp_path_factory.mktemp("measure"), texts, WIDTHS)


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", ["email", "empty", "index"])
def test_nothing_overflows(widths: dict[tuple[str, int], tuple[int, int]], page: str, width: int) -> None:
    scroll, inner = widths[(page, width)]
    assert inner == width
    assert scroll <= inner, f"{page} is {scroll}px wide in a {inner}px viewport"


@pytest.mark.parametrize("width", WIDTHS)
@pytest.mark.parametrize("page", ["email", "index"])
def test_screenshots_for_people(tmp_path: Path, pages: dict[str, Path], page: str, width: int) -> None:
    screenshot(tmp_path, pages[page], page, width)


def _visible_texts(tmp_path: Path, pages: dict[str, str]) -> dict[str, str]:
    """document.body.innerText of each page as Chromium lays it out, in one browser run."""
    frames = {name: (page, 800) for name, page in pages.items()}
    report = in_frames(tmp_path, frames, 'f.dataset.key + "=" + w.document.body.innerText')
    return {key: value for key, _, value in (entry.partition("=") for entry in report)}


def test_the_html_as_it_arrives_reads_exactly_as_rendered(tmp_path: Path) -> None:
    """The wire message's HTML part (7bit, non-ASCII as character references, long lines broken
    at spaces) shows a reader the same text as the HTML the renderer made."""
    accented = Paper(
        id="2411.88888",
        title="Müller–Schrödinger bounds ≤ ε for naïve LLM agents",
        abstract="Résumé: Jürgen’s “agents” reach 95 % — see Łukasz Kaiser’s 東京 results. " * 8,
        authors=("Jürgen Müller", "Łukasz Kaiser", "Zoë Çelik"),
        categories=("cs.CL",),
        url="https://arxiv.org/abs/2411.88888",
        sources=("arxiv",),
    )
    digest = golden_digest()
    full = Digest(digest.subscriber, digest.date, (match(accented, "agents"), *digest.matches), 20)
    rendered = EmailRenderer(settings()).render(full, links())
    message = build_message(
        rendered, Subscriber(email="ada@example.org"), settings(), date=digest.date, key=b"k" * 32, now=NOW
    )
    parsed = email.message_from_bytes(message.data, policy=email.policy.SMTP)
    html_part = next(p for p in parsed.walk() if p.get_content_type() == "text/html")
    assert html_part["Content-Transfer-Encoding"] == "7bit"
    arrived = html_part.get_content()
    assert arrived.isascii() and "&#252;" in arrived  # the ü of Müller, as a character reference

    texts = _visible_texts(tmp_path, {"rendered": rendered.html, "arrived": arrived})
    assert "Müller–Schrödinger bounds ≤ ε" in texts["rendered"]
    assert texts["arrived"] == texts["rendered"]
