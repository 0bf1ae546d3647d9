"""What a run reports: the summary of every reader's outcome, the exit codes, stage timings.

No business logic: the pipeline fills it in; `digest run` prints it and exits with `exit_code`.
"""

from __future__ import annotations

import datetime as dt
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

# Exit codes of `digest run` (documented in docs/reference.md; alerting relies on them).
EXIT_OK = 0
EXIT_FAILED = 1  # the run failed before sending; the state is as it was
EXIT_LOCKED = 3  # another run holds the lock; nothing was done
EXIT_PARTIAL = (
    4  # some recipients failed, are unknown, or stay pending, or a source failed; the rest went out
)
EXIT_STALE = 5  # all went out, but a source is stale (its listing is not newer than the last stored)


@dataclass
class SummaryCounts:
    """What the summaries stage did (`digest.pipeline.summarizing`): never an exit code of its own."""

    summarised: int = 0  # TL;DRs made by this run
    cached: int = 0  # (paper, language) pairs the state already had
    failed: int = 0  # asked, no usable answer: the reader gets the paper's own summary or abstract
    capped: int = 0  # not asked: the daily caps, or the breaker after failures in a row
    skipped: int = 0  # not asked: a dry run
    requests: int = 0  # HTTP requests, retries included
    tokens_in: int = 0
    tokens_out: int = 0
    reasons: dict[str, int] = field(default_factory=dict)  # why they failed, and how often

    def fail(self, why: str, count: int = 1) -> None:
        self.failed += count
        self.reasons[why] = self.reasons.get(why, 0) + count

    def as_dict(self) -> dict[str, Any]:
        return {
            "summarised": self.summarised,
            "cached": self.cached,
            "failed": self.failed,
            "capped": self.capped,
            "requests": self.requests,
            "tokens_in": self.tokens_in,
            "tokens_out": self.tokens_out,
        }

    def lines(self) -> list[str]:
        out = [
            f"summaries: {self.summarised} made, {self.cached} cached, {self.failed} failed, "
            f"{self.capped} not asked (the daily caps, or the stop after failures in a row)"
            f"{f', {self.skipped} not asked (dry run)' if self.skipped else ''}; "
            f"{self.requests} requests, tokens {self.tokens_in} in, {self.tokens_out} out"
        ]
        out += [
            f"summaries failed (the abstract shown instead): {why}: {n}"
            for why, n in sorted(self.reasons.items(), key=lambda item: -item[1])[:5]
        ]
        return out


