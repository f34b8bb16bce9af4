"""A real SMTP server (aiosmtpd) on 127.0.0.1 that records what it accepts.

Faults are set per test: a function per SMTP stage returns a reply such as ``"451 4.3.0 try
later"`` to refuse, or None to accept; ``data_delay`` holds the answer to DATA for a number of
seconds (a hung server). ``SMTPServer(smtputf8=True)`` offers SMTPUTF8 (RFC 6531).
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
from typing import Any
from urllib.parse import quote

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

__all__ = ["Received", "SMTPServer", "free_port"]

Reply = Callable[[str], str | None]


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
class _Handler:
    received: list[Received] = field(default_factory=list)
    greeting_reply: Callable[[], str | None] | None = None
    rcpt_reply: Reply | None = None
    data_reply: Reply | None = None
    drop_after_data: Callable[[list[str]], bool] | None = None
    data_delay: Callable[[], float] | None = None
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ) -> list[str]:
        reply = self.greeting_reply() if self.greeting_reply else None
        if reply:
            return [reply]
        session.host_name = hostname
        return responses

    async def handle_HELO(self, server: Any, session: Any, envelope: Any, hostname: str) -> str:
        reply = self.greeting_reply() if self.greeting_reply else None
        if reply:
            return reply
        session.host_name = hostname
        return f"250 {server.hostname}"

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
        with self.lock:
            self.received.append(Received(envelope.mail_from, recipients, envelope.content))
        return "250 Message accepted for delivery"


class SMTPServer:
    """Start, stop and start again on the same port; ``received`` lists accepted messages."""

    def __init__(self, login: tuple[str, str] | None = None, smtputf8: bool = False) -> None:
        self.port = free_port()
        self.handler = _Handler()
        self.login = login
        self.smtputf8 = smtputf8
        self._controller: Controller | None = None

    @property
    def url(self) -> str:
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    @property
    def received(self) -> list[Received]:
        with self.handler.lock:
            return list(self.handler.received)

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
        self._controller = Controller(self.handler, hostname="127.0.0.1", port=self.port, **options)
        self._controller.start()

    def stop(self) -> None:
        if self._controller is not None:
            self._controller.stop()
            self._controller = None
