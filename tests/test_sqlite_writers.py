"""SQLite writers queue on a lock file beside the database, held from BEGIN to COMMIT or
ROLLBACK; SQLite-only, so these tests make their own database files."""

from __future__ import annotations

import fcntl
import gc
import os
import sqlite3
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from newsletter.db import create_db_engine
from newsletter.sqlite_writers import QueuedWriterConnection


@pytest.fixture
def database(tmp_path: Path) -> Path:
    path = tmp_path / "writers.db"
    with sqlite3.connect(path) as setup:
        setup.execute("CREATE TABLE events (id INTEGER PRIMARY KEY, what TEXT)")
    return path


def connect(path: Path, timeout: float = 5.0) -> QueuedWriterConnection:
    connection = sqlite3.connect(
        path,
        timeout=timeout,
        isolation_level=None,
        check_same_thread=False,
        factory=QueuedWriterConnection,
    )
    assert isinstance(connection, QueuedWriterConnection)
    return connection


@pytest.fixture
def other_process_view(database: Path) -> Iterator[int]:
    """A descriptor of the lock file of our own, as another process would have."""
    fd = os.open(f"{database}-writers", os.O_RDWR | os.O_CREAT, 0o600)
    yield fd
    os.close(fd)


def queue_is_taken(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    fcntl.flock(fd, fcntl.LOCK_UN)
    return False


def test_the_lock_is_held_from_begin_to_commit(database: Path, other_process_view: int) -> None:
    connection = connect(database)
    assert not queue_is_taken(other_process_view)
    connection.begin_immediate()
    connection.execute("INSERT INTO events (what) VALUES ('first')")
    assert queue_is_taken(other_process_view)
    connection.commit()
    assert not queue_is_taken(other_process_view)
    connection.close()
    with sqlite3.connect(database) as check:
        assert check.execute("SELECT what FROM events").fetchall() == [("first",)]


def test_rollback_and_close_let_go(database: Path, other_process_view: int) -> None:
    connection = connect(database)
    connection.begin_immediate()
    connection.execute("INSERT INTO events (what) VALUES ('undone')")
    connection.rollback()
    assert not queue_is_taken(other_process_view)
    connection.begin_immediate()
    assert queue_is_taken(other_process_view)
    connection.close()
    assert not queue_is_taken(other_process_view)
    with sqlite3.connect(database) as check:
        assert check.execute("SELECT count(*) FROM events").fetchone() == (0,)


def test_a_second_writer_waits_for_the_first_and_then_goes(database: Path) -> None:
    first, second = connect(database), connect(database)
    order: list[str] = []
    first.begin_immediate()
    first.execute("INSERT INTO events (what) VALUES ('first')")
    waiting = threading.Event()

    def write_second() -> None:
        waiting.set()
        second.begin_immediate()
        order.append("second began")
        second.execute("INSERT INTO events (what) VALUES ('second')")
        second.commit()

    thread = threading.Thread(target=write_second)
    thread.start()
    waiting.wait(5)
    thread.join(0.2)
    assert thread.is_alive(), "the second writer did not wait"
    order.append("first committed")
    first.commit()
    thread.join(10)
    assert not thread.is_alive()
    assert order == ["first committed", "second began"]
    with sqlite3.connect(database) as check:
        rows = check.execute("SELECT what FROM events ORDER BY id").fetchall()
    assert rows == [("first",), ("second",)]
    first.close()
    second.close()


def test_one_thread_with_two_writers_gets_sqlites_answer_not_a_hang(database: Path) -> None:
    first, second = connect(database), connect(database, timeout=0.1)
    first.begin_immediate()
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        second.begin_immediate()
    first.commit()
    second.begin_immediate()
    second.commit()
    first.close()
    second.close()


def test_an_in_memory_database_needs_no_lock_file(tmp_path: Path) -> None:
    connection = sqlite3.connect(":memory:", isolation_level=None, factory=QueuedWriterConnection)
    assert isinstance(connection, QueuedWriterConnection)
    connection.execute("CREATE TABLE t (x)")
    connection.begin_immediate()
    connection.execute("INSERT INTO t VALUES (1)")
    connection.commit()
    assert connection.execute("SELECT x FROM t").fetchall() == [(1,)]
    connection.close()
    assert list(tmp_path.iterdir()) == []


def test_the_services_engine_queues_and_an_observer_does_not(
    database: Path, other_process_view: int
) -> None:
    service = create_db_engine(f"sqlite:///{database}")
    observer = create_db_engine(f"sqlite:///{database}", sqlite_immediate=False)
    try:
        with service.begin() as connection:
            connection.execute(text("INSERT INTO events (what) VALUES ('service')"))
            assert queue_is_taken(other_process_view)
        assert not queue_is_taken(other_process_view)
        with observer.begin() as connection:
            connection.execute(text("SELECT count(*) FROM events")).scalar()
            assert not queue_is_taken(other_process_view)
    finally:
        service.dispose()
        observer.dispose()


def test_a_connection_dropped_without_close_lets_go(
    database: Path, other_process_view: int
) -> None:
    connection = connect(database)
    connection.begin_immediate()
    assert queue_is_taken(other_process_view)
    del connection
    gc.collect()
    assert not queue_is_taken(other_process_view)
    follower = connect(database)
    follower.begin_immediate()
    follower.execute("INSERT INTO events (what) VALUES ('after')")
    follower.commit()
    follower.close()
