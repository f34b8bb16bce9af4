"""The site-wide values that emails, links and services need, read once from the settings."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from email.utils import parseaddr
from functools import cached_property
from typing import Any

import idna

from newsletter.tokens import Tokens
from newsletter.verp import Verp

__all__ = ["DkimKeys", "Site"]


@dataclass(frozen=True)
class DkimKeys:
    """The DKIM keys messages are signed with, as read (and checked) at start-up."""

    selector: str
    rsa_pem: bytes = field(repr=False)
    ed25519_pem: bytes | None = field(default=None, repr=False)
    ed25519_selector: str | None = None


@dataclass(frozen=True)
class Site:
    organisation: str
    base_url: str
    sender: str
    postal_address: str
    consent_statement: str
    double_opt_in: bool
    confirmations_per_day: int
    check_deliverability: bool
    secret_key: str = field(repr=False)
    tokens: Tokens
    dkim: DkimKeys | None = None
    #: Send a welcome, with the latest articles of their topics, on confirmation.
    welcome: bool = False
    #: How often someone who never chose gets digests (``each``, ``weekly``, ``monthly``).
    default_rhythm: str = "each"
    # Where replies go, when that is not the sender (a checked mailbox, or empty).
    reply_to: str = ""
    # The VERP return path's base (NEWSLETTER_BOUNCE_ADDRESS); empty: the sender's address.
    bounce_address: str = ""
    secret_key_fallbacks: tuple[str, ...] = field(default=(), repr=False)

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Site:
        return cls(
            organisation=config["ORGANISATION"],
            base_url=config["BASE_URL"],
            sender=config["SENDER"],
            postal_address=config["POSTAL_ADDRESS"],
            consent_statement=config["CONSENT_STATEMENT"],
            double_opt_in=config["DOUBLE_OPT_IN"],
            confirmations_per_day=config["CONFIRMATIONS_PER_DAY"],
            check_deliverability=config["CHECK_DELIVERABILITY"],
            secret_key=config["SECRET_KEY"],
            tokens=Tokens(config["SECRET_KEY"], config["SECRET_KEY_FALLBACKS"]),
            dkim=config.get("DKIM_KEYS"),
            welcome=bool(config.get("WELCOME", False)),
            default_rhythm=str(config.get("DEFAULT_RHYTHM", "each")),
            reply_to=config.get("REPLY_TO", ""),
            bounce_address=config.get("BOUNCE_ADDRESS", ""),
            secret_key_fallbacks=tuple(config["SECRET_KEY_FALLBACKS"]),
        )

    @cached_property
    def sender_address(self) -> str:
        """The bare address of the From header, used as the envelope sender."""
        return parseaddr(self.sender)[1]

    @cached_property
    def verp(self) -> Verp | None:
        """The signed return paths, when a bounce address is set."""
        if not self.bounce_address:
            return None
        return Verp(self.bounce_address, self.secret_key, self.secret_key_fallbacks)

    def return_path(self, delivery_id: int) -> str:
        """The envelope sender of one delivery's message: its VERP address when bounces
        are collected, otherwise the sender's own address."""
        verp = self.verp
        return verp.address(delivery_id) if verp is not None else self.sender_address

    @cached_property
    def sender_domain(self) -> str:
        return self.sender_address.rpartition("@")[2] or "localhost"

    @cached_property
    def sender_domain_ascii(self) -> str:
        """The sender's domain as DNS and header identifiers spell it: IDNA, lower case."""
        try:
            return str(idna.encode(self.sender_domain, uts46=True).decode("ascii"))
        except (idna.IDNAError, UnicodeError):
            # Not a domain DNS could hold; said as given rather than stopping every message.
            return self.sender_domain.lower()

    @cached_property
    def list_id(self) -> str:
        """``List-Id`` (RFC 2919): a name plus a dotted identifier under the sender's domain,
        the domain that signs the mail and that receivers hold the list's reputation against
        (the web address may be another host, or change)."""
        return f"{self.organisation} <newsletter.{self.sender_domain_ascii}>"

    def url(self, path: str) -> str:
        return f"{self.base_url}{path}"
