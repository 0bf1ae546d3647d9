"""Render workers forked at the start of a run, before it loads the profiles or plans anything.

Helper for `pipeline/render_pool.py`; no business logic. A worker forked when sending starts
inherits the whole run: every reader's profile and digest. Those pages stay shared only while the
run leaves them alone, and it does not: it counts references as it sends, frees what was sent,
allocates into what it freed, so page by page the worker ends up with a copy (477 MB beside the
run's 664 MB at 100,000 readers). A worker forked first holds nothing of the kind (95 MB there):
each message's recipe (`Recipe`: the reader's digest, the builder of its links and headers) goes
to it as plain tuples as the sender gets near it (`RenderWorkers._flat`), the papers sent once,
when sending starts, and named by their number, and the run's renderer, settings and TL;DRs
named, never copied.

Everything else (how many are asked ahead, a worker that dies or is stuck, the ledger staying
the main process's) is `RenderPool`'s, the same either way.
"""

from __future__ import annotations

import asyncio
import contextlib
import copyreg
import dataclasses
import fcntl
import gc
import io
import logging
import multiprocessing
import os
import pickle
import signal
import struct
import traceback
from collections.abc import Sequence
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from digest.config import Settings
from digest.core.errors import DigestError
from digest.core.models import Digest, Hit, Match, Subscriber, subscriber_values
from digest.core.tldr import TldrBook
from digest.deliver import OutgoingMessage
from digest.deliver.sender import Job
from digest.render.email import EmailRenderer

_log = logging.getLogger("digest")


@dataclass(frozen=True, slots=True)
class Recipe:
    """How to build one message: `builder(digest, message_id)`, where `builder` (a
    `sending.MessageBuilder`) holds the run's renderer, settings and TL;DRs."""

    builder: Any
    digest: Digest
    message_id: str | None = None

    def __call__(self) -> OutgoingMessage:
        message: OutgoingMessage = self.builder(self.digest, self.message_id)
        return message


# In a worker only: the run's papers (sent once, named by number in each recipe), its TL;DRs, its
# own renderer, the settings it was forked with, and the run's builder of messages.
_SHARED: dict[str, Any] = {}


def _shared(kind: str) -> Any:
    """The worker's object the builder names (unpickling calls this)."""
    return _SHARED[kind]


