"""Feed categories as text: the one rule for cleaning them and for comparing them.

A site may tag one article "North Korea" and another "north  korea"; staff may type
"NORTH KOREA" when defining a topic. All three are one category: compared after Unicode
compatibility normalisation, case folding and collapsing whitespace.
"""

from __future__ import annotations

import unicodedata
from collections.abc import Iterable

from newsletter.controls import replace_controls

__all__ = ["CATEGORY_LENGTH", "clean_category", "fold_category", "unique_categories"]

# Long enough for any real tag; a longer one is cut rather than refused (it is the site's).
CATEGORY_LENGTH = 200


def clean_category(value: object) -> str:
    """``value`` as a category: one line, single spaces, at most ``CATEGORY_LENGTH``
    characters; "" when nothing is left."""
    if not isinstance(value, str):
        return ""
    text = " ".join(replace_controls(value, " ").split())
    return text[:CATEGORY_LENGTH].rstrip()


def fold_category(value: str) -> str:
    """The form two categories are compared in: equal when they are the same category."""
    folded = unicodedata.normalize("NFKC", value).casefold()
    return " ".join(folded.split())[:CATEGORY_LENGTH]


def unique_categories(values: Iterable[object]) -> tuple[str, ...]:
    """The cleaned categories among ``values``, the first spelling of each, in order."""
    seen: set[str] = set()
    kept = []
    for value in values:
        text = clean_category(value)
        key = fold_category(text)
        if key and key not in seen:
            seen.add(key)
            kept.append(text)
    return tuple(kept)
