"""``newsletter db upgrade`` and ``db current`` on empty SQLite and PostgreSQL databases."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from flask import Flask
from sqlalchemy import inspect

from newsletter import create_app
from newsletter.app_db import get_engine
from newsletter.db import Base
from newsletter.migrate import head_revision

TABLES = {
    "alembic_version",
    "articles",
    "bounce_reports",
    "consent_events",
    "consent_statements",
    "deliveries",
    "digest_articles",
    "digests",
    "subscribers",
    "suppressions",
    "topics",
    "topic_matches",
    "article_categories",
    "subscriber_topics",
}


@pytest.fixture
def empty_app(empty_database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {"INSTANCE_PATH": str(tmp_path / "instance"), "DATABASE_URL": empty_database_url}
    )
    yield app
    get_engine(app).dispose()


def test_upgrade_creates_the_schema_then_does_nothing(empty_app: Flask) -> None:
    runner = empty_app.test_cli_runner()
    engine = get_engine(empty_app)
    head = head_revision(engine)
    assert head is not None

    before = runner.invoke(args=["db", "current"])
    assert before.exit_code == 0
    assert before.output.strip() == f"empty: behind (newest is {head})"
    assert set(inspect(engine).get_table_names()) <= {"alembic_version"}

    first = runner.invoke(args=["db", "upgrade"])
    assert first.exit_code == 0, first.output
    assert first.output.strip() == f"Database upgraded from empty to {head}."
    assert TABLES <= set(inspect(engine).get_table_names())

    second = runner.invoke(args=["db", "upgrade"])
    assert second.exit_code == 0
    assert second.output.strip() == f"Database is up to date (revision {head})."

    current = runner.invoke(args=["db", "current"])
    assert current.exit_code == 0
    assert current.output.strip() == f"{head}: up to date"


def test_migrated_schema_matches_the_models(empty_app: Flask) -> None:
    assert empty_app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
    with get_engine(empty_app).connect() as connection:
        differences = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert differences == []


def test_sqlite_runs_with_wal_busy_timeout_and_foreign_keys(tmp_path: Path) -> None:
    app = create_app({"INSTANCE_PATH": str(tmp_path / "instance")})
    try:
        assert app.test_cli_runner().invoke(args=["db", "upgrade"]).exit_code == 0
        assert (tmp_path / "instance" / "newsletter.db").exists()
        with get_engine(app).connect() as connection:
            assert connection.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
            assert connection.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1
            assert connection.exec_driver_sql("PRAGMA busy_timeout").scalar() >= 5000
    finally:
        get_engine(app).dispose()
