"""What the reader's pages do, as library calls (callable from Python without a server): subscribe
with double opt-in, confirm, manage a web profile, unsubscribe and undo, export to TOML.

State changes go through the store, each in one transaction, and only after every check passed, so
a refused request leaves the state as it was. Nothing here says whether an address is subscribed
to someone who does not hold a signed link for it: a subscribe form gets the same answer whatever
the address, and mails only that address.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from digest import commands
from digest.config import Settings, signing_key
from digest.core.errors import DigestError
from digest.core.models import Subscriber, utcnow
from digest.core.status import SuppressionKind
from digest.core.tokens import timed_token, unsubscribe_token, verify_timed, verify_unsubscribe
from digest.pipeline.readers import load_readers
from digest.store import Store, WebReader
from digest.web.forms import Draft
from digest.web.mail import confirmation, send_one
from digest.web.security import RateLimit

log = logging.getLogger("digest.web")

Asked = Literal["sent", "limited", "mail-failed"]


@dataclass(frozen=True)
class ManageView:
    """What a manage link opens: a web reader's own profile, or a file reader's (read-only here)."""

    email: str
    web: WebReader | None  # None: the reader is in subscribers.toml, which the web never rewrites
    toml: Subscriber | None
    unsubscribed: bool
    unsubscribe_token: str


class WebSide:
    """The reader's side of one digest: its settings, signing key and rate limits."""

    def __init__(self, settings: Settings, *, clock: Callable[[], dt.datetime] = utcnow) -> None:
        self.settings = settings
        self.key = signing_key(settings)
        self.clock = clock
        web = settings.web
        self.per_ip = RateLimit(web.subscribe_per_ip_hour, 3600)
        self.previews = RateLimit(web.subscribe_per_ip_hour * 6, 3600)
        self.per_address = RateLimit(web.mail_per_address_day, 86400)

    @property
    def base(self) -> str:
        return self.settings.web.base_url or "/"

    def store(self) -> Store:
        return Store.from_config(self.settings.state)

    def _expiry(self, hours: float) -> int:
        return int(self.clock().timestamp() + hours * 3600)

    # -- subscribe, confirm ----------------------------------------------------------------------
    async def ask_confirmation(self, sub: Subscriber, table: dict[str, Any]) -> Asked:
        """Mail `sub` a confirmation link for `table`, then keep it pending under the link's nonce.

        The same for a new address, a pending one and a confirmed one (whose digest goes on with
        its confirmed profile until the new link is followed). Over the address's daily limit,
        nothing is sent and nothing changes; the page says the same as when it was sent.
        """
        email = sub.email.lower()
        if not self.per_address.allow(email):
            log.info("confirmation mail not sent: the address's daily limit is reached")
            return "limited"
        nonce = secrets.token_urlsafe(12)
        token = timed_token(
            self.key, "confirm", f"{email}\x00{nonce}", self._expiry(self.settings.web.confirm_hours)
        )
        message = confirmation(self.settings, sub.email, f"{self.base}confirm?token={token}", self.clock())
        try:
            taken = await send_one(self.settings, message)
        except DigestError as exc:
            log.warning("confirmation mail not sent: %s", exc)
            taken = False
        if not taken:
            return "mail-failed"  # nothing stored: the state is as before the form
        with self.store() as store:
            store.set_pending(email, {k: v for k, v in table.items() if k != "email"}, nonce, self.clock())
        return "sent"

    def pending_of(self, token: str) -> tuple[str, str] | None:
        """(address, nonce) of a valid, unexpired confirmation token."""
        value = verify_timed(self.key, "confirm", token, self.clock().timestamp())
        if value is None or "\x00" not in value:
            return None
        email, _, nonce = value.partition("\x00")
        return email, nonce

    def confirm(self, token: str) -> str | None:
        """Follow a confirmation link: the address, now a reader; None when the link is not
        valid, expired, replaced by a later one or used already. Lifts an earlier unsubscribe."""
        found = self.pending_of(token)
        if found is None:
            return None
        email, nonce = found
        with self.store() as store, store.transaction():  # both or neither
            if not store.confirm_pending(email, nonce, self.clock()):
                return None
            held = {e.lower(): s for e, s in store.suppressions().items()}
            if (sup := held.get(email)) is not None and sup.kind == SuppressionKind.UNSUBSCRIBED:
                store.lift_suppression(sup.email)  # subscribing again is asking to be taken back
        return email

    def manage_link(self, email: str) -> str:
        token = timed_token(
            self.key, "manage", email.lower(), self._expiry(self.settings.web.manage_days * 24)
        )
        return f"{self.base}manage?token={token}"

    # -- manage ----------------------------------------------------------------------------------
    def manage_email(self, token: str) -> str | None:
        return verify_timed(self.key, "manage", token, self.clock().timestamp())

    def manage_view(self, email: str) -> ManageView | None:
        """The reader a manage link was made for, or None when there is none any more."""
        readers = load_readers(self.settings, None, warn=False)
        toml = next((s for s in readers.toml if s.email.lower() == email), None)
        with self.store() as store:
            web = store.web_reader(email)
            held = {e.lower(): s for e, s in store.suppressions().items()}
        if web is not None and web.profile is None:
            web = None  # never confirmed: nothing to manage
        if web is None and toml is None:
            return None
        sup = held.get(email)
        unsubscribed = sup is not None and sup.kind == SuppressionKind.UNSUBSCRIBED
        return ManageView(email, web, toml, unsubscribed, unsubscribe_token(self.key, email))

    def save(self, email: str, draft: Draft) -> bool:
        """A web reader's edited profile (its address stays the one the link was made for)."""
        with self.store() as store:
            return store.update_web_profile(
                email, {k: v for k, v in draft.table.items() if k != "email"}, self.clock()
            )

    def pause(self, email: str, paused: bool) -> bool:
        with self.store() as store:
            return store.pause_web_reader(email, paused, self.clock())

    def leave(self, email: str) -> bool:
        with self.store() as store:
            return store.remove_web_reader(email)

    # -- unsubscribe -----------------------------------------------------------------------------
    def unsubscribe_email(self, token: str) -> str | None:
        return verify_unsubscribe(self.key, token)

    def unsubscribe(self, token: str) -> str | None:
        """RFC 8058 one-click, or the page's button: the reader is suppressed (as `digest
        unsubscribe` does) until undone; None for a token that is not ours."""
        if self.unsubscribe_email(token) is None:
            return None
        return commands.unsubscribe(self.settings, token).email

    def is_unsubscribed(self, email: str) -> bool:
        with self.store() as store:
            sup = {e.lower(): s for e, s in store.suppressions().items()}.get(email.lower())
        return sup is not None and sup.kind == SuppressionKind.UNSUBSCRIBED

    def undo(self, token: str) -> str | None:
        email = self.unsubscribe_email(token)
        if email is None or not self.is_unsubscribed(email):
            return None
        return commands.undo_unsubscribe(self.settings, email)


