"""The one rule for characters that never belong in a line of text someone gave us.

Control characters (C0, DEL and C1: CR, LF, NUL, NEL …), the Unicode line and paragraph
separators, and lone surrogates. CR and LF would let a value start a new email header; NUL is
refused by PostgreSQL; the separators are line breaks too; a lone surrogate cannot be written
as UTF-8 at all. Form fields and imported cells with one are refused
(``newsletter.validation``), header fields have them turned into spaces
(``newsletter.mail.headers``), and request headers kept as evidence have them dropped
(``newsletter.services.consent``).

Format characters (zero-width joiners, bidirectional marks) are not in it: names in many
scripts need them.
"""

from __future__ import annotations

import unicodedata

__all__ = ["has_controls", "is_control", "replace_controls"]

CATEGORIES = frozenset({"Cc", "Zl", "Zp", "Cs"})


def is_control(char: str) -> bool:
    """Whether ``char`` is one of the characters this module keeps out of text."""
    return unicodedata.category(char) in CATEGORIES


def has_controls(text: str) -> bool:
    """Whether ``text`` holds any such character."""
    # Printable text (nearly all of it) is answered without looking at each character.
    return not text.isprintable() and any(is_control(char) for char in text)


def replace_controls(text: str, replacement: str = "") -> str:
    """``text`` with each such character replaced (by default, dropped)."""
    if text.isprintable():
        return text
    return "".join(replacement if is_control(char) else char for char in text)
