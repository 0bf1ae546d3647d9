"""Turn a rendered digest into the bytes every transport sends.

No network, no clock (the caller passes `now`), no state: a pure function of its inputs, so the
headers can be checked exactly in tests (`OutgoingMessage.parsed()` reads them back with the
stdlib parser).

The wire bytes are written directly rather than through `email.message.EmailMessage`: the stdlib's
content manager, header registry, folder and generator cost several milliseconds per 60 KB digest,
more than sending it. What they gave us is kept, by construction:

- Every header value that comes from outside the code (a subscriber's name, a paper title inside
  the subject, the configured From and List-Id) is sanitised: control characters, CR and LF, and
  the Unicode line separators become spaces, so no value can ever start a header of its own.
  Anything not plain ASCII goes out as RFC 2047 encoded-words, and lines are folded at spaces.
- multipart/alternative, text/plain first then text/html, both UTF-8. The text part is
  quoted-printable. The HTML goes as plain 7bit: every non-ASCII character written as an HTML
  character reference (`&#233;`, which every HTML parser reads back as the character) and any line
  over 998 octets broken at a space (whitespace is whitespace to HTML), so it needs no transfer
  encoding at all. Quoted-printable made MJML's HTML a quarter bigger (every `=` of every
  attribute becomes `=3D`, plus a soft break every 76 characters) and four times as many lines:
  more bytes towards Gmail's 102 KB clipping, and more work for every server on the way, which
  reads DATA a line at a time. Where neither trick applies (non-ASCII inside a `<style>` block,
  where character references are not decoded; a run of 998 octets without a space) the HTML is
  quoted-printable as before. base64 is never used: spam filters score base64 text parts that
  need no encoding (SpamAssassin's MIME_BASE64_TEXT), and a digest that lands in spam is no digest.
- CRLF line endings; no header line over 78 octets but the List-Unsubscribe items; no line at all
  over 998.
- The boundary starts with "=_", which quoted-printable cannot produce, and carries 96 random
  bits, so no part can contain it.
- In the quoted-printable parts no line starts with ".", so SMTP's dot-stuffing has nothing to do
  there (the transport still does it, for the 7bit HTML too).
"""

from __future__ import annotations

import binascii
import datetime as dt
import email.errors
import email.policy
import random
import re
from collections.abc import Iterable
from email.utils import format_datetime
from urllib.parse import quote

from digest.config import Settings
from digest.core.addresses import addr_spec, domain_of, sanitize_header, sender_address
from digest.core.models import RenderedEmail, Subscriber
from digest.core.tokens import FEEDBACK_DIRECTIONS, feedback_token, timed_token, unsubscribe_token
from digest.deliver import OutgoingMessage, dot_lines

__all__ = [
    "POLICY",
    "OutgoingMessage",
    "build_message",
    "manage_url",
    "message_domain",
    "sanitize_header",
    "unsubscribe_urls",
]

# How the stdlib writes a message for SMTP and .eml files (CRLF line endings): what this module's
# bytes match, for callers that turn a parsed message back into bytes.
POLICY = email.policy.SMTP


def message_domain(settings: Settings) -> str:
    """The domain of [smtp] from, for Message-IDs (IDNA-encoded, so the header stays ASCII)."""
    return domain_of(settings.smtp.from_)


def unsubscribe_urls(settings: Settings, key: bytes, email_address: str) -> tuple[str, str | None]:
    """The mailto unsubscribe link, and the https one when `[delivery] unsubscribe_url` is set.

    The one place these links are made: the List-Unsubscribe header and the email's footer
    (`pipeline.links_for`) show the same ones. The mailto one reaches the From mailbox with the
    token in its subject, for `digest unsubscribe`; the https one is an endpoint the operator runs.
    """
    token = unsubscribe_token(key, email_address)
    mailto = f"mailto:{_from_addr(settings)}?subject={quote('unsubscribe ' + token)}"
    # [web] base_url: digest's own web side (digest.web) is the endpoint; it takes the one-click POST
    web = settings.web.base_url
    endpoint = f"{web}unsubscribe" if web else settings.delivery.unsubscribe_url
    if not endpoint:
        return mailto, None
    joiner = "&" if "?" in endpoint else "?"
    return mailto, quote(sanitize_header(endpoint), safe=":/?#[]@!$&'()*+,;=%~") + f"{joiner}token={token}"


def feedback_urls(
    settings: Settings, key: bytes, email_address: str, paper_ids: Iterable[str], *, examples: bool
) -> dict[str, tuple[str, str]]:
    """paper id -> its ("more like this", "fewer like this") links, per `[relevance]
    feedback_links` (`examples`: the reader has liked papers or feedback).

    With [web] base_url they are the web side's `/feedback` page; else mailto links to the From
    mailbox with the token in the subject, applied with `digest feedback` like an unsubscribe."""
    wanted = settings.relevance.feedback_links
    if wanted == "none" or (wanted == "examples" and not examples):
        return {}
    web = settings.web.base_url
    out = {}
    for pid in paper_ids:
        pair = []
        for direction in FEEDBACK_DIRECTIONS:
            token = feedback_token(key, email_address, pid, direction)
            if web:
                pair.append(f"{web}feedback?token={token}")
            else:
                pair.append(f"mailto:{_from_addr(settings)}?subject={quote(direction + ' ' + token)}")
        out[pid] = (pair[0], pair[1])
    return out


