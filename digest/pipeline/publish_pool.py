"""Writing the private feeds in forked worker processes, when there are many (`publishing`).

Helper for `pipeline/publishing.py`; no business logic. A private feed costs about a millisecond
of CPU (its items, the RSS template, its history from the ledger, the write): most of publishing
at 100,000 readers (20,000 feeds), and it runs after the emails are out, when the run's other
core is idle. Each worker is a `fork` of the run taken once the public site is written: it
inherits the templates, the paper views and the readers as they are, so only blocks of feed
indices go to it and only the paths it wrote come back.

- The state's connection does not cross the fork: a worker closes its copy of the run's SQLite
  connection (the run's read lock on the file keeps SQLite from checkpointing there) and every
  other descriptor it inherited but its pipe and stdio, by number: the run's PostgreSQL socket
  (through psycopg, that would end the run's session) and the SQLite state's run lock (an flock,
  which a copy of its descriptor would hold past a killed run). Then it opens its own (`reopen`).
- Blocks go out in order, each to the first worker free, and their paths come back in block
  order: the list is the one writing them in this process gives.
- A `DigestError` or `OSError` in a worker is raised here as itself (the run is partial, as when
  writing here); a bug keeps the worker's traceback. A worker that dies, or is silent for
  `BLOCK_TIMEOUT` (then killed), or cannot be forked, costs only time: its blocks and those not
  written yet are written here. A block written twice is the same files, each one atomically.
- A worker ignores SIGINT and SIGTERM (a Ctrl-C reaches the whole process group): the main
  process stops them. It exits when the main process dies: its pipe ends.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import multiprocessing
import os
import pickle
import signal
import sqlite3
import traceback
from collections.abc import Callable, Sequence
from multiprocessing.connection import Connection, wait
from pathlib import Path
from typing import Any

from digest.core.errors import DigestError, RenderError
from digest.core.files import remove_leftovers
from digest.render.archive import WriteFeeds
from digest.store import Store

_log = logging.getLogger("digest")

# Below this many private feeds, forking costs more than it saves (~2.5 ms of CPU a feed)
PARALLEL_AT = 500
# A block takes about a second to write; a worker silent this long is stuck (a lock some other
# thread held at the fork, say) and is killed, so that publishing never waits on it forever.
BLOCK_TIMEOUT = 120.0
_QUEUED = 2  # blocks in a worker's pipe: it starts the next as soon as it sends one back


def worker_count() -> int:
    """One worker beside this process, which writes blocks too: two cores busy. Each worker
    costs memory (what it allocates lands in the pages it shares with the run, which it then
    copies: ~75 MB at 10,000 readers), so not one a core."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return min(1, cores - 1)


def write_in_workers(
    write: WriteFeeds,
    count: int,
    *,
    workers: int,
    block: int,
    store: Store,
    reopen: Callable[[], None],
    folder: Path,
) -> list[Path]:
    """`write` over indices 0 to `count` in blocks of `block`, in `workers` forked processes;
    the paths written, in index order. `store` is the run's state (forgotten in a worker),
    `reopen` gives the feeds a state connection of the worker's own, and `folder` is where they
    are written (a worker killed half-way through a write leaves its temporary file there)."""
    blocks = [range(start, min(start + block, count)) for start in range(0, count, block)]
    done: dict[int, list[Path]] = {}
    # never with a transaction open here: a forked copy of a SQLite connection in the middle of
    # a write would roll it back on close, over the run's shared memory index (none is open when
    # publishing runs; this keeps it so)
    idle = not getattr(store.conn, "in_transaction", False)
    if "fork" in multiprocessing.get_all_start_methods() and workers >= 1 and len(blocks) > 1 and idle:
        with _Pool(write, blocks, workers, store, reopen, folder) as pool:
            done = pool.run()
    for n, indices in enumerate(blocks):  # what no worker wrote (one died, or none started)
        if n not in done:
            done[n] = write(indices)
    return [path for n in range(len(blocks)) for path in done[n]]


