"""An empty database on SQLite or PostgreSQL, for tests that migrate it step by step."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest
from sqlalchemy import Engine

from newsletter.db import create_db_engine
from tests.conftest import scratch_database

__all__ = ["empty_engine"]


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
