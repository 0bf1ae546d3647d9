"""`digest ...` run in the test's own process: what a subprocess gives (exit code, stdout, stderr)
at a fraction of the cost (no interpreter start, no re-import of the pipeline per call).

    result = digest("run", "--config", str(config), cwd=tmp_path)
    assert result.returncode == 0, result.stderr

Each call gets what a fresh process would: the environment without DIGEST_* (plus DIGEST_SECRET
and `env`), `cwd` as the working directory, and a logging setup of its own; all of it is put back
afterwards, as are the SIGTERM/SIGINT handlers. An exception that escapes the CLI comes out as a
traceback on stderr and exit code 1, as Python would print it, so "Traceback" checks still work.

Tests that kill the process or signal it, or need a second process (a lock held elsewhere), must
still use a real subprocess: see `digest_subprocess`.
"""

from __future__ import annotations

import logging
import os
import re
import signal
import subprocess
import sys
import traceback
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from typer.testing import CliRunner

ROOT = Path(__file__).parent.parent
SECRET = "test-secret"
# Loggers the CLI or `digest serve` set a level on: a process would start with none of that.
_LOGGERS = ("", "digest", "httpx", "apscheduler")
# A rich Console decides on colours when created; a run under `pytest -s` on a terminal would
# otherwise see escape codes a piped subprocess never gets.
_ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


@dataclass(frozen=True)
class Result:
    returncode: int
    stdout: str
    stderr: str


def base_env(env: dict[str, str] | None = None, secret: str = SECRET) -> dict[str, str]:
    environ = {k: v for k, v in os.environ.items() if not k.startswith("DIGEST_")}
    environ["DIGEST_SECRET"] = secret
    environ.update(env or {})
    return environ


@contextmanager
def _isolated_logging() -> Iterator[None]:
    loggers = [logging.getLogger(name) for name in _LOGGERS]
    levels = [lg.level for lg in loggers]
    root = logging.getLogger()
    # pytest's capture handlers would make the CLI's basicConfig a no-op, and its log lines
    # would go to the test report instead of the stderr the assertions read.
    handlers = root.handlers[:]
    root.handlers.clear()
    try:
        yield
    finally:
        for handler in root.handlers:
            handler.close()
        root.handlers[:] = handlers
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


@contextmanager
def _kept_signal_handlers() -> Iterator[None]:
    saved = {sig: signal.getsignal(sig) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)


def digest(*args: str, cwd: Path, env: dict[str, str] | None = None, secret: str = SECRET) -> Result:
    """`python -m digest *args` with `cwd` and `env`, in this process."""
    from digest.cli import app

    with pytest.MonkeyPatch.context() as mp, _isolated_logging(), _kept_signal_handlers():
        for name in [k for k in os.environ if k.startswith("DIGEST_")]:
            mp.delenv(name)
        for name, value in base_env(env, secret).items():
            mp.setenv(name, value)
        mp.chdir(cwd)
        result = CliRunner().invoke(app, list(args), prog_name="digest", catch_exceptions=True)
    stderr = result.stderr
    # exc_info holds the SystemExit of every run, also of a clean exit 0 (`exception` is None then)
    if result.exc_info is not None and not issubclass(result.exc_info[0], SystemExit):
        stderr += "".join(traceback.format_exception(*result.exc_info))
    return Result(result.exit_code, _ANSI.sub("", result.stdout), _ANSI.sub("", stderr))


def digest_subprocess(
    *args: str, cwd: Path, env: dict[str, str] | None = None, secret: str = SECRET
) -> subprocess.CompletedProcess[str]:
    """`python -m digest *args` in a process of its own: for what only a process can show."""
    environ = base_env(env, secret)
    environ["PYTHONPATH"] = str(ROOT)  # the source tree under test, installed or not
    return subprocess.run(
        [sys.executable, "-m", "digest", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=120,
    )


def offline_config(folder: Path, sources: str, extra: str = "") -> Path:
    """`folder`/digest.toml for a run against local servers: the state file, `sources` (its
    [[sources]] tables), no retries and no backfill, `public/` with a base URL, the outbox;
    `extra` (more tables) after those."""
    config = folder / "digest.toml"
    config.write_text(
        f"""
[state]
path = "state/digest.sqlite3"
{sources}
[fetch]
retries = 0
backfill_days = 0

[output]
dir = "public"
base_url = "https://digest.example.org/"

[delivery]
transport = "outbox"
{extra}"""
    )
    return config
