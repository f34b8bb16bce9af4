"""A small SMTP server on asyncio's bare protocol API: PIPELINING, CHUNKING (BDAT), 8BITMIME
and SMTPUTF8, with the same fault hooks as the aiosmtpd test server.

aiosmtpd has no BDAT and does not offer PIPELINING, and it costs about 0.6 ms of CPU a
message, which made it the bottleneck of the send benchmark. This one parses commands
straight out of the bytes received and answers every command of a read in one write, so the
benchmark sink built on it (``bench/smtp_sink.py``) costs a small fraction of that, and the
tests can check a client against a server that offers both extensions, over real sockets.

Two ways of holding answers back, both per connection and in order:

- ``rtt``: every answer leaves ``rtt`` seconds after the command it answers arrived, and
  the commands of one read are answered together, as over a link with that round-trip time.
- ``hold``: answers wait until a command that ends a pipelined group (``DATA``, the end of
  the message data, ``NOOP``, ``EHLO``, ``QUIT``): a client that waits for an answer in the
  middle of a group waits for ever (its timeout), one that pipelines does not. A connection
  dropped (``drop_after_data``) loses the answers held, as a server that dies would.
"""

from __future__ import annotations

import asyncio
import threading
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NamedTuple

__all__ = ["Hooks", "Offer", "Responder", "ResponderThread"]

Reply = Callable[[str], str | None]


@dataclass
class Offer:
    """The extensions EHLO names."""

    pipelining: bool = True
    chunking: bool = True
    smtputf8: bool = True

    def ehlo(self, hostname: str) -> bytes:
        lines = [hostname, "8BITMIME"]
        if self.pipelining:
            lines.append("PIPELINING")
        if self.chunking:
            lines.append("CHUNKING")
        if self.smtputf8:
            lines.append("SMTPUTF8")
        lines.append("HELP")
        text = "".join(f"250-{line}\r\n" for line in lines[:-1]) + f"250 {lines[-1]}\r\n"
        return text.encode()


@dataclass
class Hooks:
    """What the server does with each stage; every hook may return a reply such as
    ``"451 4.3.0 try later"`` to refuse, or None to go on."""

    greeting_reply: Callable[[], str | None] | None = None
    mail_reply: Reply | None = None
    rcpt_reply: Reply | None = None
    #: The DATA command itself (before 354), given the recipients joined by commas.
    data_command_reply: Reply | None = None
    #: The end of the message data (after the dot, or the BDAT LAST chunk).
    data_reply: Reply | None = None
    #: Close the connection instead of answering the end of the message data.
    drop_after_data: Callable[[list[str]], bool] | None = None
    #: Seconds to hold the answer to the end of the message data (a hung server).
    data_delay: Callable[[], float] | None = None
    #: Whether :meth:`delivered` gets the message data (undoing dot-stuffing costs time).
    keep_content: bool = True

    def delivered(self, sender: str, recipients: list[str], content: bytes) -> None:
        """A message was accepted; ``content`` is empty unless ``keep_content``."""


def _address(argument: bytes, prefix: bytes) -> str | None:
    """The address in ``FROM:<a@b> PARAM…`` / ``TO:<a@b>``, or None when malformed."""
    if argument[: len(prefix)].upper() != prefix:
        return None
    rest = argument[len(prefix) :].lstrip()
    end = rest.find(b">")
    if not rest.startswith(b"<") or end < 0:
        return None
    return rest[1:end].decode("utf-8", "replace")


class Answer(NamedTuple):
    reply: bytes
    #: Seconds beyond the round trip before it leaves (``Hooks.data_delay``).
    delay: float = 0.0
    #: A pipelining client waits for this one: what ``hold`` held back goes out with it.
    ends_group: bool = False


#: Instead of an answer: close the connection (after the answers before it).
_CLOSE = Answer(b"", 0.0, True)


