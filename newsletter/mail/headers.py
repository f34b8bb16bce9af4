"""Header fields written from text nobody checked (names, subjects, article titles).

Python's ``email`` package decodes RFC 2047 encoded-words whenever it parses a header value,
even inside a quoted string, and writes what it decoded back out as it is: a name typed as
``=?utf-8?q?a=0D=0ABcc:x?=`` would become a line break and a Bcc header. So no value given
here goes through that parser. Plain ASCII words are written as they are; every other word,
and every word that looks like an encoded-word, is itself encoded, so that a reader decodes
the field back to exactly the text that was given and never to a second header.
"""

from __future__ import annotations

import base64
import re
from email.utils import parseaddr

from newsletter.controls import replace_controls
from newsletter.mail.mailboxes import wire_address

__all__ = ["address_field", "encoded_words", "mailbox_field", "one_line", "unstructured"]

# Base64 of 45 bytes is 60 characters; with "=?utf-8?b?" and "?=" an encoded-word stays
# within RFC 2047's 75.
CHUNK_BYTES = 45
FOLD = "\r\n "
# The characters that make a display name need quotes (RFC 5322 "specials").
SPECIALS = re.compile(r'[][\\()<>@,:;".]')


def one_line(value: str) -> str:
    """Header text with any line break or control character turned into a space."""
    return " ".join(replace_controls(value, " ").split())


def _plain(word: str) -> bool:
    # "=?" starts an encoded-word; a word holding it is encoded so that nobody decodes it.
    return word.isascii() and "=?" not in word


def encoded_words(text: str) -> str:
    """``text`` as UTF-8 base64 encoded-words, folded one to a line; decodes to ``text``."""
    chunks: list[bytes] = []
    current = b""
    for char in text:
        encoded = char.encode("utf-8")
        # A character is never split: each encoded-word must decode on its own.
        if current and len(current) + len(encoded) > CHUNK_BYTES:
            chunks.append(current)
            current = b""
        current += encoded
    chunks.append(current)
    return FOLD.join(f"=?utf-8?b?{base64.b64encode(chunk).decode('ascii')}?=" for chunk in chunks)


def unstructured(value: str) -> str:
    """A Subject or similar field: plain words as they are, runs of other words encoded."""
    out: list[str] = []
    run: list[str] = []
    for word in one_line(value).split(" "):
        if _plain(word):
            if run:
                # Spaces between encoded-words are dropped by readers, so a run that holds
                # spaces is encoded as one piece.
                out.append(encoded_words(" ".join(run)))
                run = []
            out.append(word)
        else:
            run.append(word)
    if run:
        out.append(encoded_words(" ".join(run)))
    return " ".join(out)


def _phrase(name: str) -> str:
    """A display name: as it is, quoted if it holds specials, or encoded."""
    if not _plain(name):
        return encoded_words(name)
    if SPECIALS.search(name):
        escaped = name.replace("\\", "\\\\").replace('"', '\\"')
        return f'"{escaped}"'
    return name


def address_field(name: str, address: str) -> str:
    """``Name <address>`` with the name made safe and the domain in its ASCII form.

    A local part outside ASCII stays UTF-8 (RFC 6532); such a message can only go to a
    server that offers SMTPUTF8, which the transport checks.
    """
    wire = wire_address(address)
    phrase = _phrase(one_line(name))
    return f"{phrase} <{wire}>" if phrase else wire


def mailbox_field(mailbox: str) -> str:
    """A setting such as ``Our organisation <news@example.org>``, as :func:`address_field`."""
    name, address = parseaddr(mailbox)
    if not address:
        return unstructured(mailbox)
    return address_field(name, address)
