"""Revision 0004 on a database that holds consent: the box's style is added empty for every
event recorded before, and taken away again on downgrade (SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, column, insert, inspect, select, table

from newsletter.db import utcnow
from newsletter.migrate import alembic_config, current_revision, upgrade
from tests.support.migrations import add_ada, empty_engine

events_0003 = table(
    "consent_events", column("subscriber_id"), column("kind"), column("at"), column("method")
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0003(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at 0003 with one person and the consent they gave."""
    with empty_engine(request, tmp_path) as engine:
        _fill(engine)
        yield engine


def _fill(engine: Engine) -> None:
    upgrade(engine, "0003")
    now = utcnow()
    with engine.begin() as connection:
        add_ada(connection, "pending")
        connection.execute(
            insert(events_0003).values(subscriber_id=1, kind="given", at=now, method="web form")
        )


def _columns(engine: Engine) -> set[str]:
    return {column["name"] for column in inspect(engine).get_columns("consent_events")}


def test_upgrade_adds_an_empty_box_style_and_downgrade_removes_it(
    engine_at_0003: Engine,
) -> None:
    assert "box_style" not in _columns(engine_at_0003)

    upgrade(engine_at_0003, "0004")

    assert current_revision(engine_at_0003) == "0004"
    events = table("consent_events", column("kind"), column("box_style"))
    with engine_at_0003.connect() as connection:
        assert connection.execute(select(events.c.kind, events.c.box_style)).all() == [
            ("given", None)
        ]

    command.downgrade(alembic_config(engine_at_0003), "0003")

    assert current_revision(engine_at_0003) == "0003"
    assert "box_style" not in _columns(engine_at_0003)
    with engine_at_0003.connect() as connection:
        assert connection.execute(select(events_0003.c.kind)).scalars().all() == ["given"]
