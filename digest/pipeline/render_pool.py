"""Rendering ahead of the sender in forked worker processes (`[delivery] render_workers`).

Helper for `pipeline/sending.py`; no business logic. Jinja is pure Python and holds the GIL, so a
message rendered on the event loop's thread keeps every SMTP connection waiting meanwhile. Here
each worker is a `fork` of the run taken just before sending: it inherits the jobs (their digests,
this run's renderer and key) as they are, so only a job's index goes to it and only the finished
`OutgoingMessage` (the bytes of the message) comes back.

What it keeps of the sender's rules:

- Memory stays flat: at most `ahead` messages are asked for beyond the last one the sender took,
  so the pipes and the finished messages waiting for a sender are bounded, whatever the run's size.
- The ledger is the main process's alone: a worker closes every descriptor it inherited (the
  state's connection and its lock among them) but its pipe and stdio, and a message rendered
  ahead is only bytes in memory. A run
  killed or stopped while messages were rendered ahead leaves those digests 'pending'.
- A worker that dies, or is stuck (`RENDER_TIMEOUT`, then killed), or cannot be started (no
  `fork` on this platform) costs only the messages it had in hand (reported as not built, left
  pending); the rest are rendered in the main process.

A worker ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group): the main process
decides when to stop, then closes the pipes; a worker reads the end of its pipe and exits, also
when the main process was killed.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import gc
import logging
import multiprocessing
import os
import signal
import traceback
from collections.abc import Iterator, Sequence
from multiprocessing.connection import Connection
from typing import Any

from digest.core.errors import DigestError, RenderError
from digest.deliver import OutgoingMessage
from digest.deliver.sender import Job
from digest.pipeline.render_workers import RenderWorkers, nicer

_log = logging.getLogger("digest")

AHEAD_PER_WORKER = 64  # asked of a worker beyond the sender's last (~3 MB): rides out its scheduling gaps
# A message takes milliseconds to render; a worker silent this long is stuck (a lock some other
# thread held at the fork, say) and is killed, so that a run never waits on it forever.
RENDER_TIMEOUT = 60.0


class RenderPool:
    """`jobs` whose messages are built by `workers` forked processes, ahead of the sender.

    Iterate it in place of `jobs` inside the event loop; a job's `build` returns an awaitable.
    Use as a context manager around the event loop: the workers are forked on enter (before the
    loop runs, so they inherit no running loop) and stopped on exit.
    """

    def __init__(
        self,
        jobs: Sequence[Job],
        workers: int,
        *,
        ahead: int | None = None,
        order: Iterator[int] | None = None,
        early: RenderWorkers | None = None,
    ) -> None:
        self.jobs = jobs
        # workers forked at the start of the run (`render_workers`), fed each job's recipe;
        # without them (or when they cannot take these jobs), workers forked on enter
        self.early = early
        # which jobs are sent, in order (`sending.claimed`: this runner's share), pulled lazily
        self.order = order if order is not None else iter(range(len(jobs)))
        self.taken: list[int] = []  # the indices pulled from `order` so far; positions index it
        self.workers = max(1, workers)
        self.ahead = ahead or AHEAD_PER_WORKER * self.workers
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.submitted = 0  # positions asked of a worker (in order: worker p % n has position p)
        self.ready: dict[int, asyncio.Future[OutgoingMessage]] = {}  # by position, until the sender takes it
        self.waiting: dict[int, asyncio.Future[OutgoingMessage]] = {}  # by position, until the worker answers
        self.broken = False  # a worker died: the jobs not yet asked for are built here
        self.loop: asyncio.AbstractEventLoop | None = None

    def __enter__(self) -> RenderPool:
        if self.early is not None and self.early.start(self.jobs):
            self.conns, self.procs = self.early.conns, self.early.procs
            return self
        self.early = None
        if "fork" not in multiprocessing.get_all_start_methods():
            _log.info("no fork on this platform: rendering in the main process")
            self.broken = True
            return self
        context = multiprocessing.get_context("fork")
        for _ in range(min(self.workers, len(self.jobs))):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=_serve,
                args=(self.jobs, theirs, [*self.conns, ours]),
                name="digest-render",
                daemon=True,
            )
            process.start()
            theirs.close()
            self.conns.append(ours)
            self.procs.append(process)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.early is not None and self.loop is not None and not self.loop.is_closed():
            self.early.stop_writing(self.loop)
        for conn in self.conns:
            if self.loop is not None and not self.loop.is_closed():
                with contextlib.suppress(Exception):
                    self.loop.remove_reader(conn.fileno())
            if self.early is None:  # else the early workers' owner stops them
                conn.close()  # the worker reads the end of its pipe and exits
        for process in self.procs if self.early is None else ():
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        for future in [*self.waiting.values(), *self.ready.values()]:  # rendered ahead, never sent
            if not future.done():
                future.cancel()
            elif not future.cancelled():
                future.exception()  # retrieved: no "never retrieved" complaint
        self.waiting.clear()
        self.ready.clear()

    def _pull(self, position: int) -> bool:
        """Whether there is a job at `position` of the order (pulling it when needed)."""
        while len(self.taken) <= position:
            index = next(self.order, None)
            if index is None:
                return False
            self.taken.append(index)
        return True

    def __iter__(self) -> Iterator[Job]:
        position = 0
        while self._pull(position):
            job = self.jobs[self.taken[position]]
            yield Job(job.date, job.subscriber, functools.partial(self._built, position))
            position += 1

    def _built(self, position: int) -> Any:
        """The message of the job at `position`: a future when a worker renders it, else the message."""
        self._ask_up_to(position + self.ahead)
        future = self.ready.pop(position, None)
        if future is None:  # the pool is broken: build it here
            return self.jobs[self.taken[position]].build()
        return self._message(position, future)

    async def _message(self, position: int, future: asyncio.Future[OutgoingMessage]) -> OutgoingMessage:
        try:
            return await asyncio.wait_for(asyncio.shield(future), RENDER_TIMEOUT)
        except TimeoutError:
            worker = position % len(self.conns)
            self.procs[worker].kill()
            self._worker_died(worker)
            raise RenderError(
                f"the render worker gave no message in {RENDER_TIMEOUT:g} s and was stopped"
            ) from None

    def _ask_up_to(self, end: int) -> None:
        if self.broken or not self.conns:
            return
        if self.loop is None:
            self.loop = asyncio.get_running_loop()
            for worker, conn in enumerate(self.conns):
                self.loop.add_reader(conn.fileno(), self._receive, worker)
        while self.submitted < end and self._pull(self.submitted):
            position, self.submitted = self.submitted, self.submitted + 1
            self.waiting[position] = self.ready[position] = self.loop.create_future()
            try:
                worker, index = position % len(self.conns), self.taken[position]
                if self.early is not None:
                    self.early.ask(worker, position, self.jobs[index], self.loop)
                else:
                    self.conns[worker].send((position, index))
            except OSError:
                self._worker_died(position % len(self.conns))
                return

    def _receive(self, worker: int) -> None:
        conn = self.conns[worker]
        try:
            while conn.poll():
                position, message, error = conn.recv()
                future = self.waiting.pop(position, None)
                if future is None or future.done():
                    continue
                if error is None:
                    future.set_result(message)
                else:
                    future.set_exception(_error(*error))
        except (EOFError, OSError):
            self._worker_died(worker)

    def _worker_died(self, worker: int) -> None:
        """Its messages in hand are reported as not built (pending); the rest are built here."""
        if self.loop is not None:
            with contextlib.suppress(Exception):
                self.loop.remove_reader(self.conns[worker].fileno())
        process = self.procs[worker]
        process.join(timeout=1)
        why = f"the render worker stopped (exit code {process.exitcode})"
        if not self.broken:
            _log.warning("%s: the rest of the messages are rendered in the main process", why)
        self.broken = True
        for position in [p for p in self.waiting if p % len(self.conns) == worker]:
            future = self.waiting.pop(position)
            if not future.done():
                future.set_exception(RenderError(why))


def _error(digest_error: bool, text: str, trace: str) -> Exception:
    """A worker's exception, rebuilt here: a `DigestError` as its one line, a bug with its traceback."""
    if digest_error:
        return RenderError(text)
    exc = RuntimeError(text)
    exc.add_note(f"in the render worker:\n{trace}")
    return exc


def _serve(jobs: Sequence[Job], conn: Connection, inherited: list[Connection]) -> None:
    """A worker: build the message of each (position, job index) read from `conn` and send it back
    with its position, in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for other in inherited:  # the main process's ends: only then does its death end our pipe
        other.close()
    # Every other descriptor is the run's: above all the state's lock (an flock, which a forked
    # copy of its descriptor would hold past a killed run, refusing the next one for a while).
    keep = conn.fileno()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))
    gc.freeze()  # what we inherited is never walked by our collector: its pages stay shared
    nicer()
    try:
        while True:
            position, index = conn.recv()
            try:
                reply: tuple[int, Any, Any] = (position, jobs[index].build(), None)
            except Exception as exc:  # the main process reports it, as it does its own
                text = str(exc) if isinstance(exc, DigestError) else f"{type(exc).__name__}: {exc}"
                reply = (position, None, (isinstance(exc, DigestError), text, traceback.format_exc()))
            conn.send(reply)
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        os._exit(0)  # nothing inherited (the state's connection, atexit hooks) runs here