# -- export --------------------------------------------------------------------------------------
def _toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(str(value), ensure_ascii=False)  # a JSON string is a TOML basic string


def export_toml(settings: Settings) -> str:
    """The confirmed web readers as [[subscribers]] tables, to paste into subscribers.toml (then
    the file's profile wins and the web row can go). Paused and unsubscribed readers are written
    commented out."""
    readers = load_readers(settings, None, warn=False)
    in_file = {s.email.lower() for s in readers.toml}
    with Store.from_config(settings.state, create=False) as store:
        web = [r for r in store.web_readers() if r.profile is not None]
        gone = {
            e.lower() for e, held in store.suppressions().items() if held.kind == SuppressionKind.UNSUBSCRIBED
        }
    lines = [f"# {len(web)} web readers exported by `digest readers export`"]
    for reader in web:
        left = reader.email.lower() in gone
        note = " (paused)" if reader.paused else ""
        note += " (unsubscribed: suppressed until `digest unsubscribe --undo`)" if left else ""
        note += (
            " (also in the subscribers file, whose profile wins)" if reader.email.lower() in in_file else ""
        )
        prefix = "# " if reader.paused or left else ""
        table = {"email": reader.email, **(reader.profile or {})}
        lines += ["", f"# subscribed on the web {reader.created}{note}", f"{prefix}[[subscribers]]"]
        lines += [f"{prefix}{key} = {_toml_value(value)}" for key, value in table.items()]
    return "\n".join(lines) + "\n"
