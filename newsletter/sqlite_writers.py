"""Writers to one SQLite file wait their turn in the kernel, not in SQLite's busy handler.

SQLite lets one transaction write at a time. The others wait in its busy handler, which sleeps
1, 2, 5, 10, 15, 20, 25 and up to 100 ms between tries, whether or not the lock was let go in
the meantime. Under a stream of short transactions (a burst of signups while confirmation
emails go out, from several gunicorn workers) an unlucky writer sleeps through many chances,
and its visitor waits far longer than the lock was held.

So each transaction of the service first takes an exclusive ``flock()`` on a file beside the
database, and lets it go as soon as it has committed or rolled back: the kernel wakes the next
writer, in whichever process, the moment the lock is free. SQLite's own locking still guards
the data; the file lock only orders the queue. Where it cannot be used (no such file can be
created, or a file system without ``flock``), transactions fall back to SQLite's busy handler.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections import Counter
from typing import Any

try:
    import fcntl
except ImportError:  # not on this platform: transactions use SQLite's busy handler
    fcntl = None  # type: ignore[assignment]

__all__ = ["QueuedWriterConnection"]


class _Held(threading.local):
    """Lock files this thread holds through one connection: a second connection of the same
    thread must not queue behind its own first one (it would wait forever); it falls back to
    SQLite's busy handler, which gives up after the busy timeout."""

    def __init__(self) -> None:
        self.paths: Counter[str] = Counter()


_held = _Held()


def _held_here() -> Counter[str]:
    return _held.paths


class QueuedWriterConnection(sqlite3.Connection):
    """A sqlite3 connection whose transactions queue on the writers' lock file."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._lock_path: str | None = None
        self._lock_fd: int | None = None
        self._looked = False
        self._holding: Counter[str] | None = None  # the holding thread's count, while held

    def begin_immediate(self) -> None:
        """``BEGIN IMMEDIATE``, after waiting for the writers' lock."""
        self._acquire()
        try:
            self.execute("BEGIN IMMEDIATE")
        except BaseException:
            self._release()
            raise

    def commit(self) -> None:
        try:
            super().commit()
        finally:
            self._release()

    def rollback(self) -> None:
        try:
            super().rollback()
        finally:
            self._release()

    def close(self) -> None:
        try:
            super().close()
        finally:
            self._release()
            self._close_lock_file()

    def __del__(self) -> None:
        # A connection dropped without close() must not keep every other writer waiting:
        # closing the file lets go of its lock.
        if getattr(self, "_holding", None) is not None:
            self._release()
        self._close_lock_file()

    def _close_lock_file(self) -> None:
        fd = getattr(self, "_lock_fd", None)
        if fd is not None:
            self._lock_fd = None
            os.close(fd)

    def _acquire(self) -> None:
        if self._holding is not None or not self._open_lock_file():
            return
        assert self._lock_fd is not None and self._lock_path is not None
        held = _held_here()
        if held[self._lock_path]:
            return
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX)
        except OSError:
            return
        self._holding = held
        held[self._lock_path] += 1

    def _release(self) -> None:
        held = self._holding
        if held is None:
            return
        assert self._lock_fd is not None and self._lock_path is not None
        self._holding = None
        held[self._lock_path] -= 1
        if held[self._lock_path] <= 0:
            del held[self._lock_path]
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
        except OSError:
            pass  # closing the file lets go of the lock in any case

    def _open_lock_file(self) -> bool:
        if fcntl is None:
            return False
        if not self._looked:
            self._looked = True
            rows = self.execute("PRAGMA database_list").fetchall()
            database = next((row[2] for row in rows if row[1] == "main"), "")
            if database:  # an in-memory database has no file and no other process
                path = f"{database}-writers"
                try:
                    self._lock_fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
                    self._lock_path = path
                except OSError:
                    self._lock_fd = None
        return self._lock_fd is not None
