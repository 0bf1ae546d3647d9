"""bench/scale.py still finds every stage it times (issue 20, "Scale").

The harness wraps the stage functions where `digest.pipeline.daily` calls them; a renamed or
moved stage would make it fail, or time nothing. This runs it at a few readers without SMTP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
pytestmark = pytest.mark.e2e


def test_the_scale_harness_times_every_stage(tmp_path: Path) -> None:
    out = tmp_path / "scale.json"
    done = subprocess.run(
        [sys.executable, str(ROOT / "bench" / "scale.py"), "--subscribers", "40", "--no-smtp",
         "--keep", str(tmp_path), "--json", str(out)],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    (result,) = json.loads(out.read_text())
    assert result["subscribers"] == 40 and result["sent"] > 0
    assert result["private_feeds"] > 0  # the scenario's feed readers got their files
    timed = {label for label, t in result["stages"].items() if t["calls"] >= 1}
    assert {"load profiles", "fetch+parse+store", "match (plan)", "record plan", "send", "publish"} <= timed
    assert "| **whole run** |" in done.stdout


def test_the_bench_sink_answers_like_a_relay_when_asked() -> None:
    """bench/runners.py --relay-ms: each message's 250 comes that much later (a relay writing its
    queue), which is what several runners' extra connections are measured against."""
    import asyncio
    import time
    from email.message import EmailMessage

    import aiosmtplib

    from bench.smtp_sink import Sink

    async def send_two(host: str, port: int) -> float:
        message = EmailMessage()
        message["From"], message["To"], message["Subject"] = "a@example.org", "b@example.org", "relay"
        message.set_content("body")
        start = time.perf_counter()
        async with aiosmtplib.SMTP(hostname=host, port=port, use_tls=False, start_tls=False) as smtp:
            await smtp.send_message(message)
            await smtp.send_message(message)
        return time.perf_counter() - start

    with Sink(delay_ms=400) as sink:
        took = asyncio.run(send_two(sink.host, sink.port))
        assert sink.count() == (2, 1)
    assert took >= 0.8  # two answers, each 400 ms late, one after the other on one connection
