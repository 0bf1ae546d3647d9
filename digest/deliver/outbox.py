"""The outbox transport: each message becomes one .eml file in a directory, nothing is mailed.

For a first run without an SMTP server, for previews, and for handing the mail to another
program. Files are written atomically (a temporary file in the same directory, fsync, rename), so
a reader never sees half a message and a crash leaves no partial file behind.
"""

from __future__ import annotations

import asyncio
import re
from pathlib import Path
from types import TracebackType
from typing import Self

from digest.core.files import write_atomic
from digest.deliver import ConnectionFailure, Outcome, OutgoingMessage, Ready

_UNSAFE_NAME = re.compile(r"[^A-Za-z0-9._@+-]+")
# `build_message` starts the Message-ID with the digest's date.
_DIGEST_DATE = re.compile(r"<?([0-9]{4}-[0-9]{2}-[0-9]{2})\.")


def eml_name(message: OutgoingMessage) -> str:
    """`<digest date>_<message id>.eml`, reduced to characters that are safe in any file system.

    The date is the digest's (from the Message-ID), not the day it was written: a late digest
    sorts with its own day. A Message-ID without one (made elsewhere, or before digests carried
    it) falls back to the Date header's day.
    """
    found = _DIGEST_DATE.match(message.message_id.strip())
    day = found.group(1) if found else message.date.date().isoformat()
    message_id = message.message_id.strip().strip("<>")
    stem = _UNSAFE_NAME.sub("_", f"{day}_{message_id}").strip("._")[:200] or "message"
    return f"{stem}.eml"


class OutboxTransport:
    """Write messages into `directory` (created when missing)."""

    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    async def __aenter__(self) -> Self:
        try:
            self.directory.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConnectionFailure(str(self.directory), f"cannot create the outbox: {exc}") from None
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        return None

    async def send(self, message: OutgoingMessage, worker: int, ready: Ready | None = None) -> Outcome:
        path = self.directory / eml_name(message)
        if ready is not None:
            ready()  # the file appears whole or not at all: a failure below leaves nothing behind
        try:
            await asyncio.to_thread(write_atomic, path, message.data, mode=0o600)
        except OSError as exc:
            # A full or read-only disk fails every message alike: report it as the destination
            # being unreachable, so the run stops and leaves the rest pending.
            raise ConnectionFailure(str(self.directory), f"cannot write {path.name}: {exc}") from None
        return Outcome("sent", f"250 written to {path}")
