"""Private feeds written by forked workers (`digest.pipeline.publish_pool`): the same files, byte
for byte, and the same list of paths as writing them in the run's process; a worker's error
raised as itself; a worker that dies costs only time; the run's state never crosses the fork.

The state comes from two real runs of the demo's sample (offline) for readers drawn here, each
with a private feed but a few, some weekly (their days held); the thresholds are lowered so that
a few dozen feeds make several blocks for two workers.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import json
import logging
import multiprocessing
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from digest import pipeline
from digest.config import Settings
from digest.core.errors import RenderError, StoreError
from digest.core.tokens import feed_token
from digest.demo import DAYS, SampleTransport, demo_settings
from digest.pipeline import publish_pool, publishing
from digest.profiles import load_subscribers
from digest.render import archive
from digest.render.archive import private_feed_name
from digest.store import Store

ROOT = Path(__file__).resolve().parent.parent
NOW = dt.datetime(2026, 6, 12, 9, 30, tzinfo=dt.UTC)
KEY = b"k" * 32
KEYWORDS = [
    "language model", "agent", "diffusion", "vision", "reinforcement learning", "graph",
    "benchmark", "robot", "attention", "reasoning", "segmentation", "retrieval",
]  # fmt: skip
READERS = 36


def _profiles(path: Path) -> Path:
    tables = []
    for n in range(READERS):
        words = [KEYWORDS[n % len(KEYWORDS)], KEYWORDS[(n * 5 + 3) % len(KEYWORDS)]]
        lines = [f'email = "r{n:03d}@example.org"', f"keywords = {json.dumps(words)}"]
        if n % 9 != 8:
            lines.append("feed = true")
        if n % 7 == 3:  # held on both sample days (Thursday, Friday) for the week's digest
            lines += ['cadence = "weekly"', 'weekday = "monday"']
        tables.append("[[subscribers]]\n" + "\n".join(lines))
    path.write_text("\n\n".join(tables) + "\n")
    return path


@pytest.fixture
def ran(tmp_path: Path) -> tuple[Settings, Path]:
    """Settings and subscribers file of a state two real runs left (emails to the outbox)."""
    settings = demo_settings(tmp_path / "out")
    profiles = _profiles(tmp_path / "subscribers.toml")
    for index, day in enumerate(DAYS):
        now = dt.datetime.combine(day, dt.time(7, 0), tzinfo=dt.UTC)
        summary = pipeline.run(
            settings, subscribers_path=profiles, date=day, now=now, transport=SampleTransport(index)
        )
        assert summary.publish_error is None
    return settings, profiles


@pytest.fixture
def workers(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Two workers for a few dozen feeds, four to a block; the blocks the workers wrote."""
    monkeypatch.setattr(publish_pool, "PARALLEL_AT", 1)
    monkeypatch.setattr(publish_pool, "worker_count", lambda: 2)
    monkeypatch.setattr(publishing, "READERS_PER_QUERY", 4)
    by_workers: list[int] = []
    run = publish_pool._Pool.run

    def noted(pool: Any) -> dict[int, list[Path]]:
        done = run(pool)
        by_workers.extend(done)
        return done

    monkeypatch.setattr(publish_pool._Pool, "run", noted)
    return by_workers


def _publish(settings: Settings, profiles: Path, out: Path, *, serial: bool = False) -> list[str]:
    """Publish the last day into `out`; the paths written, relative to it."""
    output = settings.output.model_copy(update={"dir": out})
    settings = settings.model_copy(update={"output": output})
    subscribers = load_subscribers(profiles, source_names=["hf", "arxiv"], hf_sources=["hf"])
    at = publish_pool.PARALLEL_AT
    publish_pool.PARALLEL_AT = 10**9 if serial else at
    try:
        with Store.from_config(settings.state) as store:
            written = publishing.publish(settings, store, KEY, subscribers, DAYS[1], NOW)
            assert store.deliveries(DAYS[1])  # the run's own connection still works
    finally:
        publish_pool.PARALLEL_AT = at
    return [str(p.relative_to(out)) for p in written]


