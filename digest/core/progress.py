"""Progress reporting for long stages: rich bars on a terminal, plain log lines elsewhere (cron, CI).

No business logic: the pipeline calls `stage(name, total)` and then the returned `advance(note)`
once per item.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Protocol

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TextColumn, TimeElapsedColumn
from rich.progress import Progress as RichBar

Advance = Callable[[str], None]
log = logging.getLogger("digest")


class Progress(Protocol):
    def stage(self, name: str, total: int) -> Advance: ...


class _NoContext:
    """Progress reporters are context managers so callers need not ask which kind they hold."""

    def __enter__(self) -> _NoContext:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


class QuietProgress(_NoContext):
    def stage(self, name: str, total: int) -> Advance:
        return lambda _note: None


class LogProgress(_NoContext):
    """One line per stage start and roughly every 10% (at most every few seconds) after that."""

    def __init__(self, emit: Callable[[str], None] | None = None, every_seconds: float = 5.0) -> None:
        self.emit = emit or log.info
        self.every = every_seconds

    def stage(self, name: str, total: int) -> Advance:
        self.emit(f"{name}: {total} to do")
        state = {"done": 0, "last": time.monotonic()}

        def advance(note: str) -> None:
            state["done"] += 1
            done = state["done"]
            now = time.monotonic()
            if done == total or now - state["last"] >= self.every or total <= 10:
                state["last"] = now
                self.emit(f"{name}: {done}/{total} {note}")

        return advance


class RichProgress:
    """Bars on a terminal; use as a context manager around the run."""

    def __init__(self, console: Console | None = None) -> None:
        self.bar = RichBar(
            TextColumn("[bold]{task.description:<8}"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeElapsedColumn(),
            TextColumn("{task.fields[note]}", style="dim"),
            console=console,
            transient=False,
        )

    def __enter__(self) -> RichProgress:
        self.bar.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.bar.stop()

    def stage(self, name: str, total: int) -> Advance:
        task = self.bar.add_task(name, total=max(total, 1), note="")
        if total == 0:
            self.bar.update(task, completed=1)

        def advance(note: str) -> None:
            self.bar.update(task, advance=1, note=note[:50])

        return advance
