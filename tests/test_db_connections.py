"""Connections from the pool: on PostgreSQL checked with a round trip only after they sat
idle, and replaced when the server closed them meanwhile; on SQLite, reads that stay out
of the writers' queue."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import sessionmaker

from newsletter import db
from tests.conftest import scratch_database

IDLE = 0.2


@pytest.fixture
def engine(postgres_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setattr(db, "PING_AFTER_IDLE_SECONDS", IDLE)
    with scratch_database(postgres_server) as url:
        engine = db.create_db_engine(url, pool_size=1, max_overflow=0)
        yield engine
        engine.dispose()


def backend_pid(engine: Engine) -> int:
    with engine.connect() as connection:
        pid: int = connection.execute(text("SELECT pg_backend_pid()")).scalar_one()
        return pid


def count_pings(engine: Engine, monkeypatch: pytest.MonkeyPatch) -> list[object]:
    pings: list[object] = []
    ping = engine.dialect.do_ping

    def counted(dbapi_connection: object) -> bool:
        pings.append(dbapi_connection)
        return ping(dbapi_connection)

    monkeypatch.setattr(engine.dialect, "do_ping", counted)
    return pings


def test_a_connection_back_a_moment_ago_is_used_without_a_round_trip_to_check_it(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    pings = count_pings(engine, monkeypatch)
    first = backend_pid(engine)
    assert backend_pid(engine) == first
    assert pings == []
    time.sleep(IDLE * 1.5)
    assert backend_pid(engine) == first
    assert len(pings) == 1


def test_a_connection_the_server_closed_while_it_sat_idle_is_replaced_unseen(
    engine: Engine, postgres_server: str
) -> None:
    first = backend_pid(engine)
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first})
    admin.dispose()
    time.sleep(IDLE * 1.5)
    assert backend_pid(engine) != first


def test_a_sqlite_reader_neither_waits_for_a_writer_nor_sees_what_it_has_not_committed(
    tmp_path: Path,
) -> None:
    engine = db.create_db_engine(f"sqlite:///{tmp_path / 'reads.db'}")
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (text TEXT)"))
        connection.execute(text("INSERT INTO notes VALUES ('committed')"))
    reading = db.readers(sessionmaker(engine))
    seen: list[list[str]] = []

    def read() -> None:
        with reading() as session:
            seen.append(list(session.execute(text("SELECT text FROM notes")).scalars()))

    try:
        with engine.begin() as writer:  # holds the writers' lock until the block ends
            writer.execute(text("INSERT INTO notes VALUES ('not yet')"))
            thread = threading.Thread(target=read)
            thread.start()
            thread.join(timeout=5)
            assert not thread.is_alive(), "the read waited for the writer"
        assert seen == [["committed"]]
    finally:
        engine.dispose()
