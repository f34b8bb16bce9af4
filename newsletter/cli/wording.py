"""Counts as staff read them: "1 reader", "2 readers"."""

from __future__ import annotations

__all__ = ["counted"]


def counted(number: int, noun: str, plural: str | None = None) -> str:
    """``number`` and ``noun``, in the plural (``noun + "s"`` unless given) unless it is 1."""
    return f"{number} {noun if number == 1 else plural or noun + 's'}"
