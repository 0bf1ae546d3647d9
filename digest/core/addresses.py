"""Email addresses and header text: what configuration, profiles and delivery all check the same way.

No business logic: parsing and normalising only (the stdlib parser, IDNA 2008 via `idna`).
"""

from __future__ import annotations

import email.errors
import functools
import re
from email.headerregistry import Address
from email.utils import getaddresses

import idna

from digest.core.errors import ConfigError, SendError

# C0 and C1 controls (CR, LF, NUL, TAB...), DEL, what str.splitlines() also treats as a line end,
# and the bidi embeddings, overrides and isolates: in a Subject or a name they can make a mail
# client show the rest of the header reversed ("... \u202eRTL · 28 Nov" reads "voN 82 · LTR").
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029\u202a-\u202e\u2066-\u2069]+")
_SPACES = re.compile(r" {2,}")


def sanitize_header(value: str) -> str:
    """`value` with every control, line-breaking or bidi-override character replaced by a space, trimmed."""
    return _SPACES.sub(" ", _UNSAFE.sub(" ", value)).strip()



# -- addresses --------------------------------------------------------------------------------------
# A dot-atom addr-spec (what nearly every address is), checked without the stdlib's full parser.
_ATEXT = r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+"
_SIMPLE_ADDR = re.compile(rf"{_ATEXT}(?:\.{_ATEXT})*@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*")


def idna_domain(domain: str) -> str:
    """A domain as ASCII: IDNA 2008 with the UTS 46 mapping (see `addr_spec`)."""
    return domain if domain.isascii() else idna.encode(domain, uts46=True).decode("ascii")


def addr_spec(value: str) -> str:
    """`value` as an addr-spec, or a permanent SendError when it is not an address.

    A non-ASCII domain is written as IDNA ("xn--..."): the address is then ASCII, which every
    server takes, where UTF-8 would need the server to offer SMTPUTF8 (most do not). IDNA 2008
    with UTS 46, as email-validator checks it: the stdlib's "idna" codec is IDNA 2003, which
    writes "faß.de" as "fass.de", another domain.
    """
    value = value.strip()
    if _SIMPLE_ADDR.fullmatch(value):
        return value
    try:
        # The stdlib parser for the rest (quoted local parts, non-ASCII, and what is not an address).
        spec = Address(addr_spec=value).addr_spec
    except (ValueError, IndexError, email.errors.HeaderParseError) as exc:
        raise SendError(value, f"not a usable email address: {exc}", permanent=True) from None
    local, _, domain = spec.rpartition("@")
    if local.isascii() and not domain.isascii():
        try:
            spec = f"{local}@{idna_domain(domain)}"
        except idna.IDNAError as exc:
            raise SendError(value, f"not a usable email address: {exc}", permanent=True) from None
    return spec


@functools.lru_cache(maxsize=16)
def sender_address(from_: str) -> tuple[str, str]:
    """[smtp] from as (display name, addr-spec); the same few values for every message of a run.

    One address, ASCII before the @ (a non-ASCII domain is written as IDNA, see `addr_spec`).
    """
    fix = 'write it as from = "Paper Digest <digest@example.org>"'
    found = getaddresses([sanitize_header(from_)])
    if len(found) > 1:
        raise ConfigError(
            f"[smtp] from = {from_!r} reads as more than one address (a comma outside quotes); "
            """one address, its name in double quotes if it has a comma: from = '"Digest, Lab" <digest@example.org>'"""
        )
    name, addr = found[0] if found else ("", "")
    try:
        if "@" in addr:
            spec = addr_spec(Address(display_name=name, addr_spec=addr).addr_spec)
            if spec.isascii():
                return name, spec
    except (ValueError, IndexError, email.errors.HeaderParseError, SendError):
        pass
    raise ConfigError(f"[smtp] from = {from_!r} is not an email address (ASCII before the @); {fix}")


@functools.lru_cache(maxsize=16)
def domain_of(from_: str) -> str:
    domain = sender_address(from_)[1].rpartition("@")[2].strip().rstrip(".")
    try:
        return idna_domain(domain) if domain else "localhost"
    except idna.IDNAError:
        return "localhost"


