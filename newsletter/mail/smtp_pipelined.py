"""One reused SMTP session that sends each message in as few round trips as the server allows.

What the server offers in its answer to EHLO decides how a message goes out:

- PIPELINING and CHUNKING (RFC 2920, RFC 3030): ``MAIL``, ``RCPT`` and ``BDAT <size> LAST``
  with the message itself in one write, and their answers read together: one round trip.
- PIPELINING alone: ``MAIL``, ``RCPT`` and ``DATA`` in one write; the message follows the
  ``354``: two round trips.
- neither: one command at a time (four round trips; three with CHUNKING alone).

A failed transaction is reset with ``RSET`` at the start of the next message (in the same
write when pipelining). Each connection carries one message at a time.

What a failure means for the message (:mod:`newsletter.mail.send_errors`) follows from what
can have reached the server. A server can accept a message only once it holds all of it: the
dot that ends ``DATA``, or every octet of the ``BDAT LAST`` chunk. So:

- a write that fails never completed the message: :class:`ConnectionFailure`;
- with ``DATA``, everything before the message data is safe to lose (the connection drops,
  no answer in time): :class:`ConnectionFailure`; once the data went out, a lost answer is
  :class:`UncertainDelivery`;
- with ``BDAT``, the data goes out with the envelope, so the answers of the whole group are
  its answer: once the write completed, a lost connection or a timeout is
  :class:`UncertainDelivery`, unless an answer that did arrive already refused the message
  (``MAIL`` refused, every ``RCPT`` refused, or ``421``: the server is closing and takes
  nothing after it).

That last point would make a session that the server closed while it was idle (servers end
idle sessions after some minutes) turn the next message into an unknown one. So before each
message the session is checked for a close or a ``421`` that arrived since the last answer
(one ``select``), and after more than :data:`IDLE_PROBE` seconds without traffic a ``NOOP``
makes sure the server is still there before a message is written into the session.
"""

from __future__ import annotations

import contextlib
import smtplib
import socket
import ssl
import time

from newsletter.mail.mailboxes import UnusableAddress, needs_smtputf8, wire_address
from newsletter.mail.send_errors import (
    ConnectionFailure,
    PermanentFailure,
    TemporaryFailure,
    UncertainDelivery,
)
from newsletter.mail.smtp_replies import Reply, ReplyReader
from newsletter.mail.urls import MailURL
from newsletter.mail.wire import Message, message_bytes

__all__ = ["IDLE_PROBE", "SMTPConnection"]

#: Seconds without traffic after which a NOOP checks the session before a BDAT message.
IDLE_PROBE = 5.0
CRLF = b"\r\n"
#: 421: the server is closing the session; 530: it wants AUTH or STARTTLS first. Neither is
#: about the message, so it stays queued (and the setting is what needs fixing).
NOT_ABOUT_THE_MESSAGE = (421, 530)