def manage_url(settings: Settings, key: bytes, email_address: str, date: dt.date) -> str | None:
    """The signed link to the reader's manage page (digest.web), with [web] base_url; it expires
    `[web] manage_days` after the digest's date (a date, not the clock, so a resend is the same)."""
    if not settings.web.base_url:
        return None
    start = dt.datetime.combine(date, dt.time(), tzinfo=dt.UTC)
    expires = int((start + dt.timedelta(days=settings.web.manage_days)).timestamp())
    return f"{settings.web.base_url}manage?token={timed_token(key, 'manage', email_address.lower(), expires)}"


def build_message(
    rendered: RenderedEmail,
    subscriber: Subscriber,
    settings: Settings,
    *,
    date: dt.date,
    key: bytes,
    now: dt.datetime,
    unsubscribe: tuple[str, str | None] | None = None,
    message_id: str | None = None,
) -> OutgoingMessage:
    """One digest email for `subscriber`: headers, then text and HTML alternatives (text first).

    `date` is the digest's date (it goes into the Message-ID, see `outbox.eml_name`), `key`
    signs the unsubscribe token, `now` is the Date header. `unsubscribe` is what
    `unsubscribe_urls(settings, key, subscriber.email)` returns, when the caller already has it.
    `message_id` is given when resending a digest that may have arrived (`--retry-unknown`): the
    same Message-ID lets the reader's mail client or server drop the second copy.
    """
    sender_name, sender = sender_address(settings.smtp.from_)
    recipient = addr_spec(subscriber.email)
    now = now if now.tzinfo else now.replace(tzinfo=dt.UTC)
    # The digest's date starts the Message-ID: what an outbox file is named by (`outbox.eml_name`),
    # since the Date header is when it was sent, and a late digest goes out days after its date.
    # 96 random bits make it unique; it is no longer than make_msgid's.
    message_id = (
        message_id or f"<{date.isoformat()}.{random.getrandbits(96):024x}@{domain_of(settings.smtp.from_)}>"
    )

    mailto, https = unsubscribe or unsubscribe_urls(settings, key, subscriber.email)
    links = [f"<{mailto}>"] + ([f"<{https}>"] if https else [])
    # RFC 2369 allows folding between the items, never inside one: a client must see each URL whole.
    items = [sanitize_header(i).replace(" ", "%20").encode("ascii", "strict").decode() for i in links]

    boundary = f"=_{random.getrandbits(96):024x}"
    head = [
        _folded("From", _mailbox(sender_name, sender)),
        _folded("To", _mailbox(sanitize_header(subscriber.name), recipient)),
        _unstructured("Subject", sanitize_header(rendered.subject)),
        f"Date: {format_datetime(now)}",
        f"Message-ID: {message_id}",
        _unstructured("List-Id", sanitize_header(settings.delivery.list_id)),
        "List-Unsubscribe: " + ",\r\n ".join(items),
    ]
    if https:
        # RFC 8058: only with an https link, which a mail provider may POST to without a human.
        head.append("List-Unsubscribe-Post: List-Unsubscribe=One-Click")
    head += [
        "MIME-Version: 1.0",
        f'Content-Type: multipart/alternative;\r\n boundary="{boundary}"',
        "",
        f"--{boundary}",
        'Content-Type: text/plain; charset="utf-8"',
        "Content-Transfer-Encoding: quoted-printable",
        "",
        "",
    ]
    html_encoding, html = _html_body(rendered.html)
    middle = (
        f"\r\n--{boundary}\r\n"
        'Content-Type: text/html; charset="utf-8"\r\n'
        f"Content-Transfer-Encoding: {html_encoding}\r\n\r\n"
    )
    before_html = (
        "\r\n".join(head).encode(),  # ASCII, or UTF-8 where an address is not ASCII (SMTPUTF8)
        _quoted_printable(rendered.text),
        middle.encode(),
    )
    data = b"".join((*before_html, html, f"\r\n--{boundary}--\r\n".encode()))
    # Every line ends in CRLF, and only the 7-bit HTML can start one with "." (header lines start
    # with a name or a fold's space, quoted-printable writes "=2E"): the dots are looked for there.
    dots = dot_lines(data, sum(map(len, before_html)), crlf=True)
    return OutgoingMessage(
        sender=sender, recipient=recipient, message_id=message_id, date=now, data=data, dots=dots
    )


# formataddr's rule: a display name with any of these is quoted.
_SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def _from_addr(settings: Settings) -> str:
    return sender_address(settings.smtp.from_)[1]