class RenderWorkers:
    """`count` processes forked on enter (before the run holds much), fed recipes by one
    `RenderPool` (`start`), stopped on exit."""

    def __init__(self, settings: Settings, count: int) -> None:
        self.settings, self.count = settings, count
        self.conns: list[Connection] = []  # each worker's replies (read by `RenderPool`)
        self.requests: list[Connection] = []  # each worker's recipes, written without blocking
        self.unsent: list[bytearray] = []  # by worker: what its pipe could not take yet
        self.procs: list[Any] = []
        self.used = False  # one pool feeds them: replies are numbered by its positions
        self._papers: dict[int, int] = {}  # id(paper) -> its number in the worker

    def __enter__(self) -> RenderWorkers:
        if self.count < 1 or "fork" not in multiprocessing.get_all_start_methods():
            return self
        context = multiprocessing.get_context("fork")
        for _ in range(self.count):
            # One pipe each way: a recipe is tens of KB and a message too, so on one two-way
            # pipe the two could fill it from both ends at once and wait on each other forever.
            recipes, requests = context.Pipe(duplex=False)
            replies, answers = context.Pipe(duplex=False)
            _roomy(recipes)
            _roomy(replies)
            ours = [*self.conns, *self.requests, requests, replies]
            process = context.Process(
                target=_serve, args=(self.settings, recipes, answers, ours), name="digest-render", daemon=True
            )
            process.start()
            recipes.close()
            answers.close()
            os.set_blocking(requests.fileno(), False)  # the event loop writes what the pipe takes
            self.conns.append(replies)
            self.requests.append(requests)
            self.unsent.append(bytearray())
            self.procs.append(process)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self) -> None:
        """The workers exit (once the emails are out: publishing has no use for them)."""
        for conn in [*self.requests, *self.conns]:
            conn.close()  # the worker reads the end of its pipe and exits
        for process in self.procs:
            process.join(timeout=5)
            if process.is_alive():
                process.kill()
                process.join()
        self.requests, self.conns, self.procs = [], [], []

    def start(self, jobs: Sequence[Job]) -> bool:
        """Give the workers what `jobs`' recipes name (their papers, the TL;DRs): whether they take
        these jobs (no: not started, used already, or a job that is no recipe)."""
        recipes = [job.build for job in jobs if isinstance(job.build, Recipe)]
        if self.used or not self.conns or len(recipes) < len(jobs):
            return False
        self.used = True
        papers = {id(m.paper): m.paper for r in recipes for m in r.digest.matches}
        self._papers = {key: number for number, key in enumerate(papers)}
        builder = recipes[0].builder if recipes else None
        tldrs = builder.tldrs if builder is not None else None
        start = pickle.dumps(
            ("start", list(papers.values()), tldrs, self._builder(builder) if builder is not None else None),
            protocol=pickle.HIGHEST_PROTOCOL,
        )
        for worker in range(len(self.requests)):
            self.unsent[worker] += _framed(start)
        return True

    def ask(self, worker: int, position: int, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        """Worker `worker` builds `job`'s message (its reply carries `position`); what its pipe
        cannot take now, `loop` writes when it can."""
        recipe = job.build
        assert isinstance(recipe, Recipe)  # `start` took only recipes
        payload = pickle.dumps((position, self._flat(recipe)), protocol=pickle.HIGHEST_PROTOCOL)
        self.unsent[worker] += _framed(payload)
        self._write(worker, loop)

    def _flat(self, recipe: Recipe) -> tuple[Any, ...]:
        """`recipe` as plain tuples, numbers and strings, which pickle at C speed (its dataclasses
        and named tuples, reduced one by one in Python, took three times as long): the builder by
        its date, the reader by its fields, each paper by its number (one the workers were not
        given, whole), each hit as a tuple. `_rebuilt` makes it whole again in the worker."""
        digest, numbers = recipe.digest, self._papers
        sub = digest.subscriber
        return (
            recipe.builder.date,
            recipe.message_id,
            subscriber_values(sub),
            digest.date,
            digest.total_matched,
            dict(digest.similar),
            tuple(
                [
                    (numbers.get(id(m.paper), m.paper), m.score, tuple(map(tuple, m.hits)))
                    for m in digest.matches
                ]
            ),
        )

    def _write(self, worker: int, loop: asyncio.AbstractEventLoop) -> None:
        unsent, fd = self.unsent[worker], self.requests[worker].fileno()
        try:
            while unsent:
                del unsent[: os.write(fd, unsent)]
        except BlockingIOError:
            pass
        except OSError:  # the worker is gone: its end of the replies says so to `RenderPool`
            unsent.clear()
        if unsent:
            loop.add_writer(fd, self._write, worker, loop)
        else:
            loop.remove_writer(fd)

    def stop_writing(self, loop: asyncio.AbstractEventLoop) -> None:
        """The pool is done (its loop is closing): no more writes wait on it."""
        for conn in self.requests:
            with contextlib.suppress(Exception):
                loop.remove_writer(conn.fileno())

    def _builder(self, builder: Any) -> bytes:
        """The run's builder pickled for the workers, its renderer, settings and TL;DRs named
        (each worker has its own renderer, the settings it was forked with, the TL;DRs of
        "start"), never copied."""

        def named(kind: str, own: Any) -> Any:
            return lambda obj: (_shared, (kind,)) if own is None or obj is own else obj.__reduce_ex__(5)

        buffer = io.BytesIO()
        pickler = pickle.Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL)
        pickler.dispatch_table = copyreg.dispatch_table | {
            EmailRenderer: named("renderer", None),
            type(self.settings): named("settings", self.settings),
            TldrBook: named("tldrs", builder.tldrs),
        }
        pickler.dump(builder)
        return buffer.getvalue()


