"""An empty database on SQLite or PostgreSQL, for tests that migrate it step by step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Connection, Engine, column, insert, table

from newsletter.db import create_db_engine, utcnow
from tests.conftest import scratch_database

__all__ = ["add_ada", "empty_engine"]

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
