"""What every `digest` command shares: the Typer app, the consoles, the common options, and how a
DigestError becomes one line on stderr (every line, for a ConfigError with several problems) and
a non-zero exit; `-v` adds the traceback."""

from __future__ import annotations

import datetime as dt
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from digest.core.errors import ConfigError, DigestError
from digest.core.progress import LogProgress, RichProgress
from digest.web.cli import ConfigOpt as ConfigOpt  # `--config`: defined with the web side's commands

app = typer.Typer(
    help="A daily research-paper digest: fetch listings, find what is new, match reader profiles, email it.\n\n"
    "Start with `digest demo`, then see docs/reference.md.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
verbose = {"on": False}  # -v: tracebacks and debug logs

SubscribersOpt = Annotated[
    Path | None,
    typer.Option(
        "--subscribers",
        "-s",
        help="subscribers.toml (else [subscribers] path, else ./subscribers.toml).",
        show_default=False,
    ),
]
DateOpt = Annotated[
    str | None,
    typer.Option(
        "--date",
        "-d",
        help="Run date YYYY-MM-DD (default: today in [schedule] timezone).",
        show_default=False,
    ),
]


def parse_date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--date {value!r}: not a date; write it as YYYY-MM-DD, e.g. 2026-11-21") from None


def fail(exc: DigestError) -> typer.Exit:
    if verbose["on"]:
        traceback.print_exc()
    problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
    for line in problems:
        err.print(f"error: {line}", markup=False)
    return typer.Exit(exc.exit_code)


def progress_display() -> Any:
    return RichProgress(err) if err.is_terminal else LogProgress()
