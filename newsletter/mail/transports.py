"""Mail transports: where a finished message goes (SMTP, a maildir outbox, the console).

A transport opens connections; a connection sends one message to its envelope recipients and
raises a :class:`SendError` subclass that says what is known about the outcome, because the
sender must tell "not delivered" (safe to retry) from "may have been delivered" (never resent
on its own).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import uuid
from pathlib import Path
from typing import Protocol, TextIO

from newsletter.mail.readable import readable
from newsletter.mail.send_errors import (
    ConnectionFailure,
    PermanentFailure,
    SendError,
    TemporaryFailure,
    UncertainDelivery,
)
from newsletter.mail.smtp_pipelined import SMTPConnection
from newsletter.mail.urls import SMTP_SCHEMES, MailURL, parse_mail_url
from newsletter.mail.wire import Message, message_bytes

__all__ = [
    "Connection",
    "Message",
    "ConnectionFailure",
    "ConsoleTransport",
    "MaildirTransport",
    "PermanentFailure",
    "SMTPTransport",
    "SendError",
    "TemporaryFailure",
    "Transport",
    "UncertainDelivery",
    "message_bytes",
    "transport_from_url",
]

DEFAULT_TIMEOUT = 30.0


class Connection(Protocol):
    def send(self, message: Message, sender: str, recipients: list[str]) -> None:
        """Deliver ``message`` to the envelope ``recipients`` or raise :class:`SendError`."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""


class Transport(Protocol):
    def connect(self) -> Connection:
        """Open a connection that may be reused for many messages."""


class MaildirTransport:
    """Writes each message as one ``.eml`` file into a standard maildir's ``new/`` folder."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def connect(self) -> MaildirTransport:
        try:
            for sub in ("tmp", "new", "cur"):
                (self.path / sub).mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise ConnectionFailure(f"cannot create maildir {self.path}: {error}") from error
        return self

    def send(self, message: Message, sender: str, recipients: list[str]) -> None:
        envelope = f"Return-Path: <{sender}>\r\n".encode()
        for recipient in recipients:
            envelope += f"Delivered-To: {recipient}\r\n".encode()
        name = f"{time.time_ns()}.{uuid.uuid4().hex}.{socket.gethostname()}.eml"
        temporary = self.path / "tmp" / name
        try:
            with open(temporary, "xb") as handle:
                handle.write(envelope + message_bytes(message))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(temporary, self.path / "new" / name)
        except OSError as error:
            raise ConnectionFailure(f"cannot write to maildir {self.path}: {error}") from error

    def close(self) -> None:
        return None


class ConsoleTransport:
    """Prints each message decoded (headers and plain text), for trying the service out."""

    def __init__(self, stream: TextIO | None = None) -> None:
        self.stream = stream

    def connect(self) -> ConsoleTransport:
        return self

    def send(self, message: Message, sender: str, recipients: list[str]) -> None:
        stream = self.stream or sys.stdout
        stream.write(f"--- message from {sender} to {', '.join(recipients)} ---\n")
        # Decoded: the wire form would cut every link in quoted-printable pieces.
        stream.write(readable(message))
        stream.write("--- end of message ---\n")
        stream.flush()

    def close(self) -> None:
        return None


class SMTPTransport:
    """SMTP with optional STARTTLS or implicit TLS, login and a socket timeout."""

    def __init__(self, url: MailURL, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.url = url
        self.timeout = url.timeout or timeout

    def connect(self) -> SMTPConnection:
        return SMTPConnection(self.url, self.timeout)


def transport_from_url(url: str, timeout: float = DEFAULT_TIMEOUT) -> Transport:
    """The transport a ``NEWSLETTER_MAIL_URL`` names."""
    parsed = parse_mail_url(url)
    if parsed.scheme in SMTP_SCHEMES:
        return SMTPTransport(parsed, timeout)
    if parsed.scheme == "maildir":
        assert parsed.path is not None
        return MaildirTransport(parsed.path)
    return ConsoleTransport()
