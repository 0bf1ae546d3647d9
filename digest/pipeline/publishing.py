"""The last stage: the public feeds, each feed reader's private feed and the archive, written
from the stored history (the last feed_days snapshot days) and the ledger.

Runs after the emails are out and recorded: a failure here is reported and makes the run
partial; the next run publishes again. Each file is written atomically. With many feed readers
(`publish_pool.PARALLEL_AT`), their private feeds are written by forked workers (`publish_pool`).
"""

from __future__ import annotations

import datetime as dt
import functools
import html
from collections.abc import Sequence
from pathlib import Path
from typing import Any, overload

from digest.config import Settings
from digest.core.files import remove_leftovers
from digest.core.models import Paper, Subscriber
from digest.core.tldr import TldrBook
from digest.core.tokens import feed_token
from digest.deliver.message import feedback_urls
from digest.explain import similar_of
from digest.pipeline import publish_pool
from digest.pipeline.fetching import new_on
from digest.plan import explained
from digest.render.archive import (
    Day,
    PrivateFeed,
    SpreadFeeds,
    private_feed_name,
    private_feed_path,
    publish_site,
)
from digest.store import Store

# Feed readers whose matched history is read at once (a statement or two a day for them all): the
# block of feeds a worker writes at a time, too (`publish_pool`)
READERS_PER_QUERY = 250


def publish(
    settings: Settings,
    store: Store,
    key: bytes,
    subscribers: Sequence[Subscriber],
    date: dt.date,
    now: dt.datetime,
) -> list[Path]:
    """Feeds and archive from the stored history: the last feed_days snapshot days up to `date`."""
    remove_leftovers(settings.output.dir)  # a run killed while publishing left its temporary files
    dates = store.snapshot_dates(until=date, limit=settings.output.feed_days)
    days = []
    by_id: dict[str, Paper] = {}
    for d in dates:
        result = new_on(store, d)
        papers = result.new if result else ()
        days.append(Day(date=d, papers=tuple(papers)))
        for p in papers:
            by_id.setdefault(p.id, p)
    readers = [sub for sub in subscribers if sub.feed]
    private = _PrivateFeeds(settings, store, key, readers, dates, by_id)
    matched = {d: store.matched_counts(d) for d in dates}  # the most matched are shown in full
    tldrs = _tldrs(settings, store, readers, by_id)
    spread = _spread(settings, store, private)
    written = publish_site(
        settings, days, private=private, now=now, matched=matched, tldrs=tldrs, spread=spread
    )
    tokens = [feed_token(key, sub.email) for sub in readers]
    # a reader's feed under its name, and under the name it had before `private_feed_name`
    _remove_stale_private_feeds(
        settings, {private_feed_name(t) for t in tokens} | {f"{t}.xml" for t in tokens}
    )
    return written


def _spread(settings: Settings, store: Store, private: _PrivateFeeds) -> SpreadFeeds | None:
    """Many private feeds are written by forked workers (`publish_pool`), each reading the
    ledger on a state connection of its own; a few, here."""
    workers = publish_pool.worker_count()
    if len(private) < publish_pool.PARALLEL_AT or workers < 1:
        return None
    return functools.partial(
        publish_pool.write_in_workers, workers=workers, block=READERS_PER_QUERY, store=store,
        reopen=private.reopen, folder=private_feed_path(settings, "x").parent,
    )  # fmt: skip


def _tldrs(
    settings: Settings, store: Store, readers: Sequence[Subscriber], papers: dict[str, Paper]
) -> TldrBook:
    """The cached TL;DRs of the feed days' papers ([summaries]), in the list's language (the day
    pages) and each feed reader's; none are made here."""
    book = TldrBook()
    if not settings.summaries.enabled:
        return book
    config = settings.summaries
    for language in dict.fromkeys([config.language, *(config.language_for(r.language) for r in readers)]):
        for pid, tldr in store.summaries_for(papers, language).items():
            book.add(language, pid, tldr)
    return book


def _extras(
    settings: Settings, key: bytes, sub: Subscriber, entries: Sequence[tuple[str, Any]]
) -> dict[str, str]:
    """HTML under each paper of a private feed: which liked paper it is like, and the "more /
    fewer like this" links (`digest.relevance`)."""
    examples = bool(sub.like or sub.dislike) or any(similar_of(why) for _, why in entries)
    links = feedback_urls(settings, key, sub.email, (pid for pid, _ in entries), examples=examples)
    out: dict[str, str] = {}
    for pid, why in entries:
        parts = []
        if (near := similar_of(why)) is not None:
            parts.append(f"<p>Similar to \u201c{html.escape(near[0])}\u201d ({near[1]:.2f})</p>")
        if pid in links:
            more, fewer = (html.escape(u) for u in links[pid])
            parts.append(
                f'<p><a href="{more}">More like this</a> · <a href="{fewer}">Fewer like this</a></p>'
            )
        if parts:
            out[pid] = "".join(parts)
    return out


class _PrivateFeeds(Sequence[PrivateFeed]):
    """Each feed reader's private feed, built from the ledger when `publish_site` reaches it.

    A list of them all would hold every reader's matches and explanations at once (over 100 MB
    for 10,000 readers); `publish_site` takes them one at a time and lets each go. Their history
    is read for `READERS_PER_QUERY` readers at a time, in order (in a worker, its block's).
    """

    def __init__(
        self, settings: Settings, store: Store, key: bytes, readers: Sequence[Subscriber],
        dates: Sequence[dt.date], papers: dict[str, Paper],
    ) -> None:  # fmt: skip
        self.settings, self.store, self.key = settings, store, key
        self.readers, self.dates, self.papers = readers, dates, papers
        self.batch: tuple[int, dict[str, Any]] = (-1, {})  # (first reader, their history by email)

    def reopen(self) -> None:
        """In a forked worker: the ledger is read on a state connection of its own."""
        self.store = Store.from_config(self.settings.state, create=False)

    def _history(self, index: int) -> dict[dt.date, list[tuple[str, dict[str, Any]]]]:
        first = index - index % READERS_PER_QUERY
        if self.batch[0] != first:
            emails = [sub.email for sub in self.readers[first : first + READERS_PER_QUERY]]
            self.batch = (first, self.store.matched_histories(emails, self.dates))
        return self.batch[1].get(self.readers[index].email, {})

    def __len__(self) -> int:
        return len(self.readers)

    @overload
    def __getitem__(self, index: int) -> PrivateFeed: ...
    @overload
    def __getitem__(self, index: slice) -> Sequence[PrivateFeed]: ...
    def __getitem__(self, index: int | slice) -> PrivateFeed | Sequence[PrivateFeed]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]
        index = index + len(self) if index < 0 else index
        sub = self.readers[index]
        history = self._history(index)
        wanted = {pid for entries in history.values() for pid, _ in entries}
        if missing := wanted.difference(self.papers):  # a trending digest's: no day listed them
            self.papers.update(self.store.papers(missing))
        per_day = [
            (d, [explained(self.papers[pid], why) for pid, why in entries if pid in self.papers])
            for d, entries in history.items()
        ]
        extras = _extras(self.settings, self.key, sub, [e for entries in history.values() for e in entries])
        return sub, feed_token(self.key, sub.email), per_day, extras


def _remove_stale_private_feeds(settings: Settings, current: set[str]) -> None:
    """A reader who turned `feed` off or left must not keep a live feed of their matches."""
    folder = private_feed_path(settings, "x").parent
    for path in folder.glob("*.xml") if folder.is_dir() else ():
        if path.name not in current:
            path.unlink(missing_ok=True)