class SMTPConnection:
    """One reused SMTP session; connects lazily and reconnects after a broken transaction."""

    def __init__(self, url: MailURL, timeout: float) -> None:
        self.url = url
        self.timeout = timeout
        self._smtp: smtplib.SMTP | None = None
        self._wire: ReplyReader | None = None
        self._pipelining = False
        self._chunking = False
        self._smtputf8 = False
        self._8bitmime = False
        self._reset_due = False
        self._last_traffic = 0.0

    # -- the session -----------------------------------------------------------------------

    def _open(self) -> ReplyReader:
        """Connect, EHLO, STARTTLS and AUTH with smtplib; the transactions are ours."""
        if self._wire is not None:
            return self._wire
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
            sock = smtp.sock
            if sock is None:
                raise smtplib.SMTPServerDisconnected("the server closed the connection")
            # Each write is a whole group of commands: no reason to wait for more to fill a
            # packet (Nagle), which would cost a round trip on a real network.
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except smtplib.SMTPResponseException as error:
            _close_quietly(smtp)
            raise ConnectionFailure(_text(error.smtp_error), error.smtp_code) from error
        except (OSError, smtplib.SMTPException) as error:
            _close_quietly(smtp)
            where = f"{self.url.host}:{self.url.port}"
            raise ConnectionFailure(f"cannot connect to {where}: {error}") from error
        self._smtp = smtp
        self._wire = ReplyReader(sock)
        self._pipelining = smtp.has_extn("pipelining")
        self._chunking = smtp.has_extn("chunking")
        self._smtputf8 = smtp.has_extn("smtputf8")
        self._8bitmime = smtp.has_extn("8bitmime")
        self._reset_due = False
        self._last_traffic = time.monotonic()
        return self._wire

    def _ready(self) -> ReplyReader:
        """A session the server has not closed or given up on since its last answer."""
        wire = self._wire
        if wire is not None and not wire.quiet():
            self._drop()
        elif wire is not None and self._pipelining and self._chunking:
            if time.monotonic() - self._last_traffic >= IDLE_PROBE and not self._alive(wire):
                self._drop()
        return self._open()

    def _alive(self, wire: ReplyReader) -> bool:
        """After a pause, before a message goes out with its envelope: whether the server
        still answers (and is not closing the session)."""
        try:
            wire.send(b"RSET\r\nNOOP\r\n" if self._reset_due else b"NOOP\r\n")
            replies = [wire.reply() for _ in range(2 if self._reset_due else 1)]
        except OSError:
            return False
        self._reset_due = False
        return all(reply.code != 421 for reply in replies)

    def _drop(self) -> None:
        _close_quietly(self._smtp)
        self._smtp = None
        self._wire = None

    def close(self) -> None:
        if self._wire is not None:
            with contextlib.suppress(OSError):
                self._wire.send(b"QUIT\r\n")
                self._wire.reply()
        self._drop()

    # -- one message -----------------------------------------------------------------------

    def send(self, message: Message, sender: str, recipients: list[str]) -> None:
        """Deliver ``message`` to the envelope ``recipients`` or raise a ``SendError``."""
        try:
            sender = wire_address(sender)
            recipients = [wire_address(recipient) for recipient in recipients]
        except UnusableAddress as error:
            raise PermanentFailure(str(error)) from None
        for address in (sender, *recipients):
            if any(character in address for character in "\r\n<>"):
                raise PermanentFailure(f"not a usable address: {address!r}")
        wire = self._ready()
        options = b""
        if any(needs_smtputf8(address) for address in (sender, *recipients)):
            if not self._smtputf8:
                raise PermanentFailure(
                    "the mail server does not offer SMTPUTF8, which an address with "
                    "characters outside ASCII before the @ needs"
                )
            # The headers carry UTF-8 as well (RFC 6532), so the data is 8-bit.
            options = b" SMTPUTF8 BODY=8BITMIME" if self._8bitmime else b" SMTPUTF8"
        envelope = [b"MAIL FROM:<" + sender.encode() + b">" + options + CRLF] + [
            b"RCPT TO:<" + recipient.encode() + b">" + CRLF for recipient in recipients
        ]
        data = message_bytes(message)
        if not data.endswith(CRLF):
            data += CRLF
        try:
            if self._pipelining:
                self._pipelined(wire, envelope, data)
            else:
                self._lockstep(wire, envelope, data)
        finally:
            self._last_traffic = time.monotonic()

    def _pipelined(self, wire: ReplyReader, envelope: list[bytes], message: bytes) -> None:
        chunking = self._chunking
        group = [b"RSET\r\n"] if self._reset_due else []
        group += envelope
        group.append(b"BDAT %d LAST\r\n" % len(message) + message if chunking else b"DATA\r\n")
        self._write(wire, b"".join(group))
        # Answers in order; the first that shows the message cannot be accepted is kept.
        refusal: Reply | None = None
        if self._reset_due:
            self._reset_due = False
            closing = self._read(wire, chunking, refusal)
            if closing.code == 421:
                refusal = closing
        mail = self._read(wire, chunking, refusal)
        if mail.code != 250:
            refusal = refusal or mail
        accepted = 0
        last = mail
        for _recipient in envelope[1:]:
            last = self._read(wire, chunking, refusal)
            accepted += last.code in (250, 251)
        if not accepted:
            refusal = refusal or last
        final = self._read(wire, chunking, refusal)
        refused = mail if mail.code != 250 else None if accepted else last
        if refused is not None:
            if final.code == 354:
                # RFC 2920: DATA was accepted though the envelope was not; end it empty.
                with contextlib.suppress(ConnectionFailure, UncertainDelivery):
                    self._write(wire, b".\r\n")
                    self._read(wire, False, refused)
            self._fail(refused)
        if chunking:
            if final.code != 250:
                self._fail(final)
            return
        if final.code != 354:
            self._fail(final)
        self._transmit(wire, message)

    def _lockstep(self, wire: ReplyReader, envelope: list[bytes], message: bytes) -> None:
        if self._reset_due:
            self._reset_due = False
            self._exchange(wire, b"RSET\r\n")
        mail = self._exchange(wire, envelope[0])
        if mail.code != 250:
            self._fail(mail)
        accepted = 0
        last = mail
        for command in envelope[1:]:
            last = self._exchange(wire, command)
            accepted += last.code in (250, 251)
        if not accepted:
            self._fail(last)
        if self._chunking:
            self._write(wire, b"BDAT %d LAST\r\n" % len(message) + message)
            final = self._read(wire, True, None)
            if final.code != 250:
                self._fail(final)
            return
        final = self._exchange(wire, b"DATA\r\n")
        if final.code != 354:
            self._fail(final)
        self._transmit(wire, message)

    def _transmit(self, wire: ReplyReader, message: bytes) -> None:
        """The message after ``354``, dot-stuffed (RFC 5321 4.5.2), and the closing dot."""
        # A plain replace is many times faster than a regular expression over a whole message.
        payload = (b"." + message if message.startswith(b".") else message).replace(b"\n.", b"\n..")
        self._write(wire, payload + b".\r\n")
        final = self._read(wire, True, None)
        if final.code != 250:
            self._fail(final)

    # -- answers and what they mean --------------------------------------------------------

    def _write(self, wire: ReplyReader, data: bytes) -> None:
        try:
            wire.send(data)
        except OSError as error:
            # Its end never went out, so the server cannot hold the whole message.
            self._drop()
            raise ConnectionFailure(f"connection lost while sending: {error}") from None

    def _exchange(self, wire: ReplyReader, command: bytes) -> Reply:
        self._write(wire, command)
        return self._read(wire, False, None)

    def _read(self, wire: ReplyReader, data_sent: bool, refusal: Reply | None) -> Reply:
        """The next answer. If none comes, what is known decides: a refusal already read,
        else whether the whole message went out."""
        try:
            return wire.reply()
        except OSError as error:
            self._drop()
            if refusal is not None:
                self._fail(refusal)
            if data_sent:
                raise UncertainDelivery(f"no answer after the message was sent: {error}") from None
            raise ConnectionFailure(
                f"connection lost before the message was sent: {error}"
            ) from None

    def _fail(self, reply: Reply) -> None:
        if reply.code in NOT_ABOUT_THE_MESSAGE:
            self._drop()
            raise ConnectionFailure(reply.text, reply.code)
        self._reset_due = self._wire is not None
        if 400 <= reply.code < 500:
            raise TemporaryFailure(reply.text, reply.code)
        raise PermanentFailure(reply.text, reply.code)


def _tls_context() -> ssl.SSLContext:
    # Built only for TLS connections: loading the system's certificates takes milliseconds.
    return ssl.create_default_context()


def _close_quietly(smtp: smtplib.SMTP | None) -> None:
    if smtp is not None:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            smtp.close()


def _text(reply: bytes | str) -> str:
    if isinstance(reply, bytes):
        return reply.decode("utf-8", "replace")
    return reply