def _mailbox(name: str, addr: str) -> list[str]:
    """`name <addr>` as words that may be folded apart: a phrase, quoted or encoded as needed."""
    if not name:
        return [addr]
    if name.isascii() and "=?" not in name:
        phrase = name
        if _SPECIALS.search(name):
            phrase = '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if len(phrase) <= _WORD_MAX:
            return [phrase, f"<{addr}>"]
    return [*_encoded_words(name), f"<{addr}>"]


# -- headers ----------------------------------------------------------------------------------------
def _unstructured(name: str, value: str) -> str:
    """`name: value` (already sanitised) with any word that is not plain ASCII RFC 2047 encoded.

    Runs of such words are encoded together, the spaces inside them too, so a reader gets the exact
    text back: whitespace between two encoded-words is dropped, between one and plain text kept.
    """
    words: list[str] = []
    run: list[str] = []
    for word in value.split(" ") if value else ():
        if word.isascii() and "=?" not in word and len(word) <= _WORD_MAX:
            if run:
                words += _encoded_words(" ".join(run))
                run = []
            words.append(word)
        else:
            run.append(word)
    if run:
        words += _encoded_words(" ".join(run))
    return _folded(name, words)


def _folded(name: str, words: list[str]) -> str:
    """The header, `words` joined by spaces, a line break before any word that would pass 78."""
    lines = [f"{name}:"]
    for word in words:
        if len(lines[-1]) + 1 + len(word) > 78 and lines[-1] != f"{name}:":
            lines.append("")
        lines[-1] += " " + word
    return "\r\n".join(lines)


# Q-encoding keeps letters, digits and these as they are; "_" is a space; the rest is =XX. This is
# the set RFC 2047 allows inside a phrase, the strictest place a display name or subject goes.
_Q_SAFE = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 2047 allows 75 characters per encoded-word; shorter, so "Subject: " and any one word fit in
# a line of 78 (the longest header name here that takes outside text is 7 characters).
_WORD_MAX = 78 - len("Subject: ")
_WORD_ROOM = _WORD_MAX - len("=?utf-8?q??=")


def _encoded_words(text: str) -> list[str]:
    """`text` as "=?utf-8?q?...?=" words of at most 75 characters, split between characters."""
    words: list[str] = []
    current = ""
    for char in text:
        if char in _Q_SAFE:
            piece = char
        elif char == " ":
            piece = "_"
        else:
            piece = "".join(f"={b:02X}" for b in char.encode("utf-8", "replace"))
        if len(current) + len(piece) > _WORD_ROOM:
            words.append(f"=?utf-8?q?{current}?=")
            current = ""
        current += piece
    words.append(f"=?utf-8?q?{current}?=")
    return words


# -- bodies -----------------------------------------------------------------------------------------
def _lines(text: str) -> bytes:
    """UTF-8, every line ending (CR, LF, CRLF) one LF, ending with one; as the stdlib does."""
    return _lf_lines(text.encode("utf-8", "replace"))


def _lf_lines(data: bytes) -> bytes:
    """`data` with every line ending (CR, LF, CRLF) one LF, ending with one."""
    if b"\r" in data:
        data = data.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
    return data if data.endswith(b"\n") else data + b"\n"


def _quoted_printable(text: str) -> bytes:
    """Quoted-printable with CRLF line endings, ending in CRLF; no line starts with "."."""
    # Given LF line ends, b2a_qp writes LF ones (its soft breaks too): CRLF once, after.
    encoded = binascii.b2a_qp(_lines(text), istext=True).replace(b"\n", b"\r\n")
    encoded = encoded.replace(b"\n.", b"\n=2E")
    return b"=2E" + encoded[1:] if encoded.startswith(b".") else encoded


# The longest line SMTP allows, CRLF excluded (RFC 5322 2.1.1).
_MAX_LINE = 998
# Non-ASCII between <style> and the next tag: CSS, where "&#233;" would stay six characters.
_NON_ASCII_STYLE = re.compile(r"<style\b[^>]*>[^<]*[^\x00-\x7f]", re.IGNORECASE)


def _html_body(html: str) -> tuple[str, bytes]:
    """The HTML part as (Content-Transfer-Encoding, CRLF bytes): 7bit when it can be, see above."""
    if not html.isascii() and _NON_ASCII_STYLE.search(html):
        return "quoted-printable", _quoted_printable(html)
    data = _lf_lines(html.encode("ascii", "xmlcharrefreplace"))
    lines = data.split(b"\n")
    if max(map(len, lines)) > _MAX_LINE:
        broken = _break_long_lines(lines)
        if broken is None:
            return "quoted-printable", _quoted_printable(html)
        lines = broken
    return "7bit", b"\r\n".join(lines)


def _break_long_lines(lines: list[bytes]) -> list[bytes] | None:
    """Each line over 998 octets split at its last space that keeps the piece short enough (the
    space becomes the line break); None when a piece has no such space."""
    out: list[bytes] = []
    for line in lines:
        while len(line) > _MAX_LINE:
            cut = line.rfind(b" ", 0, _MAX_LINE + 1)
            if cut <= 0:
                return None
            out.append(line[:cut])
            line = line[cut + 1 :]
        out.append(line)
    return out
