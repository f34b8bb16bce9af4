"""Building a MIME message from rendered parts: headers are encoded, never trusted.

Header fields are written by ``mail.headers`` and stored as they are (``set_raw``): handing
them to the ``email`` package's header parser would decode any encoded-word hidden in a name
or subject into the header itself.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import textwrap
from email import quoprimime
from email.headerregistry import BaseHeader
from email.message import EmailMessage, MIMEPart
from email.policy import SMTP
from email.utils import format_datetime
from functools import lru_cache

from newsletter.db import utcnow
from newsletter.mail.headers import address_field, mailbox_field, one_line, unstructured
from newsletter.site import Site

__all__ = [
    "build_encoded_message",
    "build_message",
    "encode_piece",
    "new_boundary",
    "one_line",
    "stable_message_id",
    "wrap_text",
]

TEXT_WIDTH = 76
QP_LINE_LENGTH = 76
# Fold headers only at RFC 5322's hard limit: a List-Unsubscribe URL folded at 78 would be
# turned into an encoded word, which mail providers do not read as a link.
POLICY = SMTP.clone(max_line_length=998)
# An address with a UTF-8 local part is written as UTF-8 (RFC 6532), for SMTPUTF8 servers.
UTF8_POLICY = POLICY.clone(utf8=True)


def stable_message_id(site: Site, kind: str, number: int) -> str:
    """The same Message-ID for the same delivery, however often it is built."""
    tag = hmac.new(
        site.secret_key.encode(), f"{kind}:{number}".encode(), hashlib.sha256
    ).hexdigest()[:16]
    return f"<{kind}.{number}.{tag}@{site.sender_domain}>"


def wrap_text(text: str, width: int = TEXT_WIDTH) -> str:
    """Wrap prose for plain-text readers; URLs and long words are never broken."""
    lines: list[str] = []
    for line in text.splitlines():
        if len(line) <= width:
            lines.append(line)
            continue
        wrapped = textwrap.wrap(line, width, break_long_words=False, break_on_hyphens=False)
        lines.extend(wrapped or [""])
    return "\n".join(lines) + "\n"


def _addressed(
    site: Site,
    *,
    to_name: str,
    to_address: str,
    subject: str,
    message_id: str,
    headers: dict[str, str] | None,
) -> EmailMessage:
    """A message with every header set; CR, LF and control characters never reach one."""
    recipient = address_field(to_name, to_address)
    message = EmailMessage(policy=POLICY if recipient.isascii() else UTF8_POLICY)
    message.set_raw("Subject", unstructured(subject))
    message.set_raw("From", mailbox_field(site.sender))
    message.set_raw("To", recipient)
    message.set_raw("Date", format_datetime(utcnow()))
    message.set_raw("Message-ID", one_line(message_id))
    for name, value in (headers or {}).items():
        message.set_raw(name, unstructured(value))
    return message


@lru_cache(maxsize=64)
def _shared_header(name: str, value: str) -> BaseHeader:
    # Parsing a header is much of the cost of building a message; the fixed MIME headers of
    # every message of a campaign are parsed once. Header objects are immutable.
    header: BaseHeader = POLICY.header_factory(name, value)
    return header


def build_message(
    site: Site,
    *,
    to_name: str,
    to_address: str,
    subject: str,
    text: str,
    html: str,
    message_id: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """A multipart/alternative UTF-8 message with the given parts and extra headers."""
    message = _addressed(
        site,
        to_name=to_name,
        to_address=to_address,
        subject=subject,
        message_id=message_id,
        headers=headers,
    )
    message.set_content(wrap_text(text), subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def encode_piece(text: str) -> str:
    """``text`` as UTF-8 quoted-printable that can be joined to other encoded pieces.

    A piece that does not end with a newline ends with a soft line break (which decoders
    remove), so joined pieces decode to the joined text and no line passes 76 characters.
    """
    if not text:
        return ""
    # quoprimime encodes one character per byte value, so it is handed the UTF-8 bytes.
    raw = text.replace("\r\n", "\n").replace("\r", "\n").encode("utf-8").decode("latin-1")
    encoded = quoprimime.body_encode(raw, maxlinelen=QP_LINE_LENGTH - 1, eol="\n")
    return encoded if raw.endswith("\n") else encoded + "=\n"


def new_boundary() -> str:
    """A MIME boundary that cannot occur in quoted-printable text ("=_" never does)."""
    return f"=_{secrets.token_hex(16)}"


def _encoded_part(subtype: str, encoded: str) -> MIMEPart:
    part = MIMEPart(policy=POLICY)
    part["Content-Type"] = _shared_header("Content-Type", f'text/{subtype}; charset="utf-8"')
    part["Content-Transfer-Encoding"] = _shared_header(
        "Content-Transfer-Encoding", "quoted-printable"
    )
    part.set_payload(encoded)
    return part


def build_encoded_message(
    site: Site,
    *,
    to_name: str,
    to_address: str,
    subject: str,
    text_qp: str,
    html_qp: str,
    message_id: str,
    boundary: str,
    headers: dict[str, str] | None = None,
) -> EmailMessage:
    """As :func:`build_message`, for parts already encoded with :func:`encode_piece`.

    A campaign encodes what every message shares once; each message then costs little more
    than its headers. ``boundary`` comes from :func:`new_boundary`.
    """
    message = _addressed(
        site,
        to_name=to_name,
        to_address=to_address,
        subject=subject,
        message_id=message_id,
        headers=headers,
    )
    message["MIME-Version"] = _shared_header("MIME-Version", "1.0")
    message["Content-Type"] = _shared_header(
        "Content-Type", f'multipart/alternative; boundary="{boundary}"'
    )
    message.set_payload([_encoded_part("plain", text_qp), _encoded_part("html", html_qp)])
    return message
