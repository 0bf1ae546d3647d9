"""The web side's commands, added to `digest`'s command line by `digest.cli` (which is at its
size limit): `digest web`, and `digest readers export`. Argument parsing and printing only; the
work is `digest.web.server.serve_web` and `digest.web.service.export_toml`."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from digest.config import load_settings
from digest.core.errors import DigestError
from digest.core.files import write_atomic
from digest.web.server import serve_web
from digest.web.service import export_toml

# `--config`, shared with `digest.cli` (which sits above this layer and imports it from here)
ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="digest.toml to use (else $DIGEST_CONFIG, else ./digest.toml).",
        show_default=False,
    ),
]


def register(app: typer.Typer, fail: Callable[[DigestError], typer.Exit], out: Console) -> None:
    """Add the web side's commands to `app`; `fail` turns a DigestError into the CLI's exit."""

    @app.command()
    def web(config: ConfigOpt = None) -> None:
        """Serve only the reader's pages ([web] listen), without the scheduler: subscribe, confirm,
        manage, one-click unsubscribe, and [output] dir's feeds and archive. Put it behind a TLS
        reverse proxy (docs/web.md); `digest serve` does the same beside the daily run.

        Example: digest web --config /etc/digest/digest.toml
        """
        try:
            code = serve_web(load_settings(config))
        except DigestError as exc:
            raise fail(exc) from None
        raise typer.Exit(code)

    readers = typer.Typer(help="The readers who subscribed on the web.", no_args_is_help=True)
    app.add_typer(readers, name="readers")

    @readers.command("export")
    def export(
        config: ConfigOpt = None,
        output: Annotated[
            Path | None, typer.Option("--out", "-o", help="Write to this file (else standard output).")
        ] = None,
    ) -> None:
        """Print the confirmed web readers as [[subscribers]] tables for subscribers.toml (paused
        ones commented out). Once a reader is in the file, the file's profile wins.

        Example: digest readers export --out web-readers.toml
        """
        try:
            text = export_toml(load_settings(config))
        except DigestError as exc:
            raise fail(exc) from None
        if output is None:
            out.print(text, markup=False, end="")
        else:
            write_atomic(output, text)
            out.print(f"wrote {output}", markup=False)
