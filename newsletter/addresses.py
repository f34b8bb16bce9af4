"""Email address keys and suppression hashes: which addresses are one person.

The key must never join two mailboxes. The domain is matched as DNS matches it (IDNA, letter
case ignored), and the local part with ASCII letter case ignored, as every common mail system
does; beyond that it is kept exactly (in NFC), because ``straße`` and ``strasse``, or a
ligature ``ﬁ`` and ``fi``, may be different people's mailboxes.
"""

from __future__ import annotations

import hashlib
import string
import unicodedata

import idna

__all__ = ["email_key", "folded_suppression_hash", "key_hashes", "suppression_hash"]

_ASCII_LOWER = str.maketrans(string.ascii_uppercase, string.ascii_lowercase)


def email_key(email: str) -> str:
    """The unique form of an address: one mailbox, however it is typed.

    Never raises: staff look people up by whatever they type and bounce reports quote
    addresses as they please, so a domain that is not valid IDNA is simply lower-cased.
    """
    text = unicodedata.normalize("NFC", email.strip())
    local, at, domain = text.rpartition("@")
    if not at:
        return text.translate(_ASCII_LOWER)
    return f"{local.translate(_ASCII_LOWER)}@{_domain_key(domain)}"


def _domain_key(domain: str) -> str:
    lowered = domain.lower()
    if lowered.isascii() and "xn--" not in lowered:
        return lowered
    try:
        # UTS 46 maps what browsers and resolvers map (letter case, full-width forms); the
        # Unicode form is what email-validator stores, so keys and stored addresses agree.
        return str(idna.decode(idna.encode(domain, uts46=True)))
    except (idna.IDNAError, UnicodeError):
        return lowered


def suppression_hash(email: str) -> str:
    """What is kept of an erased or bounced address: enough to recognise it, not to read it."""
    return _sha256(email_key(email))


def folded_suppression_hash(email: str) -> str:
    """The hash an address had when keys were case-folded whole (before revision 0003).

    Those suppressions cannot be re-hashed (only the hash is kept), so they are matched this
    way: every address that folded to a suppressed one stays suppressed.
    """
    return _sha256(email_key(email).casefold())


def key_hashes(key: str) -> tuple[str, str]:
    """Both hashes of an address from its key (:func:`email_key`) already made: an import
    has the key of every row and checks both hashes of each."""
    return _sha256(key), _sha256(key.casefold())


def _sha256(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8")).hexdigest()
