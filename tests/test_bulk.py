"""Many rows in one INSERT: conflicts left out and not returned, values stored as the ORM
stores them, defaults filled in, on both databases."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.models import ConsentEvent, Subscriber, Suppression
from newsletter.services.bulk import among, bulk_insert, table_of

NOW = datetime(2026, 3, 4, 5, 6, 7, 890123, tzinfo=UTC)


def person(n: int) -> dict[str, object]:
    return {
        "email": f"Person{n}@example.org",
        "email_key": f"person{n}@example.org",
        "first_name": f"Zoë {n}",
        "last_name": "O'Brien",
        "status": "active",
        "token_nonce": f"{n:016x}",
        "created_at": NOW,
        "updated_at": NOW,
    }


def test_new_rows_are_returned_and_taken_keys_left_out(app: Flask) -> None:
    with session_factory(app).begin() as session:
        session.add(Subscriber(**person(1)))
    with session_factory(app).begin() as session:
        inserted = bulk_insert(
            session,
            table_of(Subscriber),
            [person(n) for n in range(3)],
            conflict_key="email_key",
            returning=(Subscriber.id, Subscriber.email_key),
        )
    assert sorted(row.email_key for row in inserted) == [
        "person0@example.org",
        "person2@example.org",
    ]
    with session_factory(app)() as session:
        stored = {s.email_key: s for s in session.scalars(select(Subscriber))}
        assert {row.email_key: row.id for row in inserted} == {
            key: stored[key].id for key in ("person0@example.org", "person2@example.org")
        }
        assert stored["person2@example.org"].first_name == "Zoë 2"
        assert stored["person2@example.org"].created_at == NOW


def test_many_rows_past_one_statement_and_defaults_filled(app: Flask, database_url: str) -> None:
    count = 5000  # more than one multi-row statement's parameters on SQLite
    with session_factory(app).begin() as session:
        inserted = bulk_insert(
            session,
            table_of(Subscriber),
            [person(n) for n in range(count)],
            conflict_key="email_key",
            returning=(Subscriber.id, Subscriber.email_key),
        )
        events = [
            {
                "subscriber_id": row.id,
                "kind": "given",
                "at": NOW,
                "method": "import",
                "choices": None,
            }
            for row in inserted
        ]
        bulk_insert(session, table_of(ConsentEvent), events)
        # No ``folded`` given: the column's default applies.
        bulk_insert(
            session,
            table_of(Suppression),
            [{"email_hash": "a" * 64, "reason": "test", "created_at": NOW}],
        )
    assert len({row.id for row in inserted}) == count
    with Session(session_factory(app).kw["bind"]) as session:
        assert session.scalar(select(Suppression.folded)) is False
        ats = set(session.scalars(select(ConsentEvent.at)))
        assert ats == {NOW}
        assert session.scalars(select(ConsentEvent.choices)).first() is None


def test_among_finds_exactly_the_given_keys(app: Flask) -> None:
    unusual = "zoë'\"😀@x.org"
    with session_factory(app).begin() as session:
        session.add_all(Subscriber(**person(n)) for n in range(4))
        session.add(Subscriber(**person(4) | {"email": unusual, "email_key": unusual}))
    keys = ["person1@example.org", "person3@example.org", "nobody@example.org", unusual]
    # A line end or an empty value cannot be split out of one text: those take an IN list.
    awkward = [*keys, "person2@example.org\nperson0@example.org", ""]
    with session_factory(app)() as session:
        for wanted in (keys, awkward, []):
            found = session.scalars(
                select(Subscriber.email_key).where(among(session, Subscriber.email_key, wanted))
            )
            expected = ["person1@example.org", "person3@example.org", unusual] if wanted else []
            assert sorted(found) == expected


def test_two_inserts_in_one_transaction_return_only_their_own_rows(app: Flask) -> None:
    table = table_of(Subscriber)
    returning = (Subscriber.id, Subscriber.email_key)
    with session_factory(app).begin() as session:
        first = bulk_insert(session, table, [person(1)], "email_key", returning)
        second = bulk_insert(session, table, [person(1), person(2)], "email_key", returning)
    with session_factory(app).begin() as session:
        third = bulk_insert(session, table, [person(3)], "email_key", returning)
    assert [row.email_key for row in first] == ["person1@example.org"]
    assert [row.email_key for row in second] == ["person2@example.org"]
    assert [row.email_key for row in third] == ["person3@example.org"]


def test_each_row_keeps_its_own_time_whatever_its_zone(app: Flask) -> None:
    later = NOW + timedelta(hours=1)
    in_paris = later.astimezone(timezone(timedelta(hours=2)))
    times = [NOW, later, NOW, in_paris, None]
    with session_factory(app).begin() as session:
        [row] = bulk_insert(
            session, table_of(Subscriber), [person(1)], "email_key", (Subscriber.id,)
        )
        events = [
            {"subscriber_id": row.id, "kind": "given", "at": at or NOW, "method": str(n)}
            for n, at in enumerate(times)
        ]
        for event in events:
            event.update(statement_id=None, ip=None, choices=None)
        bulk_insert(session, table_of(ConsentEvent), events)
    with session_factory(app)() as session:
        stored = {
            method: at
            for method, at in session.execute(select(ConsentEvent.method, ConsentEvent.at))
        }
    assert stored == {"0": NOW, "1": later, "2": NOW, "3": later, "4": NOW}
