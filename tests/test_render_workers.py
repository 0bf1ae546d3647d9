"""Render workers forked at the start of a run (`digest.pipeline.render_workers`, issue 20): fed
each message's recipe, they build the messages the run builds, hold none of the run's plan, and
never wait on the run while it waits on them (large recipes one way, large messages the other)."""

from __future__ import annotations

import asyncio
import fcntl
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from pytest_httpserver import HTTPServer
from test_recording import DAY, NOW, planned, setup

from digest.config import load_settings
from digest.deliver import OutgoingMessage
from digest.pipeline.render_pool import RenderPool
from digest.pipeline.render_workers import NICER, Recipe, RenderWorkers
from digest.pipeline.sending import MessageBuilder, jobs_for
from digest.render.email import EmailRenderer

KEY = b"k" * 32


def _pipe_max() -> int:
    """The biggest pipe this machine gives a process without privileges."""
    try:
        return int(Path("/proc/sys/fs/pipe-max-size").read_text())
    except (OSError, ValueError):
        return 0


def same_but_random(message: OutgoingMessage) -> bytes:
    """The message with its random parts (Message-ID, MIME boundaries) made alike."""
    data = message.data.replace(message.message_id.encode(), b"<id>")
    return re.sub(rb"=_[0-9a-f]{24}", b"=_boundary", data)


def test_early_workers_build_the_messages_the_run_builds(
    tmp_path: Path, httpserver: HTTPServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = setup(tmp_path, httpserver)
    monkeypatch.chdir(tmp_path)
    settings = load_settings(config)
    with (
        RenderWorkers(settings, 1) as early,  # forked first, as a run does
        planned(tmp_path, config, httpserver, monkeypatch) as (store, plan),
    ):
        build = MessageBuilder(EmailRenderer(settings), settings, KEY, DAY, NOW)
        jobs = list(jobs_for(plan.sends, build, store))
        assert jobs and all(isinstance(job.build, Recipe) for job in jobs)
        here = [same_but_random(job.build()) for job in jobs]  # type: ignore[arg-type]

        async def rendered(pool: RenderPool) -> list[bytes]:
            return [same_but_random(await job.build()) for job in pool]  # type: ignore[misc]

        with RenderPool(jobs, 1, early=early) as pool:
            there = asyncio.run(rendered(pool))
        assert pool.early is early and not pool.broken  # the early worker built every one
        workers = list(early.procs)
        # behind the run's event loop for the CPU
        assert os.getpriority(os.PRIO_PROCESS, workers[0].pid) == min(19, os.nice(0) + NICER)
        if (
            hasattr(fcntl, "F_GETPIPE_SZ") and _pipe_max() >= 256 * 1024
        ):  # Linux: many ~50 KB messages each, written whole
            sizes = [fcntl.fcntl(c.fileno(), fcntl.F_GETPIPE_SZ) for c in (*early.conns, *early.requests)]
            assert sizes and min(sizes) >= 256 * 1024, sizes
    assert there == here
    assert len(workers) == 1 and not workers[0].is_alive()  # stopped with the run


SMALL = textwrap.dedent(
    """
    import sys
    import psutil
    from digest.config import Settings
    from digest.pipeline.render_workers import RenderWorkers

    with RenderWorkers(Settings(), 1) as early:  # a fresh process, as a run starts
        plan = [(str(n), [n] * 4) for n in range(1_500_000)]  # ~250 MB built after the fork
        assert sum(len(key) for key, _ in plan) > 0  # and walked, as sending does
        print(psutil.Process(early.procs[0].pid).memory_full_info().uss)
    """
)


def test_a_worker_forked_first_holds_none_of_what_the_run_builds_later() -> None:
    done = subprocess.run(
        [sys.executable, "-c", SMALL],
        cwd=Path(__file__).parent.parent,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) < 60 * 1024 * 1024  # a worker forked after it holds a copy of what it touched


BIG = textwrap.dedent(
    """
    import asyncio, datetime as dt, sys
    sys.path.insert(0, sys.argv[1])
    from digest.config import Settings
    from digest.core.models import Digest, Hit, Match, Paper, Subscriber
    from digest.deliver.sender import Job
    from digest.pipeline.render_pool import RenderPool
    from digest.pipeline.render_workers import NICER, Recipe, RenderWorkers
    from digest.pipeline.sending import MessageBuilder
    from digest.render.email import EmailRenderer

    DAY = dt.date(2024, 11, 28)
    NOW = dt.datetime(2024, 11, 28, 7, tzinfo=dt.UTC)
    settings = Settings(smtp={"from": "Paper Digest <digest@example.org>"})
    papers = [Paper(id=f"2411.{n:05d}", title=f"Paper {n} on learning", abstract="learning " * 300)
              for n in range(120)]
    hits = tuple(Hit("learning", "abstract", 9 * i, 9 * i + 8) for i in range(300))
    with RenderWorkers(settings, 1) as early:
        build = MessageBuilder(EmailRenderer(settings), settings, b"k" * 32, DAY, NOW)
        jobs = []
        for n in range(150):  # recipes of ~300 KB, messages of ~200 KB: both pipes fill
            sub = Subscriber(email=f"reader{n}@example.org", keywords=("learning",), max_papers=120)
            digest = Digest(sub, DAY, tuple(Match(p, 1.0, hits) for p in papers), 120)
            jobs.append(Job(DAY, sub, Recipe(build, digest)))

        async def go(pool):
            return [len((await job.build()).data) for job in pool]

        with RenderPool(jobs, 1, early=early) as pool:
            sizes = asyncio.run(go(pool))
        assert not pool.broken and pool.early is early
        print(len(sizes), min(sizes))
    """
)


def test_large_recipes_and_large_messages_never_wait_on_each_other() -> None:
    done = subprocess.run(
        [sys.executable, "-c", BIG, str(Path(__file__).parent.parent)],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stderr
    count, smallest = map(int, done.stdout.split())
    assert count == 150 and smallest > 100_000
