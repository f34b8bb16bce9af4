"""Mail transports: where a finished message goes (SMTP, a maildir outbox, the console).

A transport opens connections; a connection sends one message to its envelope recipients and
raises a :class:`SendError` subclass that says what is known about the outcome, because the
sender must tell "not delivered" (safe to retry) from "may have been delivered" (never resent
on its own).
"""

from __future__ import annotations

import contextlib
import os
import re
import smtplib
import socket
import ssl
import sys
import time
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Protocol, TextIO

from newsletter.mail.mailboxes import UnusableAddress, needs_smtputf8, wire_address
from newsletter.mail.readable import readable
from newsletter.mail.urls import SMTP_SCHEMES, MailURL, parse_mail_url

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
HARD_BOUNCE = re.compile(r"\b5\.1\.\d{1,3}\b")


class SendError(Exception):
    """A message was not (or not provably) accepted."""

    def __init__(self, text: str, code: int | None = None) -> None:
        super().__init__(f"{code} {text}" if code else text)
        self.code = code
        self.text = text


class ConnectionFailure(SendError):
    """No transaction happened (refused, timed out, 421, authentication): nothing was sent."""


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


#: A message object, or its bytes as they go on the wire (CRLF line ends).
Message = EmailMessage | bytes


class Connection(Protocol):
    def send(self, message: Message, sender: str, recipients: list[str]) -> None:
        """Deliver ``message`` to the envelope ``recipients`` or raise :class:`SendError`."""

    def close(self) -> None:
        """Release the connection; safe to call twice."""


class Transport(Protocol):
    def connect(self) -> Connection:
        """Open a connection that may be reused for many messages."""


def message_bytes(message: Message) -> bytes:
    """The message as it goes on the wire: CRLF line ends."""
    if isinstance(message, bytes):
        return message
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


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


class SMTPConnection:
    """One reused SMTP session; connects lazily and reconnects after a broken transaction."""

    def __init__(self, url: MailURL, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None

    def _open(self) -> smtplib.SMTP:
        if self._smtp is not None:
            return self._smtp
        smtp: smtplib.SMTP | None = None
        try:
            if self.url.scheme == "smtps":
                smtp = smtplib.SMTP_SSL(
                    self.url.host, self.url.port, timeout=self.timeout, context=_tls_context()
                )
            else:
                smtp = smtplib.SMTP(self.url.host, self.url.port, timeout=self.timeout)
            smtp.ehlo_or_helo_if_needed()
            if self.url.scheme == "smtp+starttls":
                smtp.starttls(context=_tls_context())
                smtp.ehlo()
            if self.url.username:
                smtp.login(self.url.username, self.url.password or "")
        except smtplib.SMTPResponseException as error:
            _close_quietly(smtp)
            raise ConnectionFailure(_reply_text(error.smtp_error), error.smtp_code) from error
        except (OSError, smtplib.SMTPException) as error:
            _close_quietly(smtp)
            where = f"{self.url.host}:{self.url.port}"
            raise ConnectionFailure(f"cannot connect to {where}: {error}") from error
        self._smtp = smtp
        return smtp

    def send(self, message: Message, sender: str, recipients: list[str]) -> None:
        try:
            sender = wire_address(sender)
            recipients = [wire_address(recipient) for recipient in recipients]
        except UnusableAddress as error:
            raise PermanentFailure(str(error)) from None
        smtp = self._open()
        data = message_bytes(message)
        options: list[str] = []
        if any(needs_smtputf8(address) for address in (sender, *recipients)):
            if not smtp.has_extn("smtputf8"):
                raise PermanentFailure(
                    "the mail server does not offer SMTPUTF8, which an address with "
                    "characters outside ASCII before the @ needs"
                )
            # The headers carry UTF-8 as well (RFC 6532), so the data is 8-bit.
            options.append("SMTPUTF8")
            if smtp.has_extn("8bitmime"):
                options.append("BODY=8BITMIME")
        try:
            code, reply = smtp.mail(sender, options)
            if code != 250:
                self._fail(code, reply)
            accepted = 0
            last: tuple[int, bytes] = (0, b"")
            for recipient in recipients:
                code, reply = smtp.rcpt(recipient)
                if code in (250, 251):
                    accepted += 1
                else:
                    last = (code, reply)
            if not accepted:
                self._fail(*last)
            code, reply = smtp.docmd("DATA")
            if code != 354:
                self._fail(code, reply)
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self._drop()
            raise ConnectionFailure(
                f"connection lost before the message was sent: {error}"
            ) from None
        self._transmit(smtp, data)

    def _transmit(self, smtp: smtplib.SMTP, data: bytes) -> None:
        # Dot-stuffing (RFC 5321 4.5.2): a plain replace is many times faster than a regular
        # expression over a whole message, and this runs once per message sent.
        payload = (b"." + data if data.startswith(b".") else data).replace(b"\n.", b"\n..")
        if not payload.endswith(b"\r\n"):
            payload += b"\r\n"
        try:
            smtp.send(payload + b".\r\n")
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            # The closing dot never went out completely, so the server cannot have accepted it.
            self._drop()
            raise ConnectionFailure(f"connection lost while sending: {error}") from None
        try:
            code, reply = smtp.getreply()
        except (OSError, smtplib.SMTPServerDisconnected) as error:
            self._drop()
            raise UncertainDelivery(f"no answer after the message was sent: {error}") from None
        if code != 250:
            self._fail(code, reply)

    def _fail(self, code: int, reply: bytes) -> None:
        text = _reply_text(reply)
        # 421: the server is closing; 530: it wants AUTH or STARTTLS first. Neither is about
        # this message, so it stays queued (and the setting is what needs fixing).
        if code in (421, 530) or code == -1:
            self._drop()
            raise ConnectionFailure(text, code)
        self._reset()
        if 400 <= code < 500:
            raise TemporaryFailure(text, code)
        raise PermanentFailure(text, code)

    def _reset(self) -> None:
        if self._smtp is None:
            return
        try:
            self._smtp.rset()
        except (OSError, smtplib.SMTPException):
            self._drop()

    def _drop(self) -> None:
        _close_quietly(self._smtp)
        self._smtp = None

    def close(self) -> None:
        if self._smtp is not None:
            with contextlib.suppress(OSError, smtplib.SMTPException):
                self._smtp.quit()
        self._drop()


def _tls_context() -> ssl.SSLContext:
    # Built only for TLS connections: loading the system's certificates takes milliseconds.
    return ssl.create_default_context()


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.close()


def _reply_text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply


def transport_from_url(url: str, timeout: float = DEFAULT_TIMEOUT) -> Transport:
    """The transport a ``NEWSLETTER_MAIL_URL`` names."""
    parsed = parse_mail_url(url)
    if parsed.scheme in SMTP_SCHEMES:
        return SMTPTransport(parsed, timeout)
    if parsed.scheme == "maildir":
        assert parsed.path is not None
        return MaildirTransport(parsed.path)
    return ConsoleTransport()
