"""Revision 0008 on a database that holds a person and their mail: the reports' table is
added empty, holds a report, and goes again on downgrade, losing nothing else (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, column, insert, inspect, select, table
from sqlalchemy.exc import IntegrityError

from newsletter.db import utcnow
from newsletter.migrate import alembic_config, current_revision, upgrade
from tests.support.migrations import DELIVERIES as deliveries
from tests.support.migrations import add_sent_delivery, engine_with_ada

reports = table(
    "bounce_reports",
    column("subscriber_id"),
    column("delivery_id"),
    column("kind"),
    column("source"),
    column("reason"),
    column("report_id"),
    column("at"),
)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database at 0006 with one person and a message sent to them."""
    with engine_with_ada(request, tmp_path, "0006") as engine:
        with engine.begin() as connection:
            add_sent_delivery(connection)
        yield engine


def test_upgrade_adds_the_reports_table_and_downgrade_removes_it(engine_at_0006: Engine) -> None:
    assert "bounce_reports" not in inspect(engine_at_0006).get_table_names()

    upgrade(engine_at_0006, "0008")

    assert current_revision(engine_at_0006) == "0008"
    row = {
        "subscriber_id": 1,
        "delivery_id": 1,
        "kind": "hard",
        "source": "mailbox",
        "reason": "550 5.1.1 user unknown",
        "report_id": "<r@mta>",
        "at": utcnow(),
    }
    with engine_at_0006.begin() as connection:
        connection.execute(insert(reports).values(**row))
    # One report, one person: read twice, stored once.
    with pytest.raises(IntegrityError), engine_at_0006.begin() as connection:
        connection.execute(insert(reports).values(**row))
    with engine_at_0006.connect() as connection:
        assert connection.execute(select(reports.c.kind, reports.c.report_id)).all() == [
            ("hard", "<r@mta>")
        ]

    command.downgrade(alembic_config(engine_at_0006), "0006")

    assert current_revision(engine_at_0006) == "0006"
    assert "bounce_reports" not in inspect(engine_at_0006).get_table_names()
    with engine_at_0006.connect() as connection:
        assert connection.execute(select(deliveries.c.id, deliveries.c.status)).all() == [
            (1, "sent")
        ]
    upgrade(engine_at_0006, "0008")
    assert "bounce_reports" in inspect(engine_at_0006).get_table_names()
