"""What a transport knows about a message it could not (provably) deliver.

The sender must tell "not delivered" (safe to send again) from "may have been delivered"
(never resent on its own), so every failure of a transport is one of these.
"""

from __future__ import annotations

import re

__all__ = [
    "ConnectionFailure",
    "PermanentFailure",
    "SendError",
    "TemporaryFailure",
    "UncertainDelivery",
]

HARD_BOUNCE = re.compile(r"\b5\.1\.\d{1,3}\b")


class SendError(Exception):
    """A message was not (or not provably) accepted."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(f"{code} {text}" if code else text)
        self.code = code
        self.text = text


class ConnectionFailure(SendError):
    """The message was not accepted and the try says nothing about it (refused or lost
    connection before the message could be complete at the server, a timeout there, 421,
    authentication): it is sent again without counting the try."""


class TemporaryFailure(SendError):
    """The server answered 4xx for this message: try again later."""


class PermanentFailure(SendError):
    """The server answered 5xx for this message: do not try again."""

    @property
    def hard_bounce(self) -> bool:
        """A "no such user" answer (enhanced status 5.1.x, or plain 550/551/553 at RCPT)."""
        return bool(HARD_BOUNCE.search(self.text))


class UncertainDelivery(SendError):
    """The message data went out but the server's answer never came back."""
