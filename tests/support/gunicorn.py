"""The app under a real gunicorn on 127.0.0.1, as a subprocess, with its log in a file."""

from __future__ import annotations

import http.client
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.support.processes import running_process
from tests.support.smtp import free_port

__all__ = ["Gunicorn", "running_gunicorn"]


@dataclass(frozen=True)
class Gunicorn:
    host: str
    port: int
    log: Path

    def log_text(self) -> str:
        return self.log.read_text(errors="replace")


def _healthy(host: str, port: int) -> bool:
    connection = http.client.HTTPConnection(host, port, timeout=2)
    try:
        connection.request("GET", "/healthz")
        return connection.getresponse().status == 200
    except OSError:
        return False
    finally:
        connection.close()


@contextmanager
def running_gunicorn(
    env: Mapping[str, str],
    log: Path,
    *,
    workers: int = 2,
    threads: int = 4,
    startup_timeout: float = 30,
) -> Iterator[Gunicorn]:
    """Start ``gunicorn 'newsletter:create_app()'``, wait for ``/healthz``, stop it afterwards.

    ``threads`` above 1 makes gunicorn use its ``gthread`` worker class.
    """
    host, port = "127.0.0.1", free_port()
    command = [
        sys.executable,
        "-m",
        "gunicorn",
        "--workers",
        str(workers),
        "--threads",
        str(threads),
        "--worker-class",
        "gthread" if threads > 1 else "sync",
        "--bind",
        f"{host}:{port}",
        "--timeout",
        "60",
        "--graceful-timeout",
        "5",
        "newsletter:create_app()",
    ]
    with running_process(
        command,
        log,
        lambda: _healthy(host, port),
        name="gunicorn",
        env=env,
        startup_timeout=startup_timeout,
    ):
        yield Gunicorn(host, port, log)
