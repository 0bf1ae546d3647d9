"""Turn a rendered digest into the email message every transport sends.

No network, no clock (the caller passes `now`), no state: a pure function of its inputs, so the
headers can be checked exactly in tests.

Every header value that comes from outside the code (a subscriber's name, a paper title inside the
subject, the configured From and List-Id) is sanitised: control characters, CR and LF, and the
Unicode line separators become spaces, so no value can ever start a header of its own.
"""

from __future__ import annotations

import datetime as dt
import email.errors
import email.policy
import re
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid, parseaddr
from typing import Any
from urllib.parse import quote

from digest.config import Settings
from digest.errors import ConfigError, SendError
from digest.models import RenderedEmail, Subscriber
from digest.tokens import unsubscribe_token

# email.policy.SMTP: CRLF line endings, as the message travels over SMTP and is stored in .eml files.
POLICY = email.policy.SMTP

# C0 and C1 controls (CR, LF, NUL, TAB...), DEL, and what str.splitlines() also treats as a line end.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]+")
_SPACES = re.compile(r" {2,}")


def sanitize_header(value: str) -> str:
    """`value` with every control or line-breaking character replaced by a space, trimmed."""
    return _SPACES.sub(" ", _UNSAFE.sub(" ", value)).strip()


def message_domain(settings: Settings) -> str:
    """The domain of [smtp] from, for Message-IDs (IDNA-encoded, so the header stays ASCII)."""
    domain = _from_addr(settings).rpartition("@")[2].strip().rstrip(".")
    try:
        return domain.encode("idna").decode("ascii") if domain else "localhost"
    except UnicodeError:
        return "localhost"


def unsubscribe_urls(settings: Settings, key: bytes, email_address: str) -> tuple[str, str | None]:
    """The mailto unsubscribe link, and the https one when [output] base_url is https.

    The one place these links are made: the List-Unsubscribe header and the email's footer
    (`pipeline.links_for`) show the same ones.
    """
    token = unsubscribe_token(key, email_address)
    mailto = f"mailto:{_from_addr(settings)}?subject={quote('unsubscribe ' + token)}"
    base_url = settings.output.base_url
    if not (base_url and base_url.startswith("https://")):
        return mailto, None
    return mailto, quote(
        sanitize_header(base_url), safe=":/?#[]@!$&'()*+,;=%~"
    ) + f"unsubscribe?token={token}"


def build_message(
    rendered: RenderedEmail,
    subscriber: Subscriber,
    settings: Settings,
    *,
    date: dt.date,
    key: bytes,
    now: dt.datetime,
) -> EmailMessage:
    """One digest email for `subscriber`: headers, then text and HTML alternatives (text first).

    `date` is the run date (no header needs it today; it keeps every per-day call alike), `key`
    signs the unsubscribe token, `now` is the Date header.
    """
    sender = _sender(settings)
    try:
        to = Address(display_name=sanitize_header(subscriber.name), addr_spec=subscriber.email.strip())
    except (ValueError, IndexError, email.errors.HeaderParseError) as exc:
        raise SendError(subscriber.email, f"not a usable email address ({exc})", permanent=True) from None

    msg = EmailMessage(policy=POLICY)
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = sanitize_header(rendered.subject)
    msg["Date"] = format_datetime(now if now.tzinfo else now.replace(tzinfo=dt.UTC))
    msg["Message-ID"] = make_msgid(domain=message_domain(settings))
    msg["List-Id"] = sanitize_header(settings.delivery.list_id)

    mailto, https = unsubscribe_urls(settings, key, subscriber.email)
    links = [f"<{mailto}>"] + ([f"<{https}>"] if https else [])
    msg["List-Unsubscribe"] = _Prefolded("List-Unsubscribe", links)
    if https:
        # RFC 8058: only with an https link, which a mail provider may POST to without a human.
        msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"

    msg.set_content(rendered.text)
    msg.add_alternative(rendered.html, subtype="html")
    for part in msg.iter_parts():
        del part["MIME-Version"]  # the stdlib leaves one on the part add_alternative made; it belongs on top
    return msg


def _sender(settings: Settings) -> Address:
    """[smtp] from as one address (an Address quotes the name, whatever characters it has)."""
    name, addr = parseaddr(sanitize_header(settings.smtp.from_))
    try:
        if "@" in addr:
            return Address(display_name=name, addr_spec=addr)
    except (ValueError, IndexError, email.errors.HeaderParseError):
        pass
    raise ConfigError(
        f"[smtp] from = {settings.smtp.from_!r} is not an email address; "
        'write it as from = "Paper Digest <digest@example.org>"'
    )


def _from_addr(settings: Settings) -> str:
    return _sender(settings).addr_spec


class _Prefolded(str):
    """A header value folded by us, one item per line.

    The stdlib folder turns any word longer than a line (a long unsubscribe URL) into RFC 2047
    encoded-words, which mail clients do not read as a URL. `EmailPolicy` stores a value that has a
    `name` as a ready header object and calls its `fold` (documented in `email.policy`), so this
    keeps each `<...>` whole: RFC 2369 allows folding between the items, never inside one.
    """

    name: str
    _items: list[str]

    def __new__(cls, name: str, items: list[str]) -> _Prefolded:
        # Items are ASCII and free of whitespace by construction; enforce it anyway.
        clean = [sanitize_header(i).replace(" ", "%20").encode("ascii", "strict").decode() for i in items]
        self = super().__new__(cls, ", ".join(clean))
        self.name = name
        self._items = clean
        return self

    def fold(self, *, policy: Any) -> str:
        linesep = policy.linesep
        return f"{self.name}: " + f",{linesep} ".join(self._items) + linesep
