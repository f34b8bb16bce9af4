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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime

from newsletter.db import utcnow
from newsletter.mail.dkim import SignedLater, Signer, canonical_fields
from newsletter.mail.dkim_relaxed import BodyHash
from newsletter.mail.headers import address_field, mailbox_field, one_line, unstructured
from newsletter.mail.pieces import wire_text
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
    #: Its bytes, or a message whose DKIM signatures are still being made.
    content: bytes | SignedLater

    @property
    def data(self) -> bytes:
        """The bytes (waiting for the signatures, if they are being made)."""
        return self.content if isinstance(self.content, bytes) else self.content.data


#: A text part's body in quoted-printable: whole, or as ``Pieces.fill_wire`` gives it.
Body = str | Sequence[bytes]


def _part_head(subtype: str) -> bytes:
    return (
        f'Content-Type: text/{subtype}; charset="utf-8"'.encode()
        + CRLF
        + b"Content-Transfer-Encoding: quoted-printable"
        + CRLF
        + CRLF
    )


def _body_pieces(body: Body) -> list[tuple[bytes, bool]]:
    """A part's body as wire pieces, each marked whether every message shares it; it ends
    with a line end."""
    if isinstance(body, str):
        pieces = [(wire_text(body), False)]
    else:
        pieces = [(piece, place % 2 == 0) for place, piece in enumerate(body)]
    written = [piece for piece, _ in pieces if piece]
    if not written or not written[-1].endswith(CRLF):
        pieces.append((CRLF, True))
    return pieces


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
        shared_lines = [line.encode("utf-8") for line in shared]
        self._shared_headers = CRLF.join(shared_lines)
        # Signed: the fields every message shares are made canonical once.
        self._shared_canonical = canonical_fields(shared_lines) if signer is not None else {}
        delimiter = b"--" + self.boundary.encode()
        self._opening = delimiter + CRLF + _part_head("plain")
        self._between = CRLF + delimiter + CRLF + _part_head("html")
        self._closing = CRLF + delimiter + b"--" + CRLF

    def assemble(
        self,
        *,
        to_name: str,
        to_address: str,
        message_id: str,
        text_qp: Body,
        html_qp: Body,
        headers: Mapping[str, str] | None = None,
    ) -> Outgoing:
        """One recipient's message: their own headers, then both bodies, which come already
        encoded as quoted-printable (most of them once per campaign, see ``Body``)."""
        own = [
            f"To: {address_field(to_name, to_address)}",
            f"Date: {format_datetime(utcnow())}",
            f"Message-ID: {one_line(message_id)}",
            *(f"{name}: {unstructured(value)}" for name, value in (headers or {}).items()),
        ]
        body = [
            (self._opening, True),
            *_body_pieces(text_qp),
            (self._between, True),
            *_body_pieces(html_qp),
            (self._closing, True),
        ]
        own_lines = [line.encode("utf-8") for line in own]
        head = [CRLF.join(own_lines), CRLF, self._shared_headers]
        data = b"".join([*head, CRLF, CRLF, *(piece for piece, _ in body)])
        if self.signer is None:
            return Outgoing(message_id, data)
        # The body is hashed as it was joined, so the pieces every message shares are made
        # canonical once per campaign; so are the shared header fields, which follow the
        # person's own.
        hashed = BodyHash()
        hashed.add_all(body)
        fields = {**canonical_fields(own_lines), **self._shared_canonical}
        # Signed while the message before it goes out (see ``mail.signing_process``).
        return Outgoing(message_id, self.signer.sign_later(data, hashed, fields))
