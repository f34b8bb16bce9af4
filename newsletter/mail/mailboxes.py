"""Addresses as they go out: an international domain in its ASCII form, UTF-8 only where the
local part needs it.

RFC 6531 lets an address carry UTF-8, but only to a server that offers SMTPUTF8. A domain
never needs that: its ASCII (punycode) form names the same domain and every server takes it.
So only a local part outside ASCII (``jürgen@…``) makes a message depend on SMTPUTF8.
"""

from __future__ import annotations

from email_validator import EmailNotValidError, validate_email

__all__ = ["UnusableAddress", "needs_smtputf8", "wire_address"]


class UnusableAddress(ValueError):
    """An address that no message can be sent to; the message says why."""


def wire_address(address: str) -> str:
    """``address`` with its domain in ASCII (IDNA); the local part is kept as it is."""
    if address.isascii():
        return address
    try:
        checked = validate_email(address, check_deliverability=False)
    except EmailNotValidError as error:
        # Stored before today's checks, say: the reason goes into the delivery's record.
        raise UnusableAddress(f"not a usable address: {error}") from None
    return f"{checked.local_part}@{checked.ascii_domain}"


def needs_smtputf8(address: str) -> bool:
    """Whether sending to (or from) the wire form of an address needs SMTPUTF8."""
    return not address.isascii()
