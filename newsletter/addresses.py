"""Email address keys and suppression hashes."""

from __future__ import annotations

import hashlib

__all__ = ["email_key", "suppression_hash"]


def email_key(email: str) -> str:
    """The unique, case-folded form of an address: one person, however they type it."""
    return email.strip().casefold()


def suppression_hash(email: str) -> str:
    """What is kept of an erased or bounced address: enough to recognise it, not to read it."""
    return hashlib.sha256(email_key(email).encode("utf-8")).hexdigest()
