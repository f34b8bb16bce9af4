"""SMTP replies read straight from a session's socket, however many arrive in one read.

smtplib reads each reply through a file object, one command and one reply at a time. A client
that pipelines (RFC 2920) writes a group of commands at once and then reads their replies,
which usually arrive together: this reader keeps one buffer for them, so a whole group costs
one write and, most of the time, one read.
"""

from __future__ import annotations

import select
import socket
import ssl
from dataclasses import dataclass

__all__ = ["ConnectionLost", "Reply", "ReplyReader"]

#: A reply longer than this is not one (RFC 5321 allows 512 octets a line).
MAX_REPLY = 64 * 1024


class ConnectionLost(OSError):
    """The server closed the connection, or sent something that is not an SMTP reply."""


@dataclass(frozen=True, slots=True)
class Reply:
    code: int
    #: The text of every line without its code, joined by newlines (as smtplib gives it).
    text: str


class ReplyReader:
    """Writes to and reads replies from one connected socket (plain or TLS)."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buffer = bytearray()

    def send(self, data: bytes) -> None:
        """Write all of ``data``; an OSError means its end did not go out."""
        self.sock.sendall(data)

    def reply(self) -> Reply:
        """The next reply; OSError (a timeout, :class:`ConnectionLost`…) if none comes."""
        lines: list[bytes] = []
        while True:
            end = self.buffer.find(b"\n")
            if end < 0:
                if len(self.buffer) > MAX_REPLY:
                    raise ConnectionLost("the server's answer is not an SMTP reply")
                received = self.sock.recv(65536)
                if not received:
                    raise ConnectionLost("the server closed the connection")
                self.buffer += received
                continue
            line = bytes(self.buffer[:end]).rstrip(b"\r")
            del self.buffer[: end + 1]
            if len(line) < 3 or not line[:3].isdigit() or line[3:4] not in (b"", b" ", b"-"):
                raise ConnectionLost(f"not an SMTP reply: {line[:60]!r}")
            lines.append(line[4:].strip())
            if line[3:4] != b"-":
                text = b"\n".join(lines).decode("utf-8", "replace")
                return Reply(int(line[:3]), text)

    def quiet(self) -> bool:
        """Whether the server has said nothing since its last reply and not closed.

        A server that ends an idle session says so (421) or just closes it; a message written
        into such a session afterwards would be lost or refused without being the message's
        fault. Costs one ``select`` when all is well.
        """
        if self.buffer:
            return False
        pending = isinstance(self.sock, ssl.SSLSocket) and self.sock.pending() > 0
        if not pending and not select.select([self.sock], [], [], 0)[0]:
            return True
        timeout = self.sock.gettimeout()
        self.sock.setblocking(False)
        try:
            received = self.sock.recv(65536)
        except (BlockingIOError, ssl.SSLWantReadError, ssl.SSLWantWriteError):
            return True  # only TLS housekeeping (a session ticket, say) was waiting
        except OSError:
            return False
        finally:
            self.sock.settimeout(timeout)
        self.buffer += received
        return False
