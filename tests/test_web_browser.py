"""The reader's pages in a real headless Chromium (Debian's /usr/bin/chromium, driven by
Playwright) against a real `digest web` process (and `digest serve`'s smoke test), a real aiosmtpd and real `digest run`s: subscribe
with a preview, bad input shown inline, confirm from the received mail, the next run sends to the
new reader, manage and edit, one-click unsubscribe POSTed with httpx as a mail provider does it,
then no more mail, and undo. Each page is screenshotted at 375 and 1280 px into tests/artifacts/
(web-*.png) for a person to look at, and checked for horizontal overflow.

The runs are subprocesses too: Playwright's sync API keeps an event loop in this thread, where
the in-process CLI's asyncio.run() could not start another.
"""

from __future__ import annotations

import contextlib
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from cli_runner import ROOT, base_env, digest, digest_subprocess
from pytest_httpserver import HTTPServer
from smtp_servers import AcceptAll, free_port, smtp_server
from test_run import serve_listings, write_config

playwright_api = pytest.importorskip("playwright.sync_api")

pytestmark = [pytest.mark.browser, pytest.mark.e2e, pytest.mark.slow]

ARTIFACTS = Path(__file__).parent / "artifacts"
DAY1, DAY2 = "2026-06-11", "2026-06-12"
WIDTHS = (375, 1280)
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def chromium() -> str:
    found = shutil.which("chromium") or shutil.which("chromium-browser")
    if not found:
        pytest.skip("headless Chromium is not installed (apt-get install chromium); CI installs it")
    return found


def wait_for_port(port: int, proc: subprocess.Popen[str], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"digest exited {proc.returncode}: {proc.stderr.read() if proc.stderr else ''}"
            )
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
            return
        time.sleep(0.1)
    raise AssertionError(f"nothing listens on {port}")