class _Pool:
    """The workers, each with its pipe and the blocks it was given and has not answered."""

    def __init__(
        self,
        write: WriteFeeds,
        blocks: Sequence[range],
        workers: int,
        store: Store,
        reopen: Callable[[], None],
        folder: Path,
    ) -> None:
        self.write, self.blocks, self.store, self.reopen = write, blocks, store, reopen
        self.folder = folder
        self.lost = False  # a worker died or was killed: it may have left a temporary file
        self.size = min(workers, len(blocks))
        self.conns: list[Connection] = []
        self.procs: list[Any] = []
        self.given: dict[int, list[int]] = {}  # worker -> the blocks it holds, in order
        self.next = 0  # the first block not given to a worker yet
        self.done: dict[int, list[Path]] = {}

    def __enter__(self) -> _Pool:
        # Until the workers are done, the collector here leaves alone what the run holds (at
        # 100,000 readers a full collection of it takes seconds, while this process only waits),
        # and theirs never walks what they inherited: its pages stay shared.
        gc.freeze()
        try:
            self._start()
        except BaseException:
            self.__exit__(None, None, None)
            raise
        return self

    def _start(self) -> None:
        context = multiprocessing.get_context("fork")
        for worker in range(self.size):
            ours, theirs = context.Pipe()
            process = context.Process(
                target=self._serve, args=(theirs, [*self.conns, ours]), name="digest-publish", daemon=True
            )
            try:
                process.start()
            except OSError as exc:  # no memory or no process left for a fork: written here instead
                _log.warning("publishing: no worker process (%s); the feeds are written here", exc)
                ours.close()
                theirs.close()
                break
            theirs.close()
            self.conns.append(ours)
            self.procs.append(process)
            self.given[worker] = []

    def __exit__(self, *exc: object) -> None:
        for conn in self.conns:
            conn.close()  # a worker reads the end of its pipe and exits
        for process in self.procs:
            # a worker at work after a failure (or a Ctrl-C) would write on for nothing
            process.join(timeout=5 if exc[0] is None else 0)
            if process.is_alive():
                process.kill()
                process.join()
                self.lost = True
        gc.unfreeze()
        if self.lost:  # no worker writes any more: what one left half-written goes
            remove_leftovers(self.folder)

    def run(self) -> dict[int, list[Path]]:
        """The paths of each block written, by the workers or, while none has an answer, here;
        stops at the first error, raised here."""
        for worker in list(self.given):
            self._give(worker)
        while self.given and any(self.given.values()):
            busy = [self.conns[w] for w in self.given if self.given[w]]
            ready = wait(busy, timeout=0 if self.next < len(self.blocks) else BLOCK_TIMEOUT)
            if not ready and self.next < len(self.blocks):  # this process writes one too
                self.next += 1
                self.done[self.next - 1] = self.write(self.blocks[self.next - 1])
                continue
            if not ready:  # every worker holding a block is stuck
                for worker in [w for w in self.given if self.given[w]]:
                    self.procs[worker].kill()
                    self._lost(worker, f"gave no answer in {BLOCK_TIMEOUT:g} s and was stopped")
                continue
            for conn in ready:
                self._receive(next(w for w in self.given if self.conns[w] is conn))
        return self.done

    def _give(self, worker: int) -> None:
        while len(self.given[worker]) < _QUEUED and self.next < len(self.blocks):
            try:
                self.conns[worker].send(self.next)
            except OSError:
                self._lost(worker, "stopped")
                return
            self.given[worker].append(self.next)
            self.next += 1

    def _receive(self, worker: int) -> None:
        try:
            block, paths, error = self.conns[worker].recv()
        except (EOFError, OSError):
            self._lost(worker, "stopped")
            return
        if block < 0:  # it could not open the state (no connection left on the server, say)
            self._lost(worker, f"could not open the state ({error[2]})")
            return
        if error is not None:
            raise _rebuilt(*error)
        self.given[worker].remove(block)
        self.done[block] = paths
        self._give(worker)

    def _lost(self, worker: int, what: str) -> None:
        """A worker gone: its blocks are written here, after the others' (`write_in_workers`)."""
        process = self.procs[worker]
        process.join(timeout=1)
        self.lost = True
        _log.warning(
            "publishing: a worker %s (exit code %s); its feeds are written here", what, process.exitcode
        )
        del self.given[worker]

    def _serve(self, conn: Connection, inherited: list[Connection]) -> None:
        """A worker: write each block whose number comes on `conn`, and send back its paths."""
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        try:
            for other in inherited:  # the main process's ends: only then does its death end our pipe
                other.close()
            _forget_the_run_state(self.store, keep=conn.fileno())
            self.reopen()
            while True:
                block = conn.recv()
                try:
                    reply: tuple[int, Any, Any] = (block, self.write(self.blocks[block]), None)
                except Exception as exc:  # raised in the main process, as it would be there
                    reply = (block, None, _error(exc))
                conn.send(reply)
        except (EOFError, OSError, KeyboardInterrupt):
            pass
        except Exception as exc:  # opening our own state failed: told to the main process
            with contextlib.suppress(Exception):
                conn.send((-1, None, _error(exc)))
        finally:
            os._exit(0)  # nothing inherited (the run's state, atexit hooks) runs here


def _forget_the_run_state(store: Store, *, keep: int) -> None:
    """Drop every tie to the run's state but `store`'s Python object, which is never used again.

    A SQLite connection is closed through SQLite, so that the connection we open next does not
    share its bookkeeping of the file (SQLite keeps one per file and process, and ours is a copy
    of the run's). Every other descriptor is closed by its number alone, never through what owns
    it: a PostgreSQL socket (psycopg would end the run's session) and the SQLite state's run lock
    (an flock: unlocking it here would unlock the run's) among them."""
    if isinstance(store.conn, sqlite3.Connection):
        with contextlib.suppress(Exception):
            store.conn.close()
    os.closerange(3, keep)
    os.closerange(keep + 1, os.sysconf("SC_OPEN_MAX"))


def _error(exc: BaseException) -> tuple[bytes | None, bool, str, str]:
    """`exc` for the main process: itself pickled, when it comes back whole, else its words."""
    expected = isinstance(exc, DigestError | OSError)
    text = str(exc) if expected else f"{type(exc).__name__}: {exc}"
    blob: bytes | None = None
    with contextlib.suppress(Exception):
        whole = pickle.dumps(exc)
        pickle.loads(whole)  # an error whose __init__ takes other arguments does not come back
        blob = whole
    return blob, expected, text, traceback.format_exc()


def _rebuilt(blob: bytes | None, expected: bool, text: str, trace: str) -> BaseException:
    if blob is not None:
        exc: BaseException = pickle.loads(blob)
    else:
        exc = RenderError(text) if expected else RuntimeError(text)
    if not expected:  # a bug: where it happened
        exc.add_note(f"in the publishing worker:\n{trace}")
    return exc
