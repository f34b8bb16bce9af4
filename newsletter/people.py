"""One person as mail sees them, and the one select that reads them.

A message needs the same five things of a subscriber whoever sends it: the address, the
name, and the id and nonce that sign their links. The sender's claim, the dry run and the
confirmation email read them with :func:`with_person`, so a column added here reaches every
message at once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, select
from sqlalchemy.orm import InstrumentedAttribute

from newsletter.models import Subscriber

__all__ = ["PERSON_COLUMNS", "Person", "person_in", "with_person"]


@dataclass(frozen=True)
class Person:
    """A subscriber as plain values; ``id`` and ``token_nonce`` sign their links."""

    id: int
    token_nonce: str
    email: str
    first_name: str
    last_name: str

    @classmethod
    def of(cls, subscriber: Subscriber) -> Person:
        return cls(
            subscriber.id,
            subscriber.token_nonce,
            subscriber.email,
            subscriber.first_name,
            subscriber.last_name,
        )


#: The columns of a :class:`Person`, in its fields' order.
PERSON_COLUMNS = (
    Subscriber.id,
    Subscriber.token_nonce,
    Subscriber.email,
    Subscriber.first_name,
    Subscriber.last_name,
)


def with_person(*leading: ColumnElement[Any] | InstrumentedAttribute[Any]) -> Select[Any]:
    """``select(*leading)`` followed by a person's columns; the caller adds the join to
    ``subscribers`` and its conditions. :func:`person_in` reads the person back."""
    return select(*leading, *PERSON_COLUMNS)


def person_in(row: Sequence[Any]) -> Person | None:
    """The person at the end of a row of :func:`with_person`, or None when an outer join
    found nobody (the subscriber was erased)."""
    values = row[-len(PERSON_COLUMNS) :]
    if values[0] is None:
        return None
    return Person(*values)
