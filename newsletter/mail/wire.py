"""The one MIME builder: multipart/alternative messages assembled straight to wire bytes.

Every message the service sends (digests, confirmations, staff's test sends of a preview) is
built here, so a preview has exactly the shape subscribers get. Python's ``email`` package
parses and refolds every header of every message it builds, the largest part of building
one. A digest goes to many people with the same subject, sender and structure, so those
headers are written once per campaign; per message only the recipient's headers are
formatted and the bodies joined from pieces encoded once per campaign (``mail.pieces``), and,
with a DKIM key set, the finished bytes signed (``mail.dkim``).
Every header field is written by ``mail.headers``, never parsed by the ``email`` package
(which would decode any encoded-word that a name or subject smuggles in).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from newsletter.db import utcnow
from newsletter.mail.dkim import Signer
from newsletter.mail.headers import address_field, mailbox_field, one_line, unstructured
from newsletter.site import Site

__all__ = [
    "AlternativeTemplate",
    "Message",
    "Outgoing",
    "message_bytes",
    "new_boundary",
    "stable_message_id",
]

CRLF = b"\r\n"

#: A message object, or its bytes as they go on the wire (CRLF line ends).
Message = EmailMessage | bytes


def message_bytes(message: Message) -> bytes:
    """The message as it goes on the wire: CRLF line ends."""
    if isinstance(message, bytes):
        return message
    return message.as_bytes(policy=message.policy.clone(linesep="\r\n"))


def stable_message_id(site: Site, kind: str, number: int) -> str:
    """The same Message-ID for the same delivery, however often it is built."""
    tag = hmac.new(
        site.secret_key.encode(), f"{kind}:{number}".encode(), hashlib.sha256
    ).hexdigest()[:16]
    return f"<{kind}.{number}.{tag}@{site.sender_domain}>"


def new_boundary() -> str:
    """A MIME boundary that cannot occur in quoted-printable text ("=_" never does)."""
    return f"=_{secrets.token_hex(16)}"


@dataclass(frozen=True)
class Outgoing:
    """A finished message as it goes on the wire."""

    message_id: str
    data: bytes


def _part(subtype: str, encoded: str) -> bytes:
    """A text part from a body already in quoted-printable (``mail.pieces.encode_piece``)."""
    body = encoded.replace("\r\n", "\n")
    if not body.endswith("\n"):
        body += "\n"
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"'.encode()
        + CRLF
        + b"Content-Transfer-Encoding: quoted-printable"
        + CRLF
        + CRLF
        + body.replace("\n", "\r\n").encode("ascii")
    )


class AlternativeTemplate:
    """The parts of a message that are the same for every recipient, serialised once."""

    def __init__(
        self,
        sender: str,
        subject: str,
        headers: Mapping[str, str] | None = None,
        signer: Signer | None = None,
        reply_to: str = "",
    ) -> None:
        self.signer = signer
        self.boundary = new_boundary()
        shared = [
            f"Subject: {unstructured(subject)}",
            f"From: {mailbox_field(sender)}",
            *([f"Reply-To: {mailbox_field(reply_to)}"] if reply_to else []),
            *(f"{name}: {unstructured(value)}" for name, value in (headers or {}).items()),
            "MIME-Version: 1.0",
            f'Content-Type: multipart/alternative; boundary="{self.boundary}"',
        ]
        self._shared_headers = CRLF.join(line.encode("utf-8") for line in shared)

    def assemble(
        self,
        *,
        to_name: str,
        to_address: str,
        message_id: str,
        text_qp: str,
        html_qp: str,
        headers: Mapping[str, str] | None = None,
    ) -> Outgoing:
        """One recipient's message: their own headers, then both bodies, which come already
        encoded as quoted-printable (most of them once per campaign)."""
        own = [
            f"To: {address_field(to_name, to_address)}",
            f"Date: {format_datetime(utcnow())}",
            f"Message-ID: {one_line(message_id)}",
            *(f"{name}: {unstructured(value)}" for name, value in (headers or {}).items()),
        ]
        delimiter = b"--" + self.boundary.encode()
        data = b"".join(
            [
                CRLF.join(line.encode("utf-8") for line in own),
                CRLF,
                self._shared_headers,
                CRLF,
                CRLF,
                delimiter,
                CRLF,
                _part("plain", text_qp),
                CRLF,
                delimiter,
                CRLF,
                _part("html", html_qp),
                CRLF,
                delimiter,
                b"--",
                CRLF,
            ]
        )
        if self.signer is not None:
            data = self.signer.sign(data)
        return Outgoing(message_id, data)
