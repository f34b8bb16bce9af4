"""Revision 0006 on a database that holds consent and topics: the choices of a signup are
added empty for every event recorded before, and taken away again on downgrade, losing
nothing else (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, column, insert, inspect, select, table, update

from newsletter.db import utcnow
from newsletter.migrate import alembic_config, current_revision, upgrade
from tests.support.migrations import add_ada, empty_engine

events_0005 = table(
    "consent_events",
    column("subscriber_id"),
    column("kind"),
    column("at"),
    column("method"),
    column("box_style"),
)
topics = table(
    "topics",
    column("id"),
    column("slug"),
    column("name"),
    column("description"),
    column("created_at"),
)
held = table("subscriber_topics", column("subscriber_id"), column("topic_id"))


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0005(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at 0005 with one person, their consent and a topic they hold."""
    with empty_engine(request, tmp_path) as engine:
        _fill(engine)
        yield engine


def _fill(engine: Engine) -> None:
    upgrade(engine, "0005")
    now = utcnow()
    with engine.begin() as connection:
        add_ada(connection, "active")
        connection.execute(
            insert(events_0005).values(
                subscriber_id=1, kind="given", at=now, method="web form", box_style="page"
            )
        )
        connection.execute(
            insert(topics).values(
                id=1, slug="asylum", name="Asylum", description="", created_at=now
            )
        )
        connection.execute(insert(held).values(subscriber_id=1, topic_id=1))


def _columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("consent_events")}


def test_upgrade_adds_empty_choices_and_downgrade_removes_them(engine_at_0005: Engine) -> None:
    assert "choices" not in _columns(engine_at_0005)

    upgrade(engine_at_0005, "0006")

    assert current_revision(engine_at_0005) == "0006"
    events = table("consent_events", column("kind"), column("box_style"), column("choices"))
    with engine_at_0005.begin() as connection:
        assert connection.execute(select(events)).all() == [("given", "page", None)]
        record = json.dumps({"question": "Q?", "offered": ["Asylum"], "chosen": ["asylum"]})
        connection.execute(update(events).values(choices=record))

    command.downgrade(alembic_config(engine_at_0005), "0005")

    assert current_revision(engine_at_0005) == "0005"
    assert "choices" not in _columns(engine_at_0005)
    with engine_at_0005.connect() as connection:
        assert connection.execute(select(events_0005.c.kind, events_0005.c.box_style)).all() == [
            ("given", "page")
        ]
        assert connection.execute(select(held)).all() == [(1, 1)]

    upgrade(engine_at_0005)
    assert "choices" in _columns(engine_at_0005)
