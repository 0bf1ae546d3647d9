"""The run's subscribers.toml read in a forked child while the run checks and fetches.

Helper for `daily.run`; no business logic. Two reasons, both measured at 100,000 readers
(BENCHMARKS.md, "Profiles read beside the fetch"):

- Memory. Parsing subscribers.toml and validating it allocates ~230 MB of small objects, of which
  the `Subscriber`s keep about half. Read in the run's own process, the rest stays as freed memory
  the allocator keeps and the plan does not fill: 295 MB after loading. The child sends each
  reader as the tuple of its fields, its lists of terms and its few words shared with the readers
  that have the same ones (a keyword a thousand readers wrote is pickled once, and is one object
  in the run): 131 MB after loading.
- Time. The fetch waits on the network, and on a second core the profiles load meanwhile. The run
  waits for them before it stores anything (`fetch_day`'s `before_store`), and before it opens a
  state it would create or migrate (or a PostgreSQL one, whose lock may wait for another runner:
  `daily._opened`), so bad profiles still leave the state as it was; and an error the run meets before that (templates, the state, every
  source down) waits for the profiles first, so a run still reports a profile error first
  (`first`), as it did when it read them before anything else.

The child reads the file and nothing else: the web readers (`readers.with_web_readers`) are read
by the run, from the state, which a forked copy of the process must not touch (SQLite's locks are
the process's: a child's view of them is the parent's at the fork).

A small file (under `FORK_AT` bytes) is read in the run's process on enter, before anything else:
a fork is not worth it there.
A child that dies or answers what cannot be read costs only time: the run reads the file itself,
and whatever goes wrong then is raised as it always was.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import pickle
import signal
from collections.abc import Iterator
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

from digest.config import Settings
from digest.core.errors import ConfigError, DigestError
from digest.core.models import SUBSCRIBER_FIELDS, Subscriber, subscriber_values
from digest.core.speed import gc_paused
from digest.pipeline.readers import Readers, toml_readers, with_web_readers
from digest.profiles import subscribers_path_from

log = logging.getLogger("digest.readers")

# subscribers.toml from this size (~1,800 readers, a quarter of a second to read) is read in a child
FORK_AT = 512 * 1024
# What readers may have alike, by position in `SUBSCRIBER_FIELDS`: their lists of terms, and a few words.
# (A field left out is sent as it is, only not shared: values never change, only objects do.)
_SHARED_LISTS = [SUBSCRIBER_FIELDS.index(name) for name in ("keywords", "exclude", "authors", "categories", "sources", "like", "dislike")]  # fmt: skip
_SHARED_WORDS = [
    SUBSCRIBER_FIELDS.index(name) for name in ("empty", "language", "cadence", "weekday", "trending", "mode")
]


class ReadersFork:
    """`load_readers(settings, path)`, its file read by a child forked on enter when it is big
    (else read on enter, as a run always read it first); `readers()` waits for it."""

    def __init__(self, settings: Settings, subscribers_path: Path | str | None) -> None:
        self.settings = settings
        self.path = subscribers_path_from(subscribers_path, settings)
        self.process: Any = None
        self.conn: Connection | None = None
        self.toml: list[Subscriber] | None = None  # the file's readers, once read
        self.failed: ConfigError | None = None  # the file's problems, once found: raised again
        self.loaded: Readers | None = None

    def __enter__(self) -> ReadersFork:
        if "fork" not in multiprocessing.get_all_start_methods() or _size(self.path) < FORK_AT:
            self.toml = self._read_here()  # a small file: its problems before anything else
            return self
        context = multiprocessing.get_context("fork")
        conn, answer = context.Pipe(duplex=False)
        process = context.Process(
            target=_child,
            args=(self.settings, self.path, answer, conn),
            name="digest-readers",
            daemon=True,
        )
        # A Ctrl-C between the fork and the child's own handler would print its traceback: held
        # until the child ignores it (the mask is inherited), then delivered here as usual.
        masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
        try:
            process.start()
        except OSError as exc:  # no memory or no process left for a fork: read here instead
            log.debug("profiles read in the run's process: %s", exc)
            conn.close()
            answer.close()
            return self
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, masked)
        answer.close()
        self.process, self.conn = process, conn
        return self

    def __exit__(self, *exc: object) -> None:
        self._end()

    def readers(self) -> Readers:
        """The readers: the file's (the child's when it has them, else read here; ConfigError as
        ever, the same one again on a later call) and the web's."""
        if self.loaded is None:
            self.loaded = with_web_readers(self.settings, self.path, self.ready())
        return self.loaded

    def ready(self) -> list[Subscriber]:
        """The file's readers (ConfigError), waited for: before the run creates or migrates the
        state, or waits for another runner's lock, none of which a bad profile may cause."""
        if self.toml is None:
            self.toml = self._answer()
        if self.toml is None:
            self.toml = self._read_here()
        return self.toml

    def _read_here(self) -> list[Subscriber]:
        if self.failed is None:
            try:
                return toml_readers(self.settings, self.path)
            except ConfigError as exc:
                self.failed = exc
        raise self.failed

    @contextlib.contextmanager
    def first(self) -> Iterator[None]:
        """An error of the run raised inside waits for the profiles: theirs, when they have one,
        is raised instead (a run reports its profiles' problems before anything else)."""
        try:
            yield
        except DigestError:
            self.ready()
            raise

    def _answer(self) -> list[Subscriber] | None:
        """The readers the child sent (its ConfigError raised as it was), or None: none, or none
        to read."""
        if self.failed is not None:
            raise self.failed
        if self.conn is None:
            return None
        try:
            if not self.conn.poll(_patience(self.path)):
                raise TimeoutError("it took too long")
            with gc_paused():  # 100,000 readers' rows: no garbage for the collector to look for
                kind, *rest = pickle.loads(self.conn.recv_bytes())
                if kind == "readers":
                    return [Subscriber(*row) for row in rest[0]]
        except Exception as exc:  # no answer (dead, stuck, garbled): read here
            log.debug("the profiles' child gave no answer (%s): read in the run's process", exc)
            return None
        finally:
            self._end()
        message, problems = rest
        self.failed = ConfigError(message, problems)
        raise self.failed

    def _end(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None
        if self.process is not None:
            if self.process.is_alive():
                self.process.kill()  # the run ended (an error, Ctrl-C) before it took the answer
            self.process.join()
            self.process = None


def _child(settings: Settings, path: Path, answer: Connection, ours: Connection) -> None:
    """In the child: the file's readers as rows of shared values, or the ConfigError's words.
    Anything else ends it without an answer, quietly: the run reads the file itself, and meets it."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the run's to handle: it ends this one
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGINT})
    # The run's end of the pipe: with it closed here, a run that dies (SIGKILL) makes the answer's
    # write fail, and this process ends, instead of waiting forever for a reader of its answer.
    ours.close()
    try:
        try:
            shared: dict[Any, Any] = {}
            reply: tuple[Any, ...] = ("readers", [_row(sub, shared) for sub in toml_readers(settings, path)])
        except ConfigError as exc:
            reply = ("error", str(exc), exc.problems)
        answer.send_bytes(pickle.dumps(reply, protocol=pickle.HIGHEST_PROTOCOL))
    except Exception:  # the run reads the file itself (or is gone)
        pass
    finally:
        answer.close()


def _row(sub: Subscriber, shared: dict[Any, Any]) -> tuple[Any, ...]:
    """A reader's fields in `Subscriber(*row)` order, each value readers may share (their lists
    and their strings but the address, name and query) the one `shared` holds: pickle writes an
    object it has written once as a reference to it."""
    row = list(subscriber_values(sub))
    for i in _SHARED_LISTS:
        if row[i]:
            known = shared.get(row[i])
            if known is None:
                known = shared[row[i]] = tuple([shared.setdefault(item, item) for item in row[i]])
            row[i] = known
    for i in _SHARED_WORDS:
        if row[i]:
            row[i] = shared.setdefault(row[i], row[i])
    return tuple(row)


def _patience(path: Path) -> float:
    """Seconds to wait for the child: far more than reading the file takes (~2 MB a second), so
    that only a child that hangs (a lock some thread of `digest serve` held at the fork) is given up."""
    return 60.0 + _size(path) / (256 * 1024)


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0  # read here, where a missing file gets its message
