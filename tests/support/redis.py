"""A throw-away Redis (Debian's ``redis-server``) on 127.0.0.1 and a free port, as a child
process of the test session: nothing written to disk, stopped at the end."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from tests.support.processes import running_process
from tests.support.smtp import free_port

__all__ = ["flush", "running_redis"]


def _command(port: int, command: bytes) -> bytes:
    """Send one inline command and return the start of the answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=5) as connection:
        connection.sendall(command + b"\r\n")
        return connection.recv(64)


def _answers(port: int) -> bool:
    try:
        return _command(port, b"PING").startswith(b"+PONG")
    except OSError:
        return False


def flush(url: str) -> None:
    """Forget every key, so that one test's counts are not the next one's."""
    port = int(urlsplit(url).port or 6379)
    answer = _command(port, b"FLUSHALL")
    assert answer.startswith(b"+OK"), answer


@contextmanager
def running_redis(folder: Path, startup_timeout: float = 15) -> Iterator[str]:
    """Start ``redis-server``; yield its ``redis://`` address."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    port = free_port()
    command = [
        server,
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--save",
        "",
        "--appendonly",
        "no",
        "--dir",
        str(folder),
    ]
    with running_process(
        command,
        folder / "redis.log",
        lambda: _answers(port),
        name="redis-server",
        startup_timeout=startup_timeout,
    ):
        yield f"redis://127.0.0.1:{port}/0"
