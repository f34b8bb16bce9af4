"""Rendered text cut at per-person markers, so a message built many times is rendered once.

A template is rendered with a random marker where each per-person value goes (letters and
digits only: autoescaping, CSS inlining and wrapping leave them intact, and nobody writing
content can guess them). The result is cut at the markers; each message then only joins the
pieces with its own values, already encoded for quoted-printable where asked.
"""

from __future__ import annotations

import functools
import re
import secrets
import textwrap
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from email import quoprimime

__all__ = ["Pieces", "encode_piece", "slot_markers", "wire_text", "wrap_text"]

TEXT_WIDTH = 76
QP_LINE_LENGTH = 76


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


def wire_text(encoded: str) -> bytes:
    """Quoted-printable text as it goes on the wire: ASCII with CRLF line ends."""
    return encoded.replace("\r\n", "\n").replace("\n", "\r\n").encode("ascii")


def slot_markers(slots: Iterable[str]) -> dict[str, str]:
    """A fresh random marker for each slot name."""
    token = secrets.token_hex(12)
    return {name: f"slot{token}{name.replace('_', '')}end" for name in slots}


@dataclass(frozen=True)
class Pieces:
    """A rendered text cut at the per-person markers: ``literals`` around ``slots``.

    ``encoded`` holds the literals already in quoted-printable, so that a message only
    encodes its few per-person values.
    """

    literals: tuple[str, ...]
    slots: tuple[str, ...]
    encoded: tuple[str, ...]

    @classmethod
    def cut(cls, rendered: str, markers: Mapping[str, str]) -> Pieces:
        slot_of = {marker: name for name, marker in markers.items()}
        pattern = re.compile("|".join(re.escape(marker) for marker in markers.values()))
        literals: list[str] = []
        slots: list[str] = []
        position = 0
        for match in pattern.finditer(rendered):
            literals.append(rendered[position : match.start()])
            slots.append(slot_of[match.group()])
            position = match.end()
        literals.append(rendered[position:])
        encoded = tuple(encode_piece(literal) for literal in literals)
        return cls(tuple(literals), tuple(slots), encoded)

    @staticmethod
    def _join(literals: tuple[str, ...], slots: tuple[str, ...], values: Mapping[str, str]) -> str:
        parts = [literals[0]]
        for slot, literal in zip(slots, literals[1:], strict=True):
            parts.append(values[slot])
            parts.append(literal)
        return "".join(parts)

    def fill(self, values: Mapping[str, str]) -> str:
        """The text with ``values`` in their slots."""
        return self._join(self.literals, self.slots, values)

    @classmethod
    def concat(cls, parts: Iterable[Pieces]) -> Pieces:
        """The pieces of ``parts`` one after the other, as if rendered together. Encoded
        pieces join as they are (each ends with a newline or a soft line break), so a text
        assembled from parts encoded once is never encoded again."""
        literals: list[str] = [""]
        encoded: list[str] = [""]
        slots: list[str] = []
        for part in parts:
            literals[-1] += part.literals[0]
            encoded[-1] += part.encoded[0]
            literals.extend(part.literals[1:])
            encoded.extend(part.encoded[1:])
            slots.extend(part.slots)
        return cls(tuple(literals), tuple(slots), tuple(encoded))

    def bind(self, values: Mapping[str, str]) -> Pieces:
        """These pieces with the slots named in ``values`` filled in for good; the other slots
        stay open. For values shared by many messages (a version's subject, say)."""
        literals = [self.literals[0]]
        encoded = [self.encoded[0]]
        slots: list[str] = []
        for slot, literal, literal_qp in zip(
            self.slots, self.literals[1:], self.encoded[1:], strict=True
        ):
            if slot in values:
                literals[-1] += values[slot] + literal
                encoded[-1] += encode_piece(values[slot]) + literal_qp
            else:
                slots.append(slot)
                literals.append(literal)
                encoded.append(literal_qp)
        return Pieces(tuple(literals), tuple(slots), tuple(encoded))

    def encoded_only(self) -> Pieces:
        """These pieces without their plain text, for :meth:`fill_encoded` alone (which is
        all a message needs); :meth:`fill` then leaves out everything but the values."""
        return Pieces(("",) * len(self.literals), self.slots, self.encoded)

    def fill_encoded(self, values: Mapping[str, str]) -> str:
        """The same, as quoted-printable: only the values are encoded here."""
        encoded_values = {name: encode_piece(value) for name, value in values.items()}
        return self._join(self.encoded, self.slots, encoded_values)

    @functools.cached_property
    def _wire_literals(self) -> tuple[bytes, ...]:
        return tuple(wire_text(literal) for literal in self.encoded)

    def fill_wire(self, values: Mapping[str, str]) -> list[bytes]:
        """The same as :meth:`fill_encoded`, in wire bytes (:func:`wire_text`) and still in
        pieces: the literals at even places, the same bytes for every message, each
        person's values between them. Every piece ends at a line end, so each is joined and
        hashed (DKIM) as it is."""
        literals = self._wire_literals
        parts = [literals[0]]
        for slot, literal in zip(self.slots, literals[1:], strict=True):
            parts.append(wire_text(encode_piece(values[slot])))
            parts.append(literal)
        return parts
