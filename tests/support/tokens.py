"""Damaging tokens for tests."""

from __future__ import annotations

__all__ = ["flip_first"]


def flip_first(part: str) -> str:
    """``part`` with its first character changed.

    The first character of a base64 field carries six whole bits; the last may carry only
    padding, which decodes to the same bytes whatever it is.
    """
    return ("B" if part[0] == "A" else "A") + part[1:]
