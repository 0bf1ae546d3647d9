"""Signed, unguessable tokens derived from a subscriber's email with the signing key.

`feed_token` names a subscriber's private feed file: stable for as long as the key is, and reveals
nothing about the address. `unsubscribe_token` goes into unsubscribe links; `verify_unsubscribe`
checks one in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse


def _mac(key: bytes, purpose: str, email: str) -> bytes:
    return hmac.new(key, f"{purpose}\x00{email.strip().lower()}".encode(), hashlib.sha256).digest()


def token_from(text: str) -> str:
    """The token in a mail's subject as received ("unsubscribe TOKEN", "more TOKEN", maybe
    "Re: ..."), or copied from the mailto link itself (percent-encoded)."""
    words = urllib.parse.unquote(text).split()
    return words[-1] if words else ""


def feed_token(key: bytes, email: str) -> str:
    """32 hex characters naming `feeds/<token>.xml`."""
    return _mac(key, "feed", email).hex()[:32]


def unsubscribe_token(key: bytes, email: str) -> str:
    """A url-safe token that carries the email, so a link alone identifies and proves it."""
    payload = base64.urlsafe_b64encode(email.strip().lower().encode()).decode().rstrip("=")
    sig = base64.urlsafe_b64encode(_mac(key, "unsubscribe", email)[:18]).decode()
    return f"{payload}.{sig}"


def verify_unsubscribe(key: bytes, token: str) -> str | None:
    """The email a valid token was made for, or None."""
    try:
        payload, sig = token.split(".", 1)
        email = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        return None
    expected = base64.urlsafe_b64encode(_mac(key, "unsubscribe", email)[:18]).decode()
    return email if hmac.compare_digest(sig, expected) else None


# Expiring tokens of the web side (digest.web): a confirmation link, a manage link. The value and
# its expiry (seconds since the epoch) are carried in the token, signed for one purpose, so a
# manage token can never stand for a confirmation and a link stops working on its own.
def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def timed_token(key: bytes, purpose: str, value: str, expires: int) -> str:
    """A url-safe token for `value` (e.g. an address) that `verify_timed` accepts until `expires`."""
    payload = _b64(f"{value}\x00{expires}".encode())
    sig = hmac.new(key, f"timed\x00{purpose}\x00{payload}".encode(), hashlib.sha256).digest()[:18]
    return f"{payload}.{_b64(sig)}"


def verify_timed(key: bytes, purpose: str, token: str, now: float) -> str | None:
    """The value of a valid, unexpired token made for `purpose`, or None."""
    payload, _, sig = token.partition(".")
    expected = hmac.new(key, f"timed\x00{purpose}\x00{payload}".encode(), hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(sig.encode(), _b64(expected).encode()):
        return None
    try:
        text = base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode()
        value, _, expires = text.rpartition("\x00")
        return value if now < int(expires) else None
    except (ValueError, UnicodeDecodeError):
        return None


# "More like this" / "fewer like this" links (`digest.relevance`): per reader, paper and direction,
# so a link says which and proves it, and cannot be turned into another paper's or reader's. No
# expiry: a reader may act on an old digest, and acting twice is the same as once.
FEEDBACK_DIRECTIONS = ("more", "fewer")


def feedback_token(key: bytes, email: str, paper_id: str, direction: str) -> str:
    """A url-safe token carrying (email, paper id, "more" | "fewer"), for `verify_feedback`."""
    if direction not in FEEDBACK_DIRECTIONS:
        raise ValueError(f"feedback is 'more' or 'fewer', not {direction!r}")
    payload = _b64(f"{email.strip().lower()}\x00{paper_id}\x00{direction}".encode())
    sig = hmac.new(key, f"feedback\x00{payload}".encode(), hashlib.sha256).digest()[:18]
    return f"{payload}.{_b64(sig)}"


def verify_feedback(key: bytes, token: str) -> tuple[str, str, str] | None:
    """(email, paper id, direction) of a valid feedback token, or None."""
    payload, _, sig = token.strip().partition(".")
    expected = hmac.new(key, f"feedback\x00{payload}".encode(), hashlib.sha256).digest()[:18]
    if not hmac.compare_digest(sig.encode(), _b64(expected).encode()):
        return None
    try:
        email, paper_id, direction = (
            base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)).decode().split("\x00")
        )
    except (ValueError, UnicodeDecodeError):
        return None
    return (email, paper_id, direction) if direction in FEEDBACK_DIRECTIONS else None
