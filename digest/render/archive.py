"""The web archive and the publisher: writes the feeds and one page per day under `[output] dir`.

Layout (all paths relative to the output dir)::

    index.html                 the latest day
    archive/YYYY-MM-DD.html    one page per day, for the last `[output] archive_days` days
    archive/index.html         every day page there is
    feed.xml, feed.atom        every new paper of the last `feed_days` days
    feeds/<token>.xml          a reader's private feed (their matched papers)

Every file is written atomically (a temporary file in the same folder, fsync, rename), so a crash
never leaves a half-written page or feed behind.

A day page stays small whatever the listing: the `FULL_PAPERS` papers most readers matched (in
the listing's order when nobody's matches are known) in full, the rest as one line each (all of
arXiv is ~1,000 new papers a day: 2.4 MB in full, 0.29 MB so). Pages older than `archive_days`
are removed, so the site is bounded too (a year of all arXiv: ~110 MB of day pages).
"""

from __future__ import annotations

import datetime as dt
import functools
import re
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

from digest.config import Settings
from digest.core.errors import RenderError
from digest.core.files import sync_folder_of, write_atomic
from digest.core.models import Match, Subscriber
from digest.core.tldr import TldrBook
from digest.render.feeds import (
    NO_EXTRAS,
    Day,
    FeedMeta,
    items,
    private_feed_name,
    private_feed_path,
    private_feed_url,
    private_meta,
    public_entries,
    render_atom,
    render_rss,
    site_link,
    window,
)
from digest.render.templating import load, long_date, make_env, plural, render, short_date
from digest.render.views import PaperView, Views

__all__ = ["Day", "archive_url", "private_feed_name", "private_feed_path", "private_feed_url", "publish_site"]

DAY_TEMPLATE = "day.html.j2"
ARCHIVE_TEMPLATE = "archive.html.j2"
FULL_PAPERS = 100  # papers shown in full on a day page; the others get a line each
SITE_TITLE = "Paper Digest"
_SLUG = re.compile(r"[^a-z0-9]+")

# (reader, feed token, their matches by day) and, optionally, HTML to add under a paper by id
# (why it is like what they like, the "more / fewer like this" links)
PrivateFeed = (
    tuple[Subscriber, str, Sequence[tuple[dt.date, Sequence[Match]]]]
    | tuple[Subscriber, str, Sequence[tuple[dt.date, Sequence[Match]]], Mapping[str, str]]
)
# Writes the private feeds at these indices, each file atomically, and returns the paths written
WriteFeeds = Callable[[Sequence[int]], list[Path]]
# How the private feeds are written: `spread(write, count)` has `write` cover every index below
# `count` and returns the paths in index order (`digest.pipeline.publish_pool`: forked workers)
SpreadFeeds = Callable[[WriteFeeds, int], list[Path]]


def archive_path(date: dt.date) -> str:
    """A day's page, relative to the output dir."""
    return f"archive/{date.isoformat()}.html"


def archive_url(settings: Settings, date: dt.date) -> str | None:
    """The address of a day's archive page; None without `[output] base_url`."""
    base = settings.output.base_url
    return f"{base}{archive_path(date)}" if base else None


