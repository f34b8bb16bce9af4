"""Real SMTP servers on 127.0.0.1 that record what they accept.

:class:`SMTPServer` is aiosmtpd, offering PIPELINING (RFC 2920) unless told not to (it takes
pipelined commands in any case, reading them one line at a time); ``smtputf8=True`` offers
SMTPUTF8 (RFC 6531). aiosmtpd has no BDAT, so :class:`ChunkingServer` is the small asyncio
server of ``tests.support.smtp_responder``, offering PIPELINING and CHUNKING (RFC 3030).

Both take the same faults, set per test on ``server.handler``: a function per SMTP stage
returns a reply such as ``"451 4.3.0 try later"`` to refuse, or None to accept;
``drop_after_data`` closes the connection instead of answering the end of the message;
``data_delay`` holds that answer for a number of seconds (a hung server).
"""

from __future__ import annotations

import asyncio
import email
import socket
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import default
from typing import Any, Protocol
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, LoginPassword

from tests.support.smtp_responder import Hooks, Offer, ResponderThread

__all__ = ["SERVER_KINDS", "ChunkingServer", "MailServer", "Received", "SMTPServer", "free_port"]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Received:
    sender: str
    recipients: list[str]
    data: bytes

    @property
    def message(self) -> EmailMessage:
        parsed = email.message_from_bytes(self.data, policy=default)
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class _Handler(Hooks):
    """The faults and the record, for either server; the ``handle_*`` methods are aiosmtpd's."""

    received: list[Received] = field(default_factory=list)
    pipelining: bool = True
    lock: threading.Lock = field(default_factory=threading.Lock)

    def delivered(self, sender: str, recipients: list[str], content: bytes) -> None:
        with self.lock:
            self.received.append(Received(sender, recipients, content))

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        reply = self.greeting_reply() if self.greeting_reply else None
        if reply:
            return [reply]
        session.host_name = hostname
        if self.pipelining:
            return [*responses[:-1], "250-PIPELINING", responses[-1]]
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        reply = self.greeting_reply() if self.greeting_reply else None
        if reply:
            return reply
        session.host_name = hostname
        return f"250 {server.hostname}"

    async def handle_MAIL(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.mail_reply(address) if self.mail_reply else None
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        reply = self.rcpt_reply(address) if self.rcpt_reply else None
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        recipients = list(envelope.rcpt_tos)
        delay = self.data_delay() if self.data_delay else 0.0
        if delay:
            # Bounded, so that stopping the server never waits long for a held session.
            await asyncio.sleep(min(delay, 10.0))
        if self.drop_after_data and self.drop_after_data(recipients):
            server.transport.close()
            return "250 never seen by the client"
        reply = self.data_reply(",".join(recipients)) if self.data_reply else None
        if reply:
            return reply
        self.delivered(envelope.mail_from, recipients, envelope.content)
        return "250 Message accepted for delivery"


class _SMTP(SMTP):
    """aiosmtpd with a hook on the DATA command itself, before its 354."""

    async def smtp_DATA(self, arg: str) -> None:
        hook = self.event_handler.data_command_reply
        if hook and self.envelope is not None and self.envelope.rcpt_tos:
            reply = hook(",".join(self.envelope.rcpt_tos))
            if reply:
                await self.push(reply)
                return
        await super().smtp_DATA(arg)


class _Controller(Controller):
    def factory(self) -> SMTP:
        return _SMTP(self.handler, **self.SMTP_kwargs)


class _Recording:
    port: int
    handler: _Handler

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)


class SMTPServer(_Recording):
    """Start, stop and start again on the same port; ``received`` lists accepted messages."""

    def __init__(
        self, login: tuple[str, str] | None = None, smtputf8: bool = False, pipelining: bool = True
    ) -> None:
        self.port = free_port()
        self.handler = _Handler(pipelining=pipelining)
        self.login = login
        self.smtputf8 = smtputf8
        self._controller: Controller | None = None

    def url_with_login(self, user: str, password: str) -> str:
        return f"smtp://{quote(user)}:{quote(password)}@127.0.0.1:{self.port}?timeout=5"

    def _authenticate(
        self, _server: Any, _session: Any, _envelope: Any, _mechanism: str, data: Any
    ) -> AuthResult:
        expected = tuple(part.encode() for part in self.login or ())
        # handled=False lets aiosmtpd answer a refusal with 535 itself.
        return AuthResult(
            success=isinstance(data, LoginPassword) and data == expected, handled=False
        )

    def start(self) -> None:
        options: dict[str, Any] = {"enable_SMTPUTF8": self.smtputf8}
        if self.login is not None:
            options.update(authenticator=self._authenticate, auth_require_tls=False)
        self._controller = _Controller(
            self.handler, hostname="127.0.0.1", port=self.port, **options
        )
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None


class MailServer(Protocol):
    """What tests use of either server."""

    port: int
    handler: _Handler

    @property
    def url(self) -> str: ...

    @property
    def received(self) -> list[Received]: ...

    def start(self) -> None: ...

    def stop(self) -> None: ...


class ChunkingServer(_Recording):
    """The same record and faults as :class:`SMTPServer`, offering PIPELINING and CHUNKING
    (or what ``offer`` says); ``hold=True`` answers only at the end of each pipelined group."""

    def __init__(self, hold: bool = False, offer: Offer | None = None) -> None:
        self.handler = _Handler()
        self.port = free_port()
        self.offer = offer or Offer()
        self._server = ResponderThread(self.handler, self.port, self.offer, hold=hold)

    def start(self) -> None:
        self._server.start()

    def stop(self) -> None:
        self._server.stop()


#: The servers sending is tested against, by the kind of transaction each makes the client use.
SERVER_KINDS: dict[str, Callable[[], MailServer]] = {
    "pipelining": SMTPServer,
    "chunking": ChunkingServer,
}
