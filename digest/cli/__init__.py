"""The `digest` command line: a thin shell over `digest.pipeline` and `digest.commands`.

Every command turns a DigestError into one line on stderr (every line, for a ConfigError with
several problems) and a non-zero exit; `-v` adds the traceback.
"""

from __future__ import annotations

import logging
import sys
from typing import Annotated

import typer

from digest import __version__
from digest.cli import readers as readers  # registers check, preview, unsubscribe, feedback
from digest.cli import runs as runs  # registers fetch, run, state, demo, serve
from digest.cli.common import app, fail, out, verbose
from digest.web.cli import register as register_web

__all__ = ["app", "main"]


def _version(value: bool) -> None:
    if value:
        out.print(f"digest {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose_flag: Annotated[
        bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")
    ] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    verbose["on"] = verbose_flag
    logging.basicConfig(
        level=logging.DEBUG if verbose_flag else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


register_web(app, fail, out)  # `digest web`, `digest readers export` (digest/web/cli.py)


def main() -> None:
    app(prog_name="digest")