@contextlib.contextmanager
def digest_process(command: str, config: Path, cwd: Path, port: int) -> Iterator[subprocess.Popen[str]]:
    environ = base_env()
    environ["PYTHONPATH"] = str(ROOT)
    proc = subprocess.Popen(
        [sys.executable, "-m", "digest", command, "--config", str(config)],
        cwd=cwd,
        env=environ,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for_port(port, proc)
        yield proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def shoot(page, name: str) -> None:
    """Both widths of the page as it is, and nothing wider than the window."""
    ARTIFACTS.mkdir(exist_ok=True)
    for width in WIDTHS:
        page.set_viewport_size({"width": width, "height": 900})
        page.screenshot(path=str(ARTIFACTS / f"web-{name}-{width}.png"), full_page=True)
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{name} at {width} px is {overflow} px too wide"
    page.set_viewport_size({"width": 1280, "height": 900})


def mails_to(handler: AcceptAll, address: str, subject: str) -> list:
    return [m for m in handler.messages() if address in str(m["To"]).lower() and subject in str(m["Subject"])]


def link_in(message, pattern: str) -> str:
    text = message.get_body(("plain",)).get_content()
    found = re.search(pattern, text)
    assert found, text
    return found.group(0)


def setup_site(tmp_path: Path, httpserver: HTTPServer, smtp_port: int, web_port: int) -> Path:
    serve_listings(httpserver)
    config = write_config(tmp_path, httpserver, smtp_port)
    base = f"http://127.0.0.1:{web_port}/"
    # manage links expire [web] manage_days after the digest's date, and these dates are long past
    web = f'[web]\nlisten = "127.0.0.1:{web_port}"\nbase_url = "{base}"\nmanage_days = 3660\n'
    config.write_text(config.read_text() + "\n" + web)
    fetched = digest("fetch", "--config", str(config), "--date", DAY1, cwd=tmp_path)
    assert fetched.returncode in (0, 5), fetched.stderr
    return config


def subscribe_in_browser(page, base: str) -> None:
    page.goto(f"{base}subscribe")
    shoot(page, "subscribe")
    page.fill("#keywords", "model\nLLM")
    page.click("button[value=preview]")
    page.wait_for_selector("#preview")
    assert re.search(r"[1-9]\d* of \d+ new papers", page.inner_text("#preview"))
    shoot(page, "subscribe-preview")
    page.fill("#email", "lin@example")
    page.fill("#query", "agents AND (")
    page.click("button[value=subscribe]")
    problems = page.inner_text("main")
    assert "email: 'lin@example' is not a valid address" in problems
    assert "query: unexpected end of query" in problems
    assert page.input_value("#keywords") == "model\nLLM"  # what was typed stays
    shoot(page, "subscribe-errors")
    page.fill("#email", "lin@example.org")
    page.fill("#query", "")
    page.click("button[value=subscribe]")
    assert "Check your inbox" in page.inner_text("h1")
    shoot(page, "check-inbox")


def test_a_reader_subscribes_confirms_gets_mail_manages_and_unsubscribes(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    chromium()
    web_port = free_port()
    base = f"http://127.0.0.1:{web_port}/"
    with (
        smtp_server(AcceptAll()) as (_host, smtp_port, handler),
        playwright_api.sync_playwright() as pw,
    ):
        config = setup_site(tmp_path, httpserver, smtp_port, web_port)
        browser = pw.chromium.launch(executable_path=chromium(), args=CHROMIUM_ARGS)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        with digest_process("web", config, tmp_path, web_port):
            subscribe_in_browser(page, base)
            assert handler.wait_for(1)
            assert mails_to(handler, "lin@example.org", "new papers") == []  # nothing before confirming
            confirm_link = link_in(
                mails_to(handler, "lin@example.org", "Confirm")[0], r"http://\S+/confirm\?token=\S+"
            )
            page.goto(confirm_link)
            shoot(page, "confirm")
            page.click("button[value=confirm]")
            assert "You are subscribed" in page.inner_text("h1")
            shoot(page, "subscribed")

            ran = digest_subprocess("run", "--config", str(config), "--date", DAY1, cwd=tmp_path)
            assert ran.returncode in (0, 5), ran.stderr + ran.stdout
            [first] = mails_to(handler, "lin@example.org", "new papers")
            assert str(first["List-Unsubscribe-Post"]) == "List-Unsubscribe=One-Click"
            one_click = re.search(
                r"<(http://[^>]+/unsubscribe\?token=[^>]+)>", str(first["List-Unsubscribe"])
            )
            assert one_click

            page.goto(link_in(first, r"http://\S+/manage\?token=\S+"))
            assert "model" in page.input_value("#keywords")
            shoot(page, "manage")
            page.fill("#keywords", "model\nLLM\nagents")
            page.click("button[value=preview]")
            page.wait_for_selector("#preview")
            page.click("button[value=save]")
            assert "Saved" in page.inner_text(".notice")
            shoot(page, "manage-saved")

            answer = httpx.post(
                one_click.group(1),
                content=b"List-Unsubscribe=One-Click",
                headers={"content-type": "application/x-www-form-urlencoded"},
            )
            assert answer.status_code == 200
            ran = digest_subprocess("run", "--config", str(config), "--date", DAY2, cwd=tmp_path)
            assert ran.returncode in (0, 4, 5), ran.stderr + ran.stdout
            assert len(mails_to(handler, "lin@example.org", "new papers")) == 1  # no more mail
            assert mails_to(handler, "ada@example.org", "new papers")  # the others still get theirs

            page.goto(one_click.group(1))
            assert "You are unsubscribed" in page.inner_text("h1")
            shoot(page, "unsubscribed")
            page.click("button[value=undo]")
            assert "Welcome back" in page.inner_text("h1")
            shoot(page, "welcome-back")
            again = digest_subprocess("run", "--config", str(config), "--date", DAY2, cwd=tmp_path)
            assert again.returncode in (0, 4, 5), again.stderr
            assert len(mails_to(handler, "lin@example.org", "new papers")) == 2  # taken back
        browser.close()


def test_digest_serve_serves_the_pages_beside_the_scheduler(tmp_path: Path, httpserver: HTTPServer) -> None:
    web_port = free_port()
    with smtp_server(AcceptAll()) as (_host, smtp_port, _handler):
        config = setup_site(tmp_path, httpserver, smtp_port, web_port)
        # a run time that is not today, so that the scheduler does not catch up a run meanwhile
        config.write_text(config.read_text() + '\n[schedule]\ncron = "0 0 1 1 *"\n')
        with digest_process("serve", config, tmp_path, web_port) as proc:
            page = httpx.get(f"http://127.0.0.1:{web_port}/subscribe")
            assert page.status_code == 200 and "Subscribe" in page.text
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=30) == 0