@dataclass
class RunSummary:
    date: dt.date
    dry_run: bool = False
    new: int = 0
    updates: int = 0
    subscribers: int = 0
    matched: int = 0  # subscribers with at least one paper
    sent: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)
    unknown: list[tuple[str, str]] = field(default_factory=list)
    pending: list[str] = field(default_factory=list)
    skipped: int = 0  # nothing matched (and empty = "skip"), or already sent for this date
    suppressed: list[str] = field(default_factory=list)
    # earlier stored days whose digests were never recorded (the run died first, or only `digest
    # fetch` ran): (day, digests now sent late for it)
    recovered: list[tuple[dt.date, int]] = field(default_factory=list)
    resent: list[str] = field(default_factory=list)  # unknown digests resent once ([delivery] unknown)
    rendered: int = 0  # dry run: digests rendered
    # sources that failed or were stale this run, (name, why): nothing of them was stored, and
    # the next run fetches them again (backfilling the days they missed)
    failed_sources: list[tuple[str, str]] = field(default_factory=list)
    stale_sources: list[tuple[str, str]] = field(default_factory=list)
    source_notes: list[str] = field(default_factory=list)  # days backfilled or cut by the cap
    # source: items of its listing left out, each logged when parsed (see `sources.base.Parsed`)
    malformed_items: dict[str, int] = field(default_factory=dict)  # not papers: skipped
    duplicate_ids: dict[str, int] = field(default_factory=dict)  # repeated an earlier item's id
    stopped_reason: str | None = None
    publish_error: str | None = None  # the emails went out, the feeds and archive could not be written
    outputs: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)
    summaries: SummaryCounts | None = None  # with [summaries] enabled
    held: int = 0  # weekly readers whose matches of the day wait for their week's digest
    channels: list[str] = field(default_factory=list)  # how each [[channels]] post went
    channel_trouble: bool = False  # a post failed, is unknown, or waits for the next run
    # PostgreSQL state: this runner joined the run another live runner planned, sent a share of
    # its digests and left fetching, channels and publishing to it
    joined: bool = False

    def add_report(self, report: Any) -> None:
        """What sending reported (a `digest.deliver.sender.SendReport`)."""
        self.sent = len(report.sent)
        self.failed += report.failed
        self.unknown += report.unknown
        self.pending = report.pending
        self.stopped_reason = report.stopped_reason

    @property
    def exit_code(self) -> int:
        trouble = bool(
            self.failed or self.unknown or self.pending or self.publish_error or self.failed_sources
        )
        trouble = trouble or self.channel_trouble
        if trouble:
            return EXIT_PARTIAL
        return EXIT_STALE if self.stale_sources else EXIT_OK

    def as_dict(self) -> dict[str, Any]:
        return {
            "new": self.new,
            "updates": self.updates,
            "subscribers": self.subscribers,
            "matched": self.matched,
            "sent": self.sent,
            "failed": len(self.failed),
            "unknown": len(self.unknown),
            "pending": len(self.pending),
            "skipped": self.skipped,
            "suppressed": len(self.suppressed),
            "recovered": [[str(day), count] for day, count in self.recovered],
            "resent": len(self.resent),
            "publish_error": self.publish_error,
            "failed_sources": [name for name, _ in self.failed_sources],
            "stale_sources": [name for name, _ in self.stale_sources],
            "malformed_items": dict(self.malformed_items),
            "held": self.held,
            "channels": list(self.channels),
            "duplicate_ids": dict(self.duplicate_ids),
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
            "joined": self.joined,
        } | ({"summaries": self.summaries.as_dict()} if self.summaries is not None else {})

    def lines(self) -> list[str]:
        """A plain summary for logs."""
        out = [
            f"digest {'dry run' if self.dry_run else 'run'} for {self.date}: {self.new} new papers, "
            f"{self.updates} updates, {self.subscribers} subscribers, {self.matched} matched",
            f"emails: {self.sent} sent, {len(self.failed)} failed, {len(self.unknown)} unknown, "
            f"{len(self.pending)} pending, {self.skipped} skipped, {len(self.suppressed)} suppressed"
            + (f", {self.rendered} rendered (not sent)" if self.dry_run else ""),
        ]
        if self.joined:
            out.append(
                f"joined the run another runner planned: sent {self.sent} of its digests (that "
                "runner fetched, and publishes the feeds and archive)"
            )
        out += [
            f"late: {day}: its digests were never recorded (its run stopped first, or only `digest fetch` "
            f"ran): {count} go out now as that day's"
            for day, count in self.recovered
        ]
        out += [f"resent (was unknown, same Message-ID): {what}" for what in self.resent]
        if self.held:
            out.append(f"weekly: {self.held} readers' matches held for their week's digest")
        out += self.channels
        out += [
            f"source failed (its readers get the rest; next run retries): {n}: {why}"
            for n, why in self.failed_sources
        ]
        out += [f"source stale: {name}: {why}" for name, why in self.stale_sources]
        out += [f"source: {note}" for note in self.source_notes]
        out += [
            f"source {name}: skipped {n} malformed items (not papers)"
            for name, n in self.malformed_items.items()
        ]
        out += [
            f"source {name}: {n} items repeated an earlier item's id; kept the first of each"
            for name, n in self.duplicate_ids.items()
        ]
        out += [f"failed: {email}: {reply}" for email, reply in self.failed]
        out += [f"unknown (maybe delivered, not resent): {email}: {reply}" for email, reply in self.unknown]
        if self.summaries is not None:
            out += self.summaries.lines()
        if self.stopped_reason:
            out.append(f"stopped: {self.stopped_reason}")
        if self.publish_error:
            out.append(f"publish failed (the emails were sent): {self.publish_error}")
        if self.timings:
            out.append("time: " + ", ".join(f"{k} {v:.2f}s" for k, v in self.timings.items()))
        return out


class Timer:
    def __init__(self, timings: dict[str, float]) -> None:
        self.timings = timings

    def __call__(self, stage: str) -> _Stage:
        return _Stage(self.timings, stage)


class _Stage:
    def __init__(self, timings: dict[str, float], stage: str) -> None:
        self.timings, self.stage = timings, stage

    def __enter__(self) -> None:
        self.start = time.perf_counter()

    def __exit__(self, *exc: object) -> None:
        self.timings[self.stage] = self.timings.get(self.stage, 0.0) + time.perf_counter() - self.start
