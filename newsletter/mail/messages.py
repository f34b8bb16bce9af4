"""Building a MIME message from rendered parts: headers are encoded, never trusted."""

from __future__ import annotations

import hashlib
import hmac
import textwrap
from email.message import EmailMessage
from email.policy import SMTP
from email.utils import format_datetime, formataddr

from newsletter.db import utcnow
from newsletter.site import Site

__all__ = ["build_message", "one_line", "stable_message_id", "wrap_text"]

TEXT_WIDTH = 76
# Fold headers only at RFC 5322's hard limit: a List-Unsubscribe URL folded at 78 would be
# turned into an encoded word, which mail providers do not read as a link.
POLICY = SMTP.clone(max_line_length=998)


def one_line(value: str) -> str:
    """Header text with any line break or control character turned into a space."""
    if not value.isprintable():
        value = "".join(c if c.isprintable() else " " for c in value)
    return " ".join(value.split())


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
    message = EmailMessage(policy=POLICY)
    message["Subject"] = one_line(subject)
    message["From"] = site.sender
    message["To"] = formataddr((one_line(to_name), to_address))
    message["Date"] = format_datetime(utcnow())
    message["Message-ID"] = message_id
    for name, value in (headers or {}).items():
        message[name] = one_line(value)
    message.set_content(wrap_text(text), subtype="plain", charset="utf-8", cte="quoted-printable")
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message
