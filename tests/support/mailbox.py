"""Reading what the maildir outbox and the SMTP test server received."""

from __future__ import annotations

import email
import re
from email.message import EmailMessage
from email.policy import default
from pathlib import Path

__all__ = ["body_text", "find_link", "read_maildir"]


def read_maildir(path: Path) -> list[EmailMessage]:
    """Every message in ``path/new``, oldest first."""
    folder = path / "new"
    if not folder.exists():
        return []
    messages = []
    for file in sorted(folder.iterdir()):
        message = email.message_from_bytes(file.read_bytes(), policy=default)
        assert isinstance(message, EmailMessage)
        messages.append(message)
    return messages


def body_text(message: EmailMessage, subtype: str = "plain") -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None, f"no text/{subtype} part"
    content = part.get_content()
    assert isinstance(content, str)
    return content


def find_link(message: EmailMessage, path: str) -> str:
    """The first URL in the plain-text part whose path starts with ``path``."""
    match = re.search(rf"https?://\S+?{re.escape(path)}\S+", body_text(message))
    assert match, f"no {path} link in the message"
    return match.group(0)
