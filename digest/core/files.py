"""Files that readers see whole or not at all: the one atomic write every stage uses.

No business logic. A write goes to a temporary file in the same folder, is flushed to disk, then
renamed over the old file: a kill at any moment leaves the old file or the new one, never half.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path

from digest.core.errors import ConfigError


def write_atomic(path: Path, content: str | bytes, *, mode: int = 0o644, sync_folder: bool = True) -> None:
    """Write `content` (text as UTF-8, or bytes as they are) to `path`.

    `mode` is the file's permissions (mkstemp makes 0600; published files are served by a web
    server, a key file stays 0600). The rename is durable once the folder is synced: here, or by
    the caller with `sync_folder(folder)` after writing many files to it (`sync_folder=False`).
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        data = content.encode("utf-8") if isinstance(content, str) else content
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    if sync_folder:
        sync_folder_of(path.parent)


def remove_leftovers(folder: Path) -> int:
    """Remove the temporary files that writes killed halfway left in `folder` and below; returns
    how many. Only for folders that one process writes at a time (the run lock guarantees it):
    otherwise a write in progress would lose its temporary file."""
    removed = 0
    for leftover in folder.rglob(".*.tmp") if folder.is_dir() else ():
        with contextlib.suppress(OSError):
            leftover.unlink()
            removed += 1
    return removed


def sync_folder_of(folder: Path) -> None:
    """Make the renames in `folder` durable (fsync the directory); a no-op where it cannot."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:  # pragma: no cover - platforms without directory fds
        return
    try:
        os.fsync(dir_fd)
    except OSError:  # pragma: no cover
        pass
    finally:
        os.close(dir_fd)


def check_writable(folder: Path, key: str) -> None:
    """ConfigError unless `folder` can be written to, or made in its nearest existing parent:
    found before a run fetches and sends, not after. Nothing is created here."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    problem = None
    if not existing.is_dir():
        problem = f"{existing} is not a folder"
    elif not os.access(existing, os.W_OK | os.X_OK):
        problem = f"no permission to write in {existing}"
    if problem:
        raise ConfigError(f"{key} = {str(folder)!r}: cannot write there: {problem}")
