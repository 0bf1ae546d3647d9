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
EXIT_PARTIAL = 4  # some recipients failed, are unknown, or stay pending; the others were sent


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
    rendered: int = 0  # dry run: digests rendered
    stopped_reason: str | None = None
    publish_error: str | None = None  # the emails went out, the feeds and archive could not be written
    outputs: list[Path] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)

    def add_report(self, report: Any) -> None:
        """What sending reported (a `digest.deliver.sender.SendReport`)."""
        self.sent = len(report.sent)
        self.failed += report.failed
        self.unknown += report.unknown
        self.pending = report.pending
        self.stopped_reason = report.stopped_reason

    @property
    def exit_code(self) -> int:
        trouble = self.failed or self.unknown or self.pending or self.publish_error
        return EXIT_PARTIAL if trouble else EXIT_OK

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
            "publish_error": self.publish_error,
            "timings": {k: round(v, 3) for k, v in self.timings.items()},
        }

    def lines(self) -> list[str]:
        """A plain summary for logs."""
        out = [
            f"digest {'dry run' if self.dry_run else 'run'} for {self.date}: {self.new} new papers, "
            f"{self.updates} updates, {self.subscribers} subscribers, {self.matched} matched",
            f"emails: {self.sent} sent, {len(self.failed)} failed, {len(self.unknown)} unknown, "
            f"{len(self.pending)} pending, {self.skipped} skipped, {len(self.suppressed)} suppressed"
            + (f", {self.rendered} rendered (not sent)" if self.dry_run else ""),
        ]
        out += [f"failed: {email}: {reply}" for email, reply in self.failed]
        out += [f"unknown (maybe delivered, not resent): {email}: {reply}" for email, reply in self.unknown]
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
