"""The daily job's commands: `digest fetch`, `run`, `state`, `demo` and `serve`."""

from __future__ import annotations

import logging
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from digest import commands, pipeline
from digest.cli.common import ConfigOpt, DateOpt, SubscribersOpt, app, fail, out, parse_date, progress_display
from digest.config import load_settings
from digest.core.errors import DigestError
from digest.demo import DEMO_BASE_URL, run_demo
from digest.render.columns import listing
from digest.render.templating import plural
from digest.serve import serve as serve_forever


@app.command()
def fetch(config: ConfigOpt = None, date: DateOpt = None) -> None:
    """Fetch every source, store the day's snapshot and list the new papers.

    Exit codes as `digest run`'s: 4 when a source failed (the others are stored), 5 when one was
    stale, 1 when every source failed (nothing stored).

    Example: digest fetch --config digest.toml --date 2026-11-21
    """
    try:
        settings = load_settings(config)
        with progress_display() as progress:
            fetched = commands.fetch(settings, parse_date(date), progress=progress)
    except DigestError as exc:
        raise fail(exc) from None
    result, day = fetched.result, fetched.date
    title = f"{plural(len(result.new), 'new paper')} on {day}"
    if not out.is_terminal:  # piped: a line per paper (80 columns of table gave a word per line)
        typer.echo("\n".join([title, *listing(result.new)]))  # tabs kept: rich would expand them
    else:
        table = Table(title=title, title_justify="left")
        for column in ("id", "title", "source"):
            table.add_column(column, no_wrap=column != "title")
        for paper in result.new:
            table.add_row(paper.id, paper.title, ",".join(paper.sources))
        out.print(table)
    out.print(f"{plural(len(result.updates), 'update')} (new versions of papers seen before)")
    if fetched.stored_before:
        out.print(f"(the snapshot stored for {day}: a day's listings are fetched once)", markup=False)
    for line in fetched.report.notes:
        out.print(f"source: {line}", markup=False)
    for name, why in fetched.report.failed:
        out.print(f"source failed (the next run retries it): {name}: {why}", markup=False)
    for name, why in fetched.report.stale:
        out.print(f"source stale: {name}: {why}", markup=False)
    raise typer.Exit(fetched.exit_code)


@app.command()
def run(
    config: ConfigOpt = None,
    subscribers: SubscribersOpt = None,
    date: DateOpt = None,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Render and report; send and record nothing.")
    ] = False,
    retry_unknown: Annotated[
        bool,
        typer.Option(
            "--retry-unknown", help="Also resend digests whose delivery is unknown (may duplicate)."
        ),
    ] = False,
    retry_failed: Annotated[
        bool,
        typer.Option(
            "--retry-failed",
            help="Send the date's digests marked failed again, once the cause is fixed (each once; "
            "addresses the server refused stay suppressed). "
            "Example: digest run --date 2026-06-12 --retry-failed",
        ),
    ] = False,
) -> None:
    """The daily job: fetch, diff, match, render, send, publish feeds and archive.

    Exit codes: 0 all served; 1 failed before sending (state unchanged); 3 another run is in
    progress; 4 some recipients failed, are unknown or still pending, or a source failed (the rest
    were sent); 5 all served, but a source's listing was stale (not newer than the last one).

    Example: digest run --config digest.toml --subscribers subscribers.toml
    """
    stop = threading.Event()  # set by SIGTERM / Ctrl-C while sending (see pipeline.run)
    try:
        settings = load_settings(config)
        with progress_display() as progress:
            summary = pipeline.run(
                settings,
                subscribers_path=subscribers,
                date=parse_date(date),
                dry_run=dry_run,
                retry_unknown=retry_unknown,
                retry_failed=retry_failed,
                progress=progress,
                log=logging.getLogger("digest").warning,
                stop=stop,
                catch_signals=True,
            )
    except DigestError as exc:
        raise fail(exc) from None
    _print_summary(summary)
    raise typer.Exit(summary.exit_code)


def _print_summary(summary: Any) -> None:
    table = Table(
        title=f"digest {'dry run' if summary.dry_run else 'run'} for {summary.date}", title_justify="left"
    )
    table.add_column("what")
    table.add_column("", justify="right")
    rows = [
        ("new papers", summary.new),
        ("updates", summary.updates),
        ("subscribers", summary.subscribers),
        ("subscribers matched", summary.matched),
        ("emails sent", summary.sent),
        ("failed", len(summary.failed)),
        ("unknown (not resent)", len(summary.unknown)),
        ("pending (next run)", len(summary.pending)),
        ("skipped", summary.skipped),
        ("suppressed", len(summary.suppressed)),
    ]
    if summary.dry_run:
        rows.append(("rendered (dry run)", summary.rendered))
    for what, n in rows:
        table.add_row(what, str(n))
    for stage, seconds in summary.timings.items():
        table.add_row(f"time: {stage}", f"{seconds:.2f}s")
    out.print(table)
    for line in summary.lines()[2:]:
        if not line.startswith("time:"):
            out.print(line, markup=False)
    if summary.outputs:
        out.print(f"feeds and archive: {summary.outputs[0].parent}", markup=False)


@app.command()
def state(
    config: ConfigOpt = None,
    compact: Annotated[bool, typer.Option("--compact", help="Apply [state] keep_days now.")] = False,
    vacuum: Annotated[bool, typer.Option("--vacuum", help="With --compact: VACUUM in any case.")] = False,
) -> None:
    """Show the state file's size by table, its oldest full day and what retention would drop.

    Example: digest state --compact
    """
    try:
        report = commands.state(load_settings(config), compact=compact, vacuum=vacuum)
    except DigestError as exc:
        raise fail(exc) from None
    for line in report.lines():
        out.print(line, markup=False)


@app.command()
def demo(
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Where to put state, outbox and site.")] = Path(
        "digest-demo"
    ),
    base_url: Annotated[str, typer.Option(help="Where OUT/public is served, for the links.")] = DEMO_BASE_URL,
) -> None:
    """Run the whole pipeline offline on a bundled two-day sample (no network, config or secrets).

    Example: digest demo --out /tmp/digest-demo --base-url http://localhost:8000/
    """
    try:
        for line in run_demo(out_dir, base_url=base_url):
            out.print(line, markup=False)
    except DigestError as exc:
        raise fail(exc) from None


@app.command()
def serve(config: ConfigOpt = None, subscribers: SubscribersOpt = None) -> None:
    """Run forever, doing the daily run on the [schedule] cron in [schedule] timezone.

    Example: digest serve --config /etc/digest/digest.toml
    """
    try:
        code = serve_forever(load_settings(config), subscribers_path=subscribers)
    except DigestError as exc:
        raise fail(exc) from None
    raise typer.Exit(code)
