"""Mail as a person reads it: the headers that matter and the plain text, decoded.

An ``.eml`` file opened in a text editor shows the wire form: quoted-printable cuts every long
line, links included, with ``=`` at the end, and names arrive as ``=?utf-8?q?…?=``. This is
what the maildir outbox and the ``console://`` transport look like decoded.
"""

from __future__ import annotations

import email
import os
from email.message import EmailMessage, MIMEPart
from email.policy import default
from pathlib import Path

__all__ = ["maildir_messages", "readable"]

SHOWN_HEADERS = ("Date", "From", "To", "Reply-To", "Subject", "List-Unsubscribe")


def readable(message: EmailMessage | bytes) -> str:
    """The message's main headers, a blank line and its plain-text part, decoded."""
    data = message if isinstance(message, bytes) else message.as_bytes()
    parsed = email.message_from_bytes(data, policy=default)
    assert isinstance(parsed, EmailMessage)
    lines = [f"{name}: {parsed[name]}" for name in SHOWN_HEADERS if parsed[name] is not None]
    text = parsed.get_body(preferencelist=("plain",))
    lines.append("")
    lines.append(_text_of(text).rstrip("\n") if text else "(no plain-text part)")
    others = [
        part.get_content_type()
        for part in parsed.walk()
        if part is not text and not part.is_multipart()
    ]
    if others:
        lines += ["", f"[also in this message: {', '.join(others)}]"]
    return "\n".join(lines) + "\n"


def _text_of(part: MIMEPart) -> str:
    try:
        return str(part.get_content())
    except (LookupError, UnicodeError):
        # A charset Python does not know (the folder may hold mail from elsewhere): the bytes
        # as UTF-8, which most mail is, rather than nothing.
        payload = part.get_payload(decode=True)
        return payload.decode("utf-8", "replace") if isinstance(payload, bytes) else ""


def maildir_messages(folder: Path, last: int) -> list[Path]:
    """The ``last`` newest messages delivered into the maildir ``folder``, oldest first.

    Both ``new/`` and ``cur/`` count (a mail program moves what it has seen); ``tmp/`` holds
    messages still being written.
    """
    files = [
        entry
        for sub in ("new", "cur")
        if (folder / sub).is_dir()
        for entry in (folder / sub).iterdir()
        if entry.is_file()
    ]
    files.sort(key=lambda path: (os.stat(path).st_mtime_ns, path.name))
    return files[-last:]