def publish_site(
    settings: Settings,
    days: Sequence[Day],
    *,
    private: Sequence[PrivateFeed] = (),
    now: dt.datetime,
    matched: Mapping[dt.date, Mapping[str, int]] | None = None,
    tldrs: TldrBook | None = None,
    spread: SpreadFeeds | None = None,
) -> list[Path]:
    """Write the public feeds, the archive pages and the private feeds; return the paths written.

    `days` may come in any order. The feeds keep the last `feed_days` days counted back from the
    newest day given; there is a page for every day given. `matched` says, per day, how many
    readers each paper matched: the papers shown in full are the most matched. `tldrs`
    ([summaries]): the day pages show those in the list's language, a private feed those in its
    reader's. `spread`: who writes the private feeds (in this process without).
    """
    tldrs = tldrs or TldrBook()
    page_tldrs = tldrs.for_language(settings.summaries.language)  # the list's language
    out = settings.output.dir
    base = settings.output.base_url
    env = make_env(settings.templates.dir)
    views = Views()  # what every page and feed shows of a paper, built once per paper
    days = sorted(days, key=lambda d: d.date)
    files: dict[Path, str] = {}

    oldest = window((d.date for d in days), settings.output.feed_days)
    public = items(public_entries(days), oldest=oldest, views=views)
    description = "New papers, every day."
    link = site_link(settings)  # RSS requires it: without base_url, the site's file: URL
    rss = FeedMeta(SITE_TITLE, description, link, f"{base}feed.xml" if base else None,
                   f"{base}feed.atom" if base and settings.output.atom else None,
                   f"{base}feed.xml" if base else "urn:digest:feed:public", now)  # fmt: skip
    files[out / "feed.xml"] = render_rss(env, rss, public)
    if settings.output.atom:
        atom = FeedMeta(SITE_TITLE, description, link, f"{base}feed.atom" if base else None, None,
                        f"{base}feed.atom" if base else "urn:digest:feed:public", now)  # fmt: skip
        files[out / "feed.atom"] = render_atom(env, atom, public)

    template = load(env, DAY_TEMPLATE)
    for i, day in enumerate(days):
        prev_day = days[i - 1].date if i > 0 else None
        next_day = days[i + 1].date if i + 1 < len(days) else None
        context = _day_context(settings, day, prev_day, next_day, days, views, root="../", now=now)
        context["tldrs"] = page_tldrs
        files[out / archive_path(day.date)] = render(template, _shown(context, day, matched))
    if days:
        latest = days[-1]
        prev_day = days[-2].date if len(days) > 1 else None
        context = _day_context(settings, latest, prev_day, None, days, views, root="", now=now)
        context["tldrs"] = page_tldrs
        files[out / "index.html"] = render(template, _shown(context, latest, matched))
        files[out / "archive" / "index.html"] = _archive_index(settings, env, days, now)

    if private:
        # Some servers list a folder without an index page; the private feeds must not be listed.
        files[out / "feeds" / "index.html"] = (
            '<!doctype html><html lang="en"><title>Private feeds</title></html>\n'
        )
    # The public site first, all rendered before anything is written, so a broken template
    # changes nothing; then each private feed as soon as it is rendered (thousands of them would
    # otherwise all be held in memory at once).
    with _Writer() as writer:
        for path, content in files.items():
            writer.write(path, content)
        if days:
            _remove_old_pages(settings, days[-1].date)
    write = functools.partial(_write_private_feeds, settings, env, private, days, views, tldrs, now)
    return writer.written + (spread or _in_this_process)(write, len(private))


def _in_this_process(write: WriteFeeds, count: int) -> list[Path]:
    return write(range(count))


def _write_private_feeds(
    settings: Settings,
    env: Any,
    private: Sequence[PrivateFeed],
    days: Sequence[Day],
    views: Views,
    tldrs: TldrBook,
    now: dt.datetime,
    indices: Sequence[int],
) -> list[Path]:
    """The private feeds at `indices`, each written as soon as it is rendered, with the TL;DRs
    in the reader's language; the paths written, in order."""
    with _Writer() as writer:
        for index in indices:
            _write_private_feed(writer, settings, env, private[index], days, views, tldrs, now)
    return writer.written


def _write_private_feed(
    writer: _Writer,
    settings: Settings,
    env: Any,
    feed: PrivateFeed,
    days: Sequence[Day],
    views: Views,
    tldrs: TldrBook,
    now: dt.datetime,
) -> None:
    subscriber, token, entries = feed[0], feed[1], feed[2]
    dates = [d for d, _ in entries] + [d.date for d in days]
    feed_items = items(
        entries,
        oldest=window(dates, settings.output.feed_days),
        views=views,
        tldrs=tldrs.for_language(settings.summaries.language_for(subscriber.language)),
        extras=feed[3] if len(feed) > 3 else NO_EXTRAS,
    )
    meta = private_meta(settings, subscriber, token, now)
    _write_private(writer, private_feed_path(settings, token), token, render_rss(env, meta, feed_items))


def _write_private(writer: _Writer, path: Path, token: str, xml: str) -> None:
    """A private feed, and its copy under the name it had before `private_feed_name`, when there
    is one: a feed reader may have subscribed to that address."""
    writer.write(path, xml)
    legacy = path.with_name(f"{token}.xml")
    if legacy != path and legacy.exists():
        writer.write(legacy, xml)


def _shown(
    context: dict[str, Any], day: Day, matched: Mapping[dt.date, Mapping[str, int]] | None
) -> dict[str, Any]:
    """Split the day's papers: the `FULL_PAPERS` most matched in full, the others in a line."""
    counts = (matched or {}).get(day.date, {})
    order = sorted(range(len(day.papers)), key=lambda i: -counts.get(day.papers[i].id, 0))
    full = set(order[:FULL_PAPERS])
    views = context["papers"]
    context["sections"] = _sections([v for i, v in enumerate(views) if i in full])
    context["papers"] = [v for section in context["sections"] for v in section["papers"]]
    context["others"] = [v for i, v in enumerate(views) if i not in full]
    return context


def _sections(views: Sequence[PaperView]) -> list[dict[str, Any]]:
    """The papers shown in full, by source (a paper goes with its first), the sources in the
    listing's order; in each, papers with upvotes first, most upvoted first, then the others in
    the listing's order. Each section has an id for the page's jump links."""
    groups: dict[str, list[PaperView]] = {}
    for view in views:
        groups.setdefault(view.sources[0] if view.sources else "Other", []).append(view)
    sections = []
    for n, (label, papers) in enumerate(groups.items(), start=1):
        papers.sort(key=lambda v: (v.upvotes is None, -(v.upvotes or 0)))
        slug = _SLUG.sub("-", label.lower()).strip("-")
        sections.append({"id": f"from-{n}-{slug}" if slug else f"from-{n}", "label": label, "papers": papers})
    return sections


