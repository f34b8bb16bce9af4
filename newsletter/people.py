"""One person as mail sees them, and the one select that reads them.

A message needs the same things of a subscriber whoever sends it: the address, the name,
the id and nonce that sign their links, and the topics they chose (which articles of a digest
are theirs). The sender's claim, the dry run and the confirmation email read them with
:func:`with_person`, so a column added here reaches every message at once; the topics come in
the same select, so the choice in force when a delivery is claimed is the one its message
gets, at no extra query per message.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import ColumnElement, Select, String, cast, func, select
from sqlalchemy.orm import InstrumentedAttribute

from newsletter.models import Subscriber, SubscriberTopic

__all__ = ["PERSON_COLUMNS", "Person", "parse_topic_ids", "person_in", "with_person"]


@dataclass(frozen=True)
class Person:
    """A subscriber as plain values; ``id`` and ``token_nonce`` sign their links.

    ``topic_ids`` are the topics they chose, ascending; none means everything."""

    id: int
    token_nonce: str
    email: str
    first_name: str
    last_name: str
    topic_ids: tuple[int, ...] = ()

    @classmethod
    def of(cls, subscriber: Subscriber, topic_ids: tuple[int, ...] = ()) -> Person:
        return cls(
            subscriber.id,
            subscriber.token_nonce,
            subscriber.email,
            subscriber.first_name,
            subscriber.last_name,
            topic_ids,
        )


# The chosen topic ids as one space-separated string (GROUP_CONCAT on SQLite, STRING_AGG on
# PostgreSQL): a correlated subquery on the primary key, so a claim of a batch stays one
# statement however many topics people hold.
_TOPIC_IDS = (
    select(func.aggregate_strings(cast(SubscriberTopic.topic_id, String), " "))
    .where(SubscriberTopic.subscriber_id == Subscriber.id)
    .scalar_subquery()
    .label("topic_ids")
)


#: The columns of a :class:`Person`, in its fields' order.
PERSON_COLUMNS = (
    Subscriber.id,
    Subscriber.token_nonce,
    Subscriber.email,
    Subscriber.first_name,
    Subscriber.last_name,
    _TOPIC_IDS,
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
    id, nonce, email, first_name, last_name, topics = values
    return Person(id, nonce, email, first_name, last_name, parse_topic_ids(topics))


def parse_topic_ids(joined: str | None) -> tuple[int, ...]:
    """The topic ids of :data:`PERSON_COLUMNS`' last column, ascending."""
    return tuple(sorted(int(part) for part in joined.split())) if joined else ()
