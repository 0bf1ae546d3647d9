"""Team chats ([[channels]]) beside the emails, end to end: a fortnight of real listings through the
CLI, a real local webhook server (Apprise's JSON webhook), a SIGKILL while a post is in flight.

The listings, readers and days are those of tests/test_weekly.py; the channel is one more reader
to the plan (its ledger address `channel:team`), posted to after the emails.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from arxiv_days import new_items, rss_day
from cli_runner import base_env, digest
from pytest_httpserver import HTTPServer
from test_weekly import DAYS, WEEKDAYS, mails, run_day, serve, setup
from webhook_servers import Answer, Request, WebhookServer, accept

from digest.store import Store

ROOT = Path(__file__).resolve().parent.parent
CHANNEL = """
[[channels]]
name = "team"
[channels.profile]
keywords = ["learning", "model"]
max_papers = 200
"""


def posted_days(hook: WebhookServer) -> list[str]:
    """The digest date of each message the channel received, in order."""
    return [re.search(r"\d{4}-\d{2}-\d{2}", title).group() for title, _ in hook.messages()]  # type: ignore[union-attr]


@pytest.mark.e2e
def test_a_fortnight_one_post_a_day_and_none_twice_after_a_kill_mid_post(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    killed = WEEKDAYS[3]  # a Thursday: the run is killed while its post waits for an answer
    with WebhookServer() as hook:
        config = setup(tmp_path, httpserver, CHANNEL)
        env = {"DIGEST_CHANNEL_URLS__TEAM": f"json://{hook.address}/hook"}
        for day in DAYS:
            if day != killed:  # after the kill, the post of unknown fate is reported every run (4)
                run_day(tmp_path, config, httpserver, day, env, ok=(0, 5) if day < killed else (4,))
                continue
            hook.answer = lambda _request: Answer(stall=True)
            serve(httpserver, day)
            before = len(hook.requests)
            proc = subprocess.Popen(
                [sys.executable, "-m", "digest", "run", "--config", str(config), "--date", day.isoformat()],
                cwd=tmp_path, env=base_env(env) | {"PYTHONPATH": str(ROOT)},
                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            )  # fmt: skip
            deadline = time.monotonic() + 60
            while len(hook.requests) == before and time.monotonic() < deadline:
                time.sleep(0.05)
            assert len(hook.requests) == before + 1, proc.communicate(timeout=5)
            os.kill(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)
            hook.answer = accept
            hook.release()
            again = digest("run", "--config", str(config), "--date", day.isoformat(), cwd=tmp_path, env=env)
            assert again.returncode == 4, again.stdout + again.stderr
            # the post caught in flight may have arrived: reported, not posted again
            assert "unknown (maybe delivered, not resent): channel:team" in again.stdout
            assert len(hook.requests) == before + 1
        days = posted_days(hook)
        assert days == [d.isoformat() for d in WEEKDAYS]  # one a weekday (with matches), in order, none twice
        # the channel got what a daily reader with the same profile got, each paper once
        linked = [set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", text)) for _, text in hook.messages()]
        daily = [one for _, one in mails(tmp_path)["daily-ml@example.org"]]
        assert linked == daily
        assert len(mails(tmp_path)["daily-all@example.org"]) == 10  # the kill cost the readers nothing
        with Store.open(tmp_path / "state" / "digest.sqlite3") as store:
            row = store.delivery(killed, "channel:team")
            assert row is not None and row.status == "unknown"


@pytest.mark.e2e
def test_a_channel_that_fails_never_stops_the_emails_and_is_retried(
    tmp_path: Path, httpserver: HTTPServer
) -> None:
    down = True

    def answer(_request: Request) -> Answer:
        return Answer(status=503) if down else Answer()

    with WebhookServer(answer) as hook:
        config = setup(tmp_path, httpserver, CHANNEL)
        env = {"DIGEST_CHANNEL_URLS__TEAM": f"json://{hook.address}/hook"}
        serve(httpserver, DAYS[0])
        first = digest("run", "--config", str(config), "--date", DAYS[0].isoformat(), cwd=tmp_path, env=env)
        assert first.returncode == 4, first.stdout + first.stderr
        assert f"channel team: {DAYS[0]}: not posted, the next run retries" in first.stdout
        assert len(mails(tmp_path)["daily-ml@example.org"]) == 1  # the emails went out all the same
        down = False
        run_day(tmp_path, config, httpserver, DAYS[1], env)
        assert posted_days(hook)[-2:] == [DAYS[0].isoformat(), DAYS[1].isoformat()]  # late, then the day's
        serve(httpserver, DAYS[2])
        missing = digest("run", "--config", str(config), "--date", DAYS[2].isoformat(), cwd=tmp_path)
        assert missing.returncode == 4 and "DIGEST_CHANNEL_URLS__TEAM" in missing.stdout  # no URL: said, kept


@pytest.mark.e2e
def test_a_post_refused_half_way_resumes_where_it_stopped(tmp_path: Path, httpserver: HTTPServer) -> None:
    """60 papers to a Slack-compatible endpoint go in parts; part 2 is refused (502) once: the next
    run posts from part 2 on, and the channel never shows part 1 twice."""
    seen: list[Request] = []

    def answer(request: Request) -> Answer:
        seen.append(request)
        return Answer(status=502) if len(seen) == 2 else Answer()

    config = setup(tmp_path, httpserver, CHANNEL.replace('keywords = ["learning", "model"]', "all = true"))
    (tmp_path / "subscribers.toml").write_text('[[subscribers]]\nemail = "a@example.org"\nall = true\n')
    items = new_items()[:60]
    with WebhookServer(answer) as hook:
        env = {"DIGEST_CHANNEL_URLS__TEAM": f"mmost://{hook.address}/abcdefTOKEN1234"}
        httpserver.clear()
        httpserver.expect_request("/rss/cs").respond_with_data(
            rss_day(DAYS[0], items), content_type="application/rss+xml"
        )
        first = digest("run", "--config", str(config), "--date", DAYS[0].isoformat(), cwd=tmp_path, env=env)
        assert first.returncode == 4 and "part 2 of" in first.stdout, first.stdout
        run_day(tmp_path, config, httpserver, DAYS[1], env)
        heads = [text.split("\n", 1)[0] for _, text in hook.messages()]
        parts = [h for h in heads if DAYS[0].isoformat() in h]
        total = int(re.search(r"\((\d+)/(\d+)\)", parts[0]).group(2))  # type: ignore[union-attr]
        assert total >= 2
        # part 1, part 2 refused, then part 2 again and the rest: every part once on the channel
        assert [re.search(r"\((\d+)/", h).group(1) for h in parts] == [
            "1",
            "2",
            *map(str, range(2, total + 1)),
        ]  # type: ignore[union-attr]
        posted = [
            set(re.findall(r"arxiv\.org/abs/(\d{4}\.\d{4,5})", t))
            for (_, t), r in zip(hook.messages(), seen, strict=True)
            if r is not seen[1]
        ]
        ids_posted = [i for one in posted for i in one]
        assert len(ids_posted) == len(set(ids_posted))  # no paper twice