class Responder(asyncio.Protocol):
    """One SMTP session."""

    def __init__(self, hooks: Hooks, offer: Offer, rtt: float = 0.0, hold: bool = False) -> None:
        self.hooks = hooks
        self.offer = offer
        self.rtt = rtt
        self.hold = hold
        self.buffer = bytearray()
        self.sender: str | None = None
        self.recipients: list[str] = []
        self.chunks: list[bytes] = []
        self.in_data = False
        self.data_scanned = 0
        self.bdat_left = -1
        self.bdat_last = False
        self.bdat_ok = False
        self.closing = False
        self.closed = False
        # Answers waiting for their time, in order: (due, bytes); b"" closes instead.
        self.pending: deque[tuple[float, bytes]] = deque()
        self.held: list[Answer] = []
        self.last_due = 0.0
        self.timer: asyncio.TimerHandle | None = None

    # -- the connection --------------------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.loop = asyncio.get_running_loop()
        refusal = self.hooks.greeting_reply() if self.hooks.greeting_reply else None
        if refusal:
            answers = [Answer(f"{refusal}\r\n".encode(), ends_group=True), _CLOSE]
        else:
            answers = [Answer(b"220 responder ESMTP\r\n", ends_group=True)]
        self._answer(answers, self.loop.time())

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.timer is not None:
            self.timer.cancel()

    def data_received(self, data: bytes) -> None:
        arrived = self.loop.time()
        self.buffer += data
        answers: list[Answer] = []
        while not self.closing:
            if self.in_data:
                answer = self._data_end()
            elif self.bdat_left >= 0:
                answer = self._chunk()
            else:
                end = self.buffer.find(b"\r\n")
                if end < 0:
                    if len(self.buffer) > 4096:
                        answer = Answer(b"500 5.5.2 line too long\r\n", ends_group=True)
                        self.closing = True
                        answers.append(answer)
                    break
                line = bytes(self.buffer[:end])
                del self.buffer[: end + 2]
                answer = self._command(line)
            if answer is None:
                break
            answers.append(answer)
        if self.closing:
            self.buffer.clear()
            if not answers or answers[-1].reply:
                answers.append(_CLOSE)
        self._answer(answers, arrived)

    # -- answering in order, now or later --------------------------------------------------

    def _answer(self, answers: list[Answer], arrived: float) -> None:
        if self.hold:
            answers = self._release(answers)
        now: list[bytes] = []
        for reply, delay, _ends in answers:
            due = max(arrived + self.rtt + delay, self.last_due)
            self.last_due = due
            if due <= arrived and not self.pending and reply:
                now.append(reply)
            else:
                self.pending.append((due, reply))
        if now:
            self.transport.write(b"".join(now))
        if self.pending and self.timer is None:
            self.timer = self.loop.call_at(self.pending[0][0], self._flush)

    def _release(self, answers: list[Answer]) -> list[Answer]:
        """``hold``: what may leave now; the rest waits for the answer that ends the group."""
        released: list[Answer] = []
        for answer in answers:
            if not answer.reply:
                # Closing: a server that dies never sends what it held.
                self.held = []
            self.held.append(answer)
            if answer.ends_group:
                released += self.held
                self.held = []
        return released

    def _flush(self) -> None:
        self.timer = None
        now = self.loop.time()
        out: list[bytes] = []
        while self.pending and self.pending[0][0] <= now + 0.0005:
            reply = self.pending.popleft()[1]
            if not reply:
                if out:
                    self.transport.write(b"".join(out))
                self.pending.clear()
                self.transport.close()
                return
            out.append(reply)
        if out and not self.closed:
            self.transport.write(b"".join(out))
        if self.pending:
            self.timer = self.loop.call_at(self.pending[0][0], self._flush)

    # -- commands --------------------------------------------------------------------------

    def _reset(self) -> None:
        self.sender = None
        self.recipients = []
        self.chunks = []

    def _command(self, line: bytes) -> Answer | None:
        verb, _, argument = line.partition(b" ")
        verb = verb.upper()
        if verb == b"MAIL":
            return Answer(self._mail(argument))
        if verb == b"RCPT":
            return Answer(self._rcpt(argument))
        if verb == b"BDAT":
            return self._bdat(argument)
        if verb == b"DATA":
            return Answer(self._data_command(), ends_group=True)
        if verb == b"EHLO":
            self._reset()
            return Answer(self.offer.ehlo("responder"), ends_group=True)
        if verb == b"HELO":
            self._reset()
            return Answer(b"250 responder\r\n", ends_group=True)
        if verb == b"RSET":
            self._reset()
            return Answer(b"250 2.0.0 reset\r\n")
        if verb == b"NOOP":
            return Answer(b"250 2.0.0 ok\r\n", ends_group=True)
        if verb == b"QUIT":
            self.closing = True
            return Answer(b"221 2.0.0 bye\r\n", ends_group=True)
        return Answer(b"500 5.5.1 command not recognised\r\n", ends_group=True)

    def _mail(self, argument: bytes) -> bytes:
        if self.sender is not None:
            return b"503 5.5.1 nested MAIL command\r\n"
        sender = _address(argument, b"FROM:")
        if sender is None:
            return b"501 5.5.4 syntax: MAIL FROM:<address>\r\n"
        if b"SMTPUTF8" in argument.upper() and not self.offer.smtputf8:
            return b"555 5.5.4 SMTPUTF8 is not offered\r\n"
        refusal = self.hooks.mail_reply(sender) if self.hooks.mail_reply else None
        if refusal:
            return f"{refusal}\r\n".encode()
        self.sender = sender
        return b"250 2.1.0 sender ok\r\n"

    def _rcpt(self, argument: bytes) -> bytes:
        if self.sender is None:
            return b"503 5.5.1 need MAIL before RCPT\r\n"
        recipient = _address(argument, b"TO:")
        if recipient is None:
            return b"501 5.5.4 syntax: RCPT TO:<address>\r\n"
        refusal = self.hooks.rcpt_reply(recipient) if self.hooks.rcpt_reply else None
        if refusal:
            return f"{refusal}\r\n".encode()
        self.recipients.append(recipient)
        return b"250 2.1.5 recipient ok\r\n"

    def _data_command(self) -> bytes:
        if self.sender is None or not self.recipients:
            return b"554 5.5.1 no valid recipients\r\n"
        hook = self.hooks.data_command_reply
        refusal = hook(",".join(self.recipients)) if hook else None
        if refusal:
            return f"{refusal}\r\n".encode()
        self.in_data = True
        # The terminator is CRLF "." CRLF; the line end of DATA counts as its first CRLF.
        self.buffer[:0] = b"\r\n"
        self.data_scanned = 0
        return b"354 end data with <CR><LF>.<CR><LF>\r\n"

    def _data_end(self) -> Answer | None:
        end = self.buffer.find(b"\r\n.\r\n", self.data_scanned)
        if end < 0:
            self.data_scanned = max(len(self.buffer) - 4, 0)
            return None
        content = b""
        if self.hooks.keep_content:
            raw = bytes(self.buffer[2 : end + 2])
            content = (raw[1:] if raw.startswith(b".") else raw).replace(b"\r\n..", b"\r\n.")
        del self.buffer[: end + 5]
        self.in_data = False
        return self._message(content)

    def _bdat(self, argument: bytes) -> Answer | None:
        size, _, last = argument.partition(b" ")
        if not size.isdigit() or last.strip().upper() not in (b"", b"LAST"):
            # The size of the chunk that follows is unknown: the session cannot go on.
            self.closing = True
            return Answer(b"501 5.5.4 syntax: BDAT size [LAST]\r\n", ends_group=True)
        self.bdat_left = int(size)
        self.bdat_last = bool(last.strip())
        # RFC 3030: the chunk is read whatever the answer to it will be.
        self.bdat_ok = self.sender is not None and bool(self.recipients)
        return self._chunk()

    def _chunk(self) -> Answer | None:
        if len(self.buffer) < self.bdat_left:
            return None
        if self.bdat_ok and self.hooks.keep_content:
            self.chunks.append(bytes(self.buffer[: self.bdat_left]))
        size = self.bdat_left
        del self.buffer[:size]
        self.bdat_left = -1
        if not self.bdat_ok:
            self._reset()
            return Answer(b"554 5.5.1 no valid recipients for this data\r\n", ends_group=True)
        if not self.bdat_last:
            return Answer(f"250 2.0.0 {size} octets received\r\n".encode())
        return self._message(b"".join(self.chunks))

    def _message(self, content: bytes) -> Answer:
        hooks = self.hooks
        recipients = self.recipients
        sender = self.sender or ""
        self._reset()
        delay = hooks.data_delay() if hooks.data_delay else 0.0
        if hooks.drop_after_data and hooks.drop_after_data(recipients):
            self.closing = True
            return Answer(b"", delay, True)
        refusal = hooks.data_reply(",".join(recipients)) if hooks.data_reply else None
        if refusal:
            return Answer(f"{refusal}\r\n".encode(), delay, True)
        hooks.delivered(sender, recipients, content)
        return Answer(b"250 2.0.0 message accepted\r\n", delay, True)


