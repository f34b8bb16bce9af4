"""One scheduled run at a time: a lock held by a process for as long as it runs.

Cron or a timer may start ``digest auto`` while the previous run is still sending. The second
must see that and leave. PostgreSQL: a session-level advisory lock on a connection kept open
for the run. SQLite: an exclusive ``flock`` on a file beside the database. Both end with the
process that holds them, however it ends (``kill -9`` included), so a crash never leaves a
lock behind.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import Engine, text

try:
    import fcntl
except ImportError:  # pragma: no cover - not on POSIX
    fcntl = None  # type: ignore[assignment]

__all__ = ["RUN_LOCK_KEY", "run_lock"]

# Any fixed number shared by every process running automation on one PostgreSQL database.
RUN_LOCK_KEY = 7_311_843


@contextmanager
def run_lock(engine: Engine, key: int = RUN_LOCK_KEY) -> Iterator[bool]:
    """Hold the lock for the block; yields False (and holds nothing) when another process
    holds it."""
    if engine.dialect.name == "postgresql":
        with _advisory_lock(engine, key) as held:
            yield held
        return
    with _file_lock(engine.url.database, key) as held:
        yield held


@contextmanager
def _advisory_lock(engine: Engine, key: int) -> Iterator[bool]:
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
        held = bool(connection.scalar(text("SELECT pg_try_advisory_lock(:key)"), {"key": key}))
        try:
            yield held
        finally:
            if held:
                connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": key})


@contextmanager
def _file_lock(database: str | None, key: int) -> Iterator[bool]:
    if fcntl is None or not database or database == ":memory:":
        # No file, so no other process can share the database.
        yield True
        return
    descriptor = os.open(f"{database}-run-{key}", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        # Closing the file lets go of the lock.
        os.close(descriptor)
