"""PostgreSQL: a new address's signup written in one statement.

For an address nobody holds yet, the person, the consent they gave and their confirmation
email are three INSERTs that need nothing but the person's new id. Data-modifying ``WITH``s
write all three in one statement: one round trip to the server instead of three, on the
form's busiest path. An address already held inserts nothing and gives no row, and the
caller goes the general way (``services.subscriptions``). SQLite has no INSERT in ``WITH``.
"""

from __future__ import annotations

import functools
from typing import Any

from sqlalchemy import Integer, Select, String, bindparam, insert, select, true
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session

from newsletter.db import UTCDateTime, utcnow
from newsletter.models import (
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscriber,
    new_token_nonce,
)
from newsletter.services.bulk import table_of
from newsletter.services.consent import Evidence, event_fields

__all__ = ["add_at_once", "applies"]


def applies(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def add_at_once(
    session: Session,
    person: dict[str, Any],
    evidence: Evidence,
    statement_id: int,
) -> tuple[int, int] | None:
    """Add ``person`` (the subscribers row's given columns), their consent and their queued
    confirmation email; their id and the email's, or None (nothing written) when the address
    is already held."""
    now = utcnow()
    # The columns' own defaults are not applied to an INSERT inside WITH: given here.
    row_values = person | {"token_nonce": new_token_nonce(), "created_at": now, "updated_at": now}
    event = event_fields(ConsentKind.GIVEN, evidence, now) | {"statement_id": statement_id}
    params = {f"p_{name}": value for name, value in row_values.items()}
    params |= {f"e_{name}": value for name, value in event.items()}
    params["d_at"] = now
    row = session.execute(_statement(tuple(row_values), tuple(event)), params).first()
    return (row[0], row[1]) if row is not None else None


@functools.cache
def _statement(person_columns: tuple[str, ...], event_columns: tuple[str, ...]) -> Select[Any]:
    subscribers, events, deliveries = (
        table_of(Subscriber),
        table_of(ConsentEvent),
        table_of(Delivery),
    )
    person = (
        postgresql.insert(subscribers)
        .values({name: bindparam(f"p_{name}") for name in person_columns})
        .on_conflict_do_nothing(index_elements=["email_key"])
        .returning(subscribers.c.id)
        .cte("person")
    )
    given = (
        insert(events)
        .from_select(
            ["subscriber_id", *event_columns],
            select(
                person.c.id,
                *(bindparam(f"e_{name}", type_=events.c[name].type) for name in event_columns),
            ),
        )
        .cte("given")
    )
    email = (
        insert(deliveries)
        .from_select(
            ["kind", "subscriber_id", "status", "attempts", "created_at"],
            select(
                bindparam("d_kind", DeliveryKind.CONFIRM.value, type_=String()),
                person.c.id,
                bindparam("d_status", DeliveryStatus.QUEUED.value, type_=String()),
                bindparam("d_attempts", 0, type_=Integer()),
                bindparam("d_at", type_=UTCDateTime()),
            ),
        )
        .returning(deliveries.c.id)
        .cte("email")
    )
    return (
        select(person.c.id, email.c.id.label("email_id"))
        .select_from(person.join(email, true()))
        .add_cte(given)
    )
