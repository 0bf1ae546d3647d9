"""The `digest` command line: a thin shell over `digest.pipeline` and `digest.commands`.

Every command turns a DigestError into one line on stderr (every line, for a ConfigError with
several problems) and a non-zero exit; `-v` adds the traceback.
"""

from __future__ import annotations

import datetime as dt
import logging
import sys
import threading
import traceback
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from digest import __version__, commands, pipeline
from digest.config import load_settings
from digest.core.errors import ConfigError, DigestError
from digest.core.progress import LogProgress, RichProgress
from digest.demo import DEMO_BASE_URL, run_demo
from digest.render.columns import listing
from digest.render.templating import plural
from digest.render.views import why_text
from digest.serve import serve as serve_forever

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
_verbose = {"on": False}

ConfigOpt = Annotated[
    Path | None,
    typer.Option(
        "--config",
        "-c",
        help="digest.toml to use (else $DIGEST_CONFIG, else ./digest.toml).",
        show_default=False,
    ),
]
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


def _version(value: bool) -> None:
    if value:
        out.print(f"digest {__version__}")
        raise typer.Exit()


@app.callback()
def _main(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Show tracebacks and debug logs.")] = False,
    version: Annotated[
        bool, typer.Option("--version", callback=_version, is_eager=True, help="Print the version and exit.")
    ] = False,
) -> None:
    _verbose["on"] = verbose
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
        datefmt="%Y-%m-%dT%H:%M:%S",
        stream=sys.stderr,
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)


def _parse_date(value: str | None) -> dt.date | None:
    if value is None:
        return None
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise ConfigError(f"--date {value!r}: not a date; write it as YYYY-MM-DD, e.g. 2026-11-21") from None


def _fail(exc: DigestError) -> typer.Exit:
    if _verbose["on"]:
        traceback.print_exc()
    problems = exc.problems if isinstance(exc, ConfigError) else [str(exc)]
    for line in problems:
        err.print(f"error: {line}", markup=False)
    return typer.Exit(exc.exit_code)


def _progress() -> Any:
    return RichProgress(err) if err.is_terminal else LogProgress()


@app.command()
def fetch(config: ConfigOpt = None, date: DateOpt = None) -> None:
    """Fetch every source, store the day's snapshot and list the new papers.

    Exit codes as `digest run`'s: 4 when a source failed (the others are stored), 5 when one was
    stale, 1 when every source failed (nothing stored).

    Example: digest fetch --config digest.toml --date 2026-11-21
    """
    try:
        settings = load_settings(config)
        with _progress() as progress:
            fetched = commands.fetch(settings, _parse_date(date), progress=progress)
    except DigestError as exc:
        raise _fail(exc) from None
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
        with _progress() as progress:
            summary = pipeline.run(
                settings,
                subscribers_path=subscribers,
                date=_parse_date(date),
                dry_run=dry_run,
                retry_unknown=retry_unknown,
                retry_failed=retry_failed,
                progress=progress,
                log=logging.getLogger("digest").warning,
                stop=stop,
                catch_signals=True,
            )
    except DigestError as exc:
        raise _fail(exc) from None
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
def check(config: ConfigOpt = None, subscribers: SubscribersOpt = None) -> None:
    """Validate digest.toml and subscribers.toml; list every problem, or summarise.

    Example: digest check --subscribers subscribers.toml
    """
    try:
        report = commands.check_files(config, subscribers)
    except DigestError as exc:
        raise _fail(exc) from None
    subs = report.subscribers
    table = Table(title=f"{report.path}: OK", title_justify="left")
    for col in ("subscribers", "terms", "sources", "feeds"):
        table.add_column(col, justify="right")
    table.add_row(
        str(len(subs)),
        str(report.terms),
        ", ".join(report.sources),
        str(sum(s.feed for s in subs)),
    )
    out.print(table)
    for held in report.held:
        out.print(
            f"suppressed: {held.email} since {held.since}: {held.reason} ({held.what_lifts_it})", markup=False
        )


@app.command()
def preview(
    email: Annotated[str, typer.Argument(help="The subscriber's email, as in subscribers.toml.")],
    config: ConfigOpt = None,
    subscribers: SubscribersOpt = None,
    date: DateOpt = None,
    days: Annotated[
        int, typer.Option("--days", "-n", min=1, help="Show this many stored days up to --date.")
    ] = 1,
) -> None:
    """Show what a subscriber would get, from stored snapshots, with the matched terms.

    Example: digest preview ada@example.org --days 14
    """
    try:
        settings = load_settings(config)
        days_shown = commands.preview(
            settings, email, subscribers_path=subscribers, date=_parse_date(date), days=days
        )
    except DigestError as exc:
        raise _fail(exc) from None
    if not days_shown:
        when = f" on or before {date}" if date else ""
        out.print(
            f"no snapshots stored{when}: run `digest fetch` first, or pick a later --date", markup=False
        )
        raise typer.Exit(1)
    total = 0
    for day in days_shown:
        digest = day.digest
        total += len(digest.matches)
        more = f" (+{digest.more} more over max_papers)" if digest.more else ""
        out.print(f"[bold]{digest.date}[/bold]: {len(digest.matches)} of {day.new} new papers{more}")
        for m in digest.matches:
            out.print(f"  {m.paper.id}  {m.paper.title}{day.tldr_line(m.paper.id)}", markup=False)
            out.print(f"      {why_text(m.hits) or 'all new papers'}", style="dim", markup=False)
    if len(days_shown) > 1:
        out.print(f"{total} papers over {len(days_shown)} days, {total / len(days_shown):.1f} a day")


@app.command()
def unsubscribe(
    token: Annotated[
        list[str],
        typer.Argument(
            help='The token from an unsubscribe mail\'s subject ("unsubscribe TOKEN"), or the whole '
            "subject; with --undo, the reader's email."
        ),
    ],
    config: ConfigOpt = None,
    subscribers: SubscribersOpt = None,
    undo: Annotated[bool, typer.Option("--undo", help="Take an unsubscribed reader back.")] = False,
) -> None:
    """Stop sending to the reader an unsubscribe token was made for (the mailto link's subject).

    The address is suppressed from the next run on, and listed by `digest check`, until
    `digest unsubscribe --undo EMAIL` (editing the profile does not lift it). Remove the reader's
    table too, so the file says who gets the digest.

    Example: digest unsubscribe "unsubscribe YWRhQGV4YW1wbGUub3Jn.Qx3..."
    """
    value = commands.token_from(" ".join(token))
    try:
        settings = load_settings(config)
        if undo:
            email = commands.undo_unsubscribe(settings, value)
            out.print(f"{email}: subscribed again from the next run on", markup=False)
            return
        done = commands.unsubscribe(settings, value, subscribers_path=subscribers)
    except DigestError as exc:
        raise _fail(exc) from None
    if not done.in_file:
        out.print(
            f"{done.email}: not in the subscribers file (already removed?); suppressed all the same",
            markup=False,
        )
    else:
        out.print(f"{done.email}: unsubscribed; no digest from the next run on", markup=False)


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
        raise _fail(exc) from None
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
        raise _fail(exc) from None


@app.command()
def serve(config: ConfigOpt = None, subscribers: SubscribersOpt = None) -> None:
    """Run forever, doing the daily run on the [schedule] cron in [schedule] timezone.

    Example: digest serve --config /etc/digest/digest.toml
    """
    try:
        settings = load_settings(config)
        code = serve_forever(settings, subscribers_path=subscribers)
    except DigestError as exc:
        raise _fail(exc) from None
    raise typer.Exit(code)


def main() -> None:
    app(prog_name="digest")