def _pages(settings: Settings) -> list[dt.date]:
    """The day pages in the archive folder, newest first."""
    folder = settings.output.dir / "archive"
    dates = []
    for path in folder.glob("????-??-??.html") if folder.is_dir() else ():
        try:
            dates.append(dt.date.fromisoformat(path.stem))
        except ValueError:
            continue
    return sorted(dates, reverse=True)


def _oldest_kept(settings: Settings, newest: dt.date) -> dt.date:
    days = settings.output.archive_days
    return newest - dt.timedelta(days=days - 1) if days else dt.date.min


def _remove_old_pages(settings: Settings, newest: dt.date) -> None:
    """Day pages older than `[output] archive_days` before the newest day go."""
    oldest = _oldest_kept(settings, newest)
    for date in _pages(settings):
        if date < oldest:
            (settings.output.dir / archive_path(date)).unlink(missing_ok=True)


def _archive_index(settings: Settings, env: Any, days: Sequence[Day], now: dt.datetime) -> str:
    """archive/index.html: a link to every day page there is after this run (those written now,
    and the earlier ones inside `archive_days`)."""
    oldest = _oldest_kept(settings, days[-1].date)
    counts = {d.date: len(d.papers) for d in days}
    dates = sorted({d for d in _pages(settings) if d >= oldest} | set(counts), reverse=True)
    pages = [{"url": f"{d.isoformat()}.html", "label": long_date(d), "count": counts.get(d)} for d in dates]
    context = {
        "site_title": SITE_TITLE,
        "title": f"{SITE_TITLE} · archive",
        "pages": pages,
        "home_url": "../index.html",
        "rss_url": "../feed.xml",
        "archive_days": settings.output.archive_days,
        "generated": now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
    return render(load(env, ARCHIVE_TEMPLATE), context)


class _Writer:
    """Writes files atomically on a few threads, while the caller renders the next one.

    Each write mostly waits for the disk (the fsync, and creating the temporary file while other
    fsyncs hold the journal): a third of publishing 2,000 private feeds, when it was done in line.
    At most `AHEAD` contents wait in memory. Leaving the `with` block waits for every write, raises
    the first failure, and syncs each folder once, which makes the renames durable.
    """

    THREADS = 2
    AHEAD = 16

    def __init__(self) -> None:
        self.written: list[Path] = []
        self._folders: set[Path] = set()
        self._pending: deque[Future[None]] = deque()
        self._pool = ThreadPoolExecutor(max_workers=self.THREADS, thread_name_prefix="digest-write")

    def __enter__(self) -> _Writer:
        return self

    def write(self, path: Path, content: str) -> None:
        while len(self._pending) >= self.AHEAD:
            self._pending.popleft().result()
        self._pending.append(self._pool.submit(_write, path, content))
        self._folders.add(path.parent)
        self.written.append(path)

    def __exit__(self, *exc: object) -> None:
        try:
            while self._pending:
                self._pending.popleft().result()
        finally:
            self._pool.shutdown(wait=True, cancel_futures=True)
        for folder in self._folders:  # once per folder, not once per file
            sync_folder_of(folder)


def _write(path: Path, content: str) -> None:
    try:
        write_atomic(path, content, sync_folder=False)
    except OSError as exc:
        raise RenderError(
            f"writing {path}: {exc.strerror or exc}; check [output] dir and its permissions"
        ) from None


def _day_context(
    settings: Settings,
    day: Day,
    prev_day: dt.date | None,
    next_day: dt.date | None,
    days: Sequence[Day],
    views: Views,
    *,
    root: str,
    now: dt.datetime,
) -> dict[str, Any]:
    def page(date: dt.date) -> str:
        return root + archive_path(date)

    return {
        "site_title": SITE_TITLE,
        "title": f"{SITE_TITLE} · {short_date(day.date)}",
        "date": day.date,
        "date_long": long_date(day.date),
        "count": len(day.papers),
        "count_text": plural(len(day.papers), "new paper"),
        "papers": [views(p) for p in day.papers],
        "prev": {"url": page(prev_day), "label": short_date(prev_day)} if prev_day else None,
        "next": {"url": page(next_day), "label": short_date(next_day)} if next_day else None,
        "recent": [
            {"url": page(d.date), "label": short_date(d.date), "count": len(d.papers), "current": d is day}
            for d in reversed(days[-30:])
        ],
        "rss_url": root + "feed.xml",
        "atom_url": root + "feed.atom" if settings.output.atom else None,
        "home_url": root + "index.html",
        "archive_url": root + "archive/index.html",
        "canonical": archive_url(settings, day.date),
        "generated": now.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
    }
