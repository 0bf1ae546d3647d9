"""Signed, unguessable tokens derived from a subscriber's email with the signing key.

`feed_token` names a subscriber's private feed file: stable for as long as the key is, and reveals
nothing about the address. `unsubscribe_token` goes into unsubscribe links; `verify_unsubscribe`
checks one in constant time.
"""

from __future__ import annotations

import base64
import hashlib
import hmac


def _mac(key: bytes, purpose: str, email: str) -> bytes:
    return hmac.new(key, f"{purpose}\x00{email.strip().lower()}".encode(), hashlib.sha256).digest()


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
