"""Rendered text cut at per-person markers, so a message built many times is rendered once.

A template is rendered with a random marker where each per-person value goes (letters and
digits only: autoescaping, CSS inlining and wrapping leave them intact, and nobody writing
content can guess them). The result is cut at the markers; each message then only joins the
pieces with its own values, already encoded for quoted-printable where asked.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from newsletter.mail.messages import encode_piece

__all__ = ["Pieces", "slot_markers"]


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

    def fill_encoded(self, values: Mapping[str, str]) -> str:
        """The same, as quoted-printable: only the values are encoded here."""
        encoded_values = {name: encode_piece(value) for name, value in values.items()}
        return self._join(self.encoded, self.slots, encoded_values)