def _files(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_workers_write_the_feeds_the_run_writes_byte_for_byte(
    ran: tuple[Settings, Path], workers: list[int], tmp_path: Path
) -> None:
    settings, profiles = ran
    serial = _publish(settings, profiles, tmp_path / "serial", serial=True)
    assert workers == []
    parallel = _publish(settings, profiles, tmp_path / "parallel")
    feeds = READERS - READERS // 9
    assert sorted(workers) == list(range((feeds + 3) // 4))  # every block, by the workers
    assert parallel == serial
    assert sum(1 for p in serial if p.startswith("feeds/") and p.endswith(".xml")) == feeds
    assert _files(tmp_path / "parallel") == _files(tmp_path / "serial")
    assert multiprocessing.active_children() == []


def test_the_batched_history_is_each_reader_s(ran: tuple[Settings, Path]) -> None:
    settings, profiles = ran
    emails = [s.email for s in load_subscribers(profiles)] + ["nobody@example.org"]
    with Store.from_config(settings.state) as store:
        batched = store.matched_histories(emails, list(DAYS))
        held = {e for e, days in batched.items() for d in days if not store.delivery(d, e)}
        assert held, "a weekly reader's held days are in its history"
        assert "nobody@example.org" not in batched
        for email in emails:
            assert batched.get(email, {}) == store.matched_history(email, list(DAYS)), email
        assert store.matched_histories([], list(DAYS)) == {}


def test_a_worker_s_error_is_raised_as_writing_here_raises_it(
    ran: tuple[Settings, Path], workers: list[int], tmp_path: Path
) -> None:
    settings, profiles = ran
    _publish(settings, profiles, tmp_path / "good", serial=True)
    feeds = sorted((tmp_path / "good" / "feeds").glob("*.xml"))
    errors = []
    for name, serial in (("serial", True), ("parallel", False)):
        out = tmp_path / name
        (out / "feeds" / feeds[len(feeds) // 2].name).mkdir(parents=True)  # a feed cannot go there
        with pytest.raises(RenderError) as info:
            _publish(settings, profiles, out, serial=serial)
        errors.append((type(info.value), str(info.value).replace(str(out), "OUT")))
    assert errors[0] == errors[1]
    assert "writing OUT/feeds/" in errors[1][1]
    assert multiprocessing.active_children() == []


def test_a_worker_that_dies_costs_only_time(
    ran: tuple[Settings, Path],
    workers: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings, profiles = ran
    serial = _publish(settings, profiles, tmp_path / "serial", serial=True)
    # the second feed of the first block, which a worker always gets (this process writes blocks
    # too, from the first no worker holds)
    readers = [
        s for s in load_subscribers(profiles, source_names=["hf", "arxiv"], hf_sources=["hf"]) if s.feed
    ]
    victim = Path(private_feed_name(feed_token(KEY, readers[1].email))).stem
    run, write = os.getpid(), archive._write_private_feed

    def killed_at_the_victim(writer: Any, settings: Settings, env: Any, feed: Any, *rest: Any) -> None:
        if os.getpid() != run and feed[1] in victim:  # in a worker, half-way through its block
            os.kill(os.getpid(), signal.SIGKILL)
        write(writer, settings, env, feed, *rest)

    monkeypatch.setattr(archive, "_write_private_feed", killed_at_the_victim)
    with caplog.at_level(logging.WARNING, logger="digest"):
        parallel = _publish(settings, profiles, tmp_path / "parallel")
    assert parallel == serial
    assert _files(tmp_path / "parallel") == _files(tmp_path / "serial")
    assert "a worker stopped (exit code -9); its feeds are written here" in caplog.text
    assert workers  # the other worker went on


def test_without_workers_every_feed_is_written_here(
    ran: tuple[Settings, Path],
    workers: list[int],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """No `fork` (Windows), or workers that cannot open the state (a server out of connections)."""
    settings, profiles = ran
    serial = _publish(settings, profiles, tmp_path / "serial", serial=True)

    def no_connection(self: Any) -> None:
        raise StoreError("postgresql://db/digest: too many connections")

    monkeypatch.setattr(publishing._PrivateFeeds, "reopen", no_connection)
    with caplog.at_level(logging.WARNING, logger="digest"):
        assert _publish(settings, profiles, tmp_path / "no state") == serial
    assert "could not open the state (postgresql://db/digest: too many connections)" in caplog.text
    monkeypatch.setattr(multiprocessing, "get_all_start_methods", lambda: ["spawn"])
    assert _publish(settings, profiles, tmp_path / "no fork") == serial
    assert _files(tmp_path / "no state") == _files(tmp_path / "no fork") == _files(tmp_path / "serial")


SCRIPT = """
import sys, time
from pathlib import Path
from digest.pipeline import publish_pool, publishing
from digest.profiles import load_subscribers
from digest.render import archive
from digest.store import Store
from digest.demo import DAYS, demo_settings
import datetime as dt

publish_pool.PARALLEL_AT, publishing.READERS_PER_QUERY = 1, 2
publish_pool.worker_count = lambda: 2
write = archive._write_private_feed
def slowly(*args):
    time.sleep(0.2)
    write(*args)
archive._write_private_feed = slowly
settings = demo_settings(Path(sys.argv[1]))
subscribers = load_subscribers(Path(sys.argv[2]), source_names=["hf", "arxiv"], hf_sources=["hf"])
with Store.from_config(settings.state) as store, store.lock():
    publishing.publish(settings, store, b"k" * 32, subscribers, DAYS[1], dt.datetime.now(dt.UTC))
"""


@pytest.mark.e2e
@pytest.mark.sqlite_only
def test_workers_of_a_killed_run_hold_no_lock_and_exit(ran: tuple[Settings, Path], tmp_path: Path) -> None:
    settings, profiles = ran
    script = tmp_path / "publish.py"
    script.write_text(SCRIPT)
    run = subprocess.Popen([sys.executable, str(script), str(tmp_path / "out"), str(profiles)], cwd=ROOT)
    parent = psutil.Process(run.pid)
    deadline = time.monotonic() + 60
    lock = settings.state.path.with_name(settings.state.path.name + ".lock")

    def started(children: list[psutil.Process]) -> bool:
        """Past the fork's first moments, when a worker still has the run's descriptors."""
        with contextlib.suppress(psutil.Error):
            return all(str(lock) not in {f.path for f in child.open_files()} for child in children)
        return False

    while len(children := parent.children()) < 2 or not started(children):
        assert run.poll() is None and time.monotonic() < deadline, "no workers started"
        time.sleep(0.05)
    run.kill()
    run.wait()
    fd = os.open(lock, os.O_RDWR)
    try:  # the next run may start at once, workers or not
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    finally:
        os.close(fd)
    _, alive = psutil.wait_procs(children, timeout=10)
    assert alive == []
