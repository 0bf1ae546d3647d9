"""Readers who subscribed on the web (`digest.web`), in the `web_readers` table beside the readers
of subscribers.toml, which stays the source of truth for its own and is never rewritten.

A row is made by a subscribe form with its profile `pending` and a fresh `nonce`; the confirmation
link carries the nonce, and confirming moves `pending` into `profile`. Until then the address gets
nothing but that one link. Profiles are stored as the JSON of the [[subscribers]] table the reader
wrote, and validated again whenever they are read (the list of sources may have changed since).
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from typing import Any, NamedTuple

from digest.store.codec import iso
from digest.store.sqlite import SqliteState


class WebReader(NamedTuple):
    email: str
    profile: dict[str, Any] | None  # the confirmed [[subscribers]] table; None until confirmed
    pending: dict[str, Any] | None  # a profile waiting for its confirmation link
    nonce: str
    paused: bool
    created: str
    updated: str

    @property
    def active(self) -> bool:
        return self.profile is not None and not self.paused

    @property
    def described(self) -> str:
        """The reader as `digest check` lists them."""
        state = "waiting for confirmation" if self.profile is None else "paused" if self.paused else "confirmed"
        return f"web reader: {self.email} ({state}, since {self.created})"


def _loads(text: str | None) -> dict[str, Any] | None:
    return None if text is None else dict(json.loads(text))


def _dumps(profile: Mapping[str, Any]) -> str:
    return json.dumps(dict(profile), ensure_ascii=False, sort_keys=True)


class WebReaderStore(SqliteState):
    """The `web_readers` table (mixed into `Store`). Addresses compare case-insensitively."""

    def web_reader(self, email: str) -> WebReader | None:
        row = self.conn.execute(
            "SELECT email, profile, pending, nonce, paused, created, updated FROM web_readers WHERE email = ?",
            (email,),
        ).fetchone()
        return None if row is None else _reader(row)

    def web_readers(self) -> list[WebReader]:
        """Every web reader, confirmed or not, by address."""
        rows = self.conn.execute(
            "SELECT email, profile, pending, nonce, paused, created, updated FROM web_readers ORDER BY email"
        )
        return [_reader(row) for row in rows]

    def set_pending(self, email: str, profile: Mapping[str, Any], nonce: str, now: dt.datetime) -> None:
        """A subscribe form: `profile` waits for the link carrying `nonce` (an earlier link is void).
        A confirmed reader keeps receiving their confirmed profile meanwhile."""
        with self.transaction() as db:
            db.execute(
                "INSERT INTO web_readers (email, pending, nonce, created, updated) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (email) DO UPDATE SET pending = excluded.pending, nonce = excluded.nonce, "
                "updated = excluded.updated",
                (email, _dumps(profile), nonce, iso(now), iso(now)),
            )

    def confirm_pending(self, email: str, nonce: str, now: dt.datetime) -> bool:
        """Follow a confirmation link: its profile becomes the reader's. False when the link is not
        the latest one sent to the address, or was used already."""
        with self.transaction() as db:
            done = db.execute(
                "UPDATE web_readers SET profile = pending, pending = NULL, paused = 0, updated = ? "
                "WHERE email = ? AND nonce = ? AND pending IS NOT NULL",
                (iso(now), email, nonce),
            )
            return done.rowcount == 1

    def update_web_profile(self, email: str, profile: Mapping[str, Any], now: dt.datetime) -> bool:
        """A confirmed reader edits their profile (from a signed manage link)."""
        with self.transaction() as db:
            done = db.execute(
                "UPDATE web_readers SET profile = ?, updated = ? WHERE email = ? AND profile IS NOT NULL",
                (_dumps(profile), iso(now), email),
            )
            return done.rowcount == 1

    def pause_web_reader(self, email: str, paused: bool, now: dt.datetime) -> bool:
        with self.transaction() as db:
            done = db.execute(
                "UPDATE web_readers SET paused = ?, updated = ? WHERE email = ? AND profile IS NOT NULL",
                (int(paused), iso(now), email),
            )
            return done.rowcount == 1

    def remove_web_reader(self, email: str) -> bool:
        """The reader leaves: their row goes (their suppressions and ledger rows stay, as for anyone)."""
        with self.transaction() as db:
            return db.execute("DELETE FROM web_readers WHERE email = ?", (email,)).rowcount == 1


def _reader(row: tuple[Any, ...]) -> WebReader:
    email, profile, pending, nonce, paused, created, updated = row
    return WebReader(email, _loads(profile), _loads(pending), nonce, bool(paused), created, updated)
