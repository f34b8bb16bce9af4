"""An empty database on SQLite or PostgreSQL, for tests that migrate it step by step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, column, insert, table

from newsletter.db import UTCDateTime, create_db_engine, utcnow
from newsletter.migrate import upgrade
from tests.conftest import scratch_database

__all__ = ["DELIVERIES", "add_ada", "add_sent_delivery", "empty_engine", "engine_with_ada"]

# The columns of ``subscribers`` every revision has, so any revision's test can add a person.
_subscribers = table(
    "subscribers",
    column("id"),
    column("email"),
    column("email_key"),
    column("first_name"),
    column("last_name"),
    column("status"),
    column("token_nonce"),
    column("created_at"),
    column("updated_at"),
)


# The columns of ``deliveries`` every revision since 0001 has.
DELIVERIES = table(
    "deliveries",
    column("id"),
    column("kind"),
    column("digest_id"),
    column("subscriber_id"),
    column("status"),
    column("attempts"),
    column("created_at", UTCDateTime(timezone=True)),
)


def add_ada(connection: Connection, status: str) -> None:
    """Ada, subscriber 1, as any revision stores a person."""
    now = utcnow()
    connection.execute(
        insert(_subscribers).values(
            id=1,
            email="ada@example.org",
            email_key="ada@example.org",
            first_name="Ada",
            last_name="Lovelace",
            status=status,
            token_nonce="nonce",
            created_at=now,
            updated_at=now,
        )
    )


@contextmanager
def empty_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """An engine on a database with nothing in it; ``request.param`` names the database."""
    with ExitStack() as stack:
        if request.param == "sqlite":
            url = f"sqlite:///{tmp_path / 'old.db'}"
        else:
            server: str = request.getfixturevalue("postgres_server")
            url = stack.enter_context(scratch_database(server))
        engine = create_db_engine(url)
        stack.callback(engine.dispose)
        yield engine


def add_sent_delivery(
    connection: Connection, digest_id: int | None = None, at: datetime | None = None
) -> None:
    """Delivery 1: a message sent to Ada (of digest ``digest_id``, when given)."""
    connection.execute(
        insert(DELIVERIES).values(
            id=1,
            kind="digest",
            digest_id=digest_id,
            subscriber_id=1,
            status="sent",
            attempts=1,
            created_at=at or utcnow(),
        )
    )


@contextmanager
def engine_with_ada(
    request: pytest.FixtureRequest, tmp_path: Path, revision: str
) -> Iterator[Engine]:
    """An engine on a database at ``revision`` that holds Ada, active; ``request.param``
    names the database."""
    with empty_engine(request, tmp_path) as engine:
        upgrade(engine, revision)
        with engine.begin() as connection:
            add_ada(connection, "active")
        yield engine
