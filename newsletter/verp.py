"""VERP return paths: each message's envelope sender names its delivery, signed.

With ``NEWSLETTER_BOUNCE_ADDRESS=bounces@news.example.org`` the message of delivery 42 leaves
with the envelope sender ``bounces+42.TOKEN@news.example.org``. Mail servers send bounces to
the envelope sender, so a report that comes back to that address names the delivery even
when it quotes nothing of the original message.

The token is a truncated HMAC of the delivery id under the secret key (older keys still
verify), written in lowercase base32: some mail servers lowercase the local part, and an
address's local part holds at most 64 characters. Nobody can forge a report about someone
else's delivery by guessing ids.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

__all__ = ["Verp"]

# 80 bits of MAC: far beyond guessing, and the whole local part stays well under 64 characters.
MAC_BYTES = 10


class Verp:
    """Writes and reads the return paths under one bounce address."""

    def __init__(self, bounce_address: str, secret_key: str, fallbacks: Sequence[str] = ()) -> None:
        local, _, domain = bounce_address.rpartition("@")
        self.local = local
        self.domain = domain.lower()
        self._keys = [secret_key, *fallbacks]

    def _mac(self, key: str, delivery_id: int) -> str:
        digest = hmac.new(
            key.encode("utf-8"), f"newsletter.verp:{delivery_id}".encode(), hashlib.sha256
        ).digest()
        return base64.b32encode(digest[:MAC_BYTES]).decode("ascii").lower().rstrip("=")

    def address(self, delivery_id: int) -> str:
        """The envelope sender of delivery ``delivery_id``'s message."""
        return f"{self.local}+{delivery_id}.{self._mac(self._keys[0], delivery_id)}@{self.domain}"

    def delivery_of(self, address: str) -> int | None:
        """The delivery a return path names, or None when it is not a genuine one of ours."""
        local, at, domain = address.strip().strip("<>").rpartition("@")
        if not at or domain.lower() != self.domain:
            return None
        base, plus, token = local.partition("+")
        if not plus or base.lower() != self.local.lower():
            return None
        number, dot, mac = token.partition(".")
        if not dot or not number.isdigit() or len(number) > 18:
            return None
        delivery_id = int(number)
        given = mac.lower().encode("ascii", "replace")
        for key in self._keys:
            if hmac.compare_digest(self._mac(key, delivery_id).encode("ascii"), given):
                return delivery_id
        return None
