"""The readers' commands: `digest check`, `preview`, and what the operator applies from the From
mailbox: `unsubscribe` and `feedback` (the subjects of the mailto links' mails)."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from digest import commands
from digest.cli.common import ConfigOpt, DateOpt, SubscribersOpt, app, fail, out, parse_date
from digest.config import load_settings
from digest.core.errors import DigestError
from digest.render.views import why_text


@app.command()
def check(config: ConfigOpt = None, subscribers: SubscribersOpt = None) -> None:
    """Validate digest.toml and subscribers.toml; list every problem, or summarise.

    Example: digest check --subscribers subscribers.toml
    """
    try:
        report = commands.check_files(config, subscribers)
    except DigestError as exc:
        raise fail(exc) from None
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
    for line in report.notes():  # suppressed addresses, web readers (digest.web), warnings
        out.print(line, markup=False)


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
            settings, email, subscribers_path=subscribers, date=parse_date(date), days=days
        )
    except DigestError as exc:
        raise fail(exc) from None
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
            fallback = (
                f"trending: {m.paper.upvotes or 0} upvotes"
                if digest.subscriber.trending
                else "all new papers"
            )
            why = why_text(m.hits) or ("" if m.paper.id in digest.similar else fallback)
            if m.paper.id in digest.similar:
                title, score = digest.similar[m.paper.id]
                why = "; ".join(w for w in (why, f"similar to \u201c{title}\u201d ({score:.2f})") if w)
            out.print(f"      {why}", style="dim", markup=False)
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
        raise fail(exc) from None
    if not done.in_file:
        out.print(
            f"{done.email}: not in the subscribers file (already removed?); suppressed all the same",
            markup=False,
        )
    else:
        out.print(f"{done.email}: unsubscribed; no digest from the next run on", markup=False)


@app.command()
def feedback(
    token: Annotated[
        list[str],
        typer.Argument(
            help='The subject of a feedback mail ("more TOKEN" or "fewer TOKEN"), or the token; '
            "with --reset, the reader's email."
        ),
    ],
    config: ConfigOpt = None,
    reset: Annotated[bool, typer.Option("--reset", help="Forget a reader's feedback.")] = False,
) -> None:
    """Apply a "more like this" / "fewer like this" link a reader followed (its mail's subject).

    The paper joins the reader's liked (or disliked) papers from the next run on, and ranks what
    they get (docs/relevance.md). `digest check` shows each reader's feedback.

    Example: digest feedback "more YWRhQGV4YW1wbGUub3Jn..."
    """
    try:
        settings = load_settings(config)
        if reset:
            count = commands.reset_feedback(settings, " ".join(token).strip())
            out.print(f"{' '.join(token).strip()}: feedback on {count} papers forgotten", markup=False)
            return
        done = commands.feedback(settings, " ".join(token))
    except DigestError as exc:
        raise fail(exc) from None
    what = "more" if done.direction == "more" else "fewer"
    title = f" ({done.title})" if done.title else ""
    out.print(f"{done.email}: {what} like {done.paper_id}{title} from the next run on", markup=False)