# A message is ~50 KB, and a pipe holds 64 KB: with the worker ahead of the sender its pipe was
# full, each message went through it a few pages at a time, and the event loop's read of one
# waited (and every SMTP connection with it) until the worker had the CPU again: 11% of the
# loop's samples while sending, 2% with 1 MB. 1 MB holds ~20 messages, each written whole; it is
# Linux's limit for a pipe without privileges (/proc/sys/fs/pipe-max-size), so less is tried next.
PIPE_SIZES = (1 << 20, 1 << 18)


def _roomy(conn: Connection) -> None:
    """A bigger buffer for `conn`'s pipe, where the platform has one (Linux)."""
    for size in PIPE_SIZES:
        try:
            fcntl.fcntl(conn.fileno(), fcntl.F_SETPIPE_SZ, size)
            return
        except (AttributeError, OSError):  # not Linux, or over the limit
            continue


# How much nicer than the run a render worker is (`os.nice`). The worker renders ahead of the
# sender into a bounded queue, so what it must never do is keep the event loop, or an SMTP
# server on the same machine, waiting for a core: at equal priority the bench's sink, which
# sets the pace, waited 6.2-6.3 s for one while sending to 10,000 readers on two cores, and
# 1.3-6.2 s with this (fetch -> last message accepted: 31.3-32.7 s -> 26.9-31.5 s). On a free
# core it changes nothing; on a machine busy with other work it gets a tenth of a core from each
# busy process. (SCHED_IDLE did a little better, but there it would get almost nothing.)
NICER = 10


def nicer() -> None:
    """This worker process behind the run's event loop for the CPU (`NICER`)."""
    with contextlib.suppress(OSError):
        os.nice(NICER)


def _framed(payload: bytes) -> bytes:
    """`payload` as `Connection.recv_bytes` reads it: its length first."""
    return struct.pack("!i", len(payload)) + payload


def _serve(settings: Settings, recipes: Connection, conn: Connection, inherited: list[Connection]) -> None:
    """A worker: on "start", what the recipes name; then build each recipe read from `recipes`
    and send its message back on `conn` with its position, in order."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    for other in inherited:  # the main process's ends: only then does its death end our pipe
        other.close()
    low, high = sorted((recipes.fileno(), conn.fileno()))  # every other descriptor is the run's
    os.closerange(3, low)
    os.closerange(low + 1, high)
    os.closerange(high + 1, os.sysconf("SC_OPEN_MAX"))
    gc.freeze()
    nicer()
    with contextlib.suppress(Exception):  # its templates compiled while the run fetches and plans
        _SHARED["renderer"] = EmailRenderer(settings)  # (the run checked them: this never fails)
    try:
        while True:
            message = pickle.loads(recipes.recv_bytes())
            if message[0] == "start":
                _, papers, tldrs, builder = message
                _SHARED.update(papers=papers, tldrs=tldrs, settings=settings)
                if "renderer" not in _SHARED:  # (setdefault would build one each time)
                    _SHARED["renderer"] = EmailRenderer(settings)
                _SHARED["builder"] = pickle.loads(builder) if builder is not None else None
                continue
            position, flat = message
            conn.send(_built(position, flat))
    except (EOFError, OSError, KeyboardInterrupt):
        pass
    finally:
        os._exit(0)  # nothing inherited (atexit hooks) runs here


def _rebuilt(flat: tuple[Any, ...]) -> Recipe:
    """The recipe `RenderWorkers._flat` made `flat` of."""
    date, message_id, reader, day, total, similar, matches = flat
    papers, builder = _SHARED["papers"], _SHARED["builder"]
    if builder.date != date:  # a late digest: its own day's date on the message
        builder = dataclasses.replace(builder, date=date)
    found = tuple(
        Match(papers[p] if type(p) is int else p, score, tuple([Hit(*hit) for hit in hits]))
        for p, score, hits in matches
    )
    return Recipe(builder, Digest(Subscriber(*reader), day, found, total, similar), message_id)


def _built(position: int, flat: tuple[Any, ...]) -> tuple[int, Any, Any]:
    try:
        return (position, _rebuilt(flat)(), None)
    except Exception as exc:  # the main process reports it, as it does its own
        text = str(exc) if isinstance(exc, DigestError) else f"{type(exc).__name__}: {exc}"
        return (position, None, (isinstance(exc, DigestError), text, traceback.format_exc()))