@dataclass
class ResponderThread:
    """The server on 127.0.0.1:``port`` with its own event loop in a thread; it can be
    stopped and started again on the same port."""

    hooks: Hooks
    port: int
    offer: Offer = field(default_factory=Offer)
    rtt: float = 0.0
    hold: bool = False
    _loop: asyncio.AbstractEventLoop | None = None
    _server: asyncio.Server | None = None
    _thread: threading.Thread | None = None
    _sessions: list[Responder] = field(default_factory=list)

    def _protocol(self) -> Responder:
        session = Responder(self.hooks, self.offer, self.rtt, self.hold)
        self._sessions[:] = [*(s for s in self._sessions if not s.closed), session]
        return session

    def start(self) -> None:
        loop = asyncio.new_event_loop()
        ready = threading.Event()

        async def serve() -> None:
            self._server = await loop.create_server(
                self._protocol, "127.0.0.1", self.port, reuse_address=True
            )
            ready.set()

        def run() -> None:
            asyncio.set_event_loop(loop)
            loop.run_until_complete(serve())
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name=f"smtp-{self.port}", daemon=True)
        self._thread.start()
        assert ready.wait(10), "the SMTP server did not start"

    def stop(self) -> None:
        loop, server, thread = self._loop, self._server, self._thread
        if loop is None or server is None or thread is None:
            return

        async def close() -> None:
            server.close()
            for session in self._sessions:
                if not session.closed:
                    session.transport.abort()
            self._sessions.clear()
            await server.wait_closed()
            # Let the aborted transports close their sockets before the loop stops.
            await asyncio.sleep(0)
            await asyncio.sleep(0)
            loop.stop()

        asyncio.run_coroutine_threadsafe(close(), loop)
        thread.join(timeout=10)
        self._loop = self._server = self._thread = None
