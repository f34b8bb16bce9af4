"""The relaxed canonical forms of DKIM (RFC 6376, 3.4.2 and 3.4.4), of header fields and of
a body, as dkimpy makes them but cheaper: a body can be hashed in the pieces it is joined
from, the pieces every message of a campaign shares made canonical once and remembered. (The
header fields they share are made canonical once per campaign by ``mail.wire``.)"""

from __future__ import annotations

import base64
import functools
import hashlib
import re
from collections.abc import Iterable

from dkim.canonicalization import correct_empty_body, strip_trailing_lines

__all__ = [
    "FIELD_START",
    "BodyHash",
    "relaxed_body",
    "relaxed_field",
    "relaxed_lines",
]

# A header field starts on every line that does not begin with white space (RFC 5322, 2.2.3).
FIELD_START = re.compile(b"\r\n(?![\t ])")
LINE_BREAK = re.compile(b"\r?\n")
WSP_RUN = re.compile(b"[\t ]+")
# The pieces of a body that every message of a campaign shares: a digest's versions (one per
# mix of topics) have a few dozen; what is not used soon is forgotten first.
SHARED_PIECES_REMEMBERED = 1024
# Relaxed body canonicalisation (RFC 6376, 3.4.4), dkimpy's steps with cheaper patterns: its
# `[\t ]+` -> " " rewrites every single space of a 15 kB digest (0.45 ms a message, more than
# the RSA signature); these touch only the runs that change.
TRAILING_WSP = re.compile(b"[\t ]+\r\n")
# Two or more spaces, once tabs are spaces: a pattern that starts with a literal is searched
# for at C speed, where one that may start at any space is tried at every space of a body.
SPACE_RUNS = re.compile(b"  +")


def relaxed_field(field: bytes) -> tuple[bytes, bytes]:
    """One header field (``Name: value``, perhaps folded, without its final CRLF) as its
    lower-case name and its relaxed canonical form (RFC 6376, 3.4.2), ``name:value\r\n``."""
    name, _, value = field.partition(b":")
    name = name.lower().rstrip()
    # dkimpy's steps: unfold, one space for each run of WSP, then strip what is left around;
    # most fields are one line with single spaces, which only the strip changes.
    if b"\n" in value or b"\t" in value or b"  " in value:
        value = WSP_RUN.sub(b" ", LINE_BREAK.sub(b"", value))
    value = value.strip()
    return name, name + b":" + value + b"\r\n"


def relaxed_lines(body: bytes) -> bytes:
    """``body`` (CRLF line ends) with each line in the relaxed form (RFC 6376, 3.4.4): the
    whole rule but the last step, which drops empty lines at the body's end."""
    if b" \r\n" in body or b"\t\r\n" in body:
        body = TRAILING_WSP.sub(b"\r\n", body)
    body = body.replace(b"\t", b" ")
    if b"  " in body:
        body = SPACE_RUNS.sub(b" ", body)
    return body


def relaxed_body(body: bytes) -> bytes:
    """``body`` (CRLF line ends) in the relaxed canonical form, as dkimpy makes it."""
    canonical: bytes = correct_empty_body(strip_trailing_lines(relaxed_lines(body)))
    return canonical


@functools.lru_cache(maxsize=SHARED_PIECES_REMEMBERED)
def _relaxed_shared(piece: bytes) -> bytes:
    return relaxed_lines(piece)


class BodyHash:
    """The body hash (bh=) of a body given piece by piece, as the pieces are joined.

    The relaxed rule works line by line, so a piece that ends at a line end is canonical on
    its own: a piece marked shared (the same bytes in every message of a campaign: styles,
    articles, the footer) is canonicalised once and remembered, and only the person's own
    pieces each time. A piece that stops mid-line waits for the rest of its line."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self._open = b""
        self._last = b""

    def add(self, piece: bytes, shared: bool = False) -> None:
        self.add_all([(piece, shared)])

    def add_all(self, pieces: Iterable[tuple[bytes, bool]]) -> None:
        """Each piece, marked whether it is shared, in order; hashed in one call."""
        held, canonical = self._open, []
        for piece, shared in pieces:
            if held:
                piece, shared = held + piece, False
            if not piece.endswith(b"\r\n"):
                held = piece
                continue
            held = b""
            canonical.append(_relaxed_shared(piece) if shared else relaxed_lines(piece))
        self._open = held
        if canonical:
            self._last = canonical[-1]
            self._hash.update(b"".join(canonical))

    def value(self) -> bytes:
        """The base64 hash. The body must end with a line that is not empty (a MIME body's
        closing delimiter does), so that the rule's last step has nothing to drop."""
        if self._open:
            # The rule ends a body's last line with CRLF when it has none.
            self.add(b"\r\n")
        if self._last == b"\r\n" or self._last.endswith(b"\r\n\r\n"):
            raise ValueError("a body hashed in pieces must not end with an empty line")
        return base64.b64encode(self._hash.digest())
