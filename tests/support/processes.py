"""A server as a child process of the test session: started, waited for until it answers,
and stopped (terminated, killed if it must be) however the test ends."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path

__all__ = ["running_process"]


@contextmanager
def running_process(
    command: Sequence[str],
    log: Path,
    ready: Callable[[], bool],
    *,
    name: str,
    env: Mapping[str, str] | None = None,
    startup_timeout: float = 30,
) -> Iterator[subprocess.Popen[bytes]]:
    """Run ``command`` with its output in ``log`` until the block ends; enter the block once
    ``ready()`` says it answers."""
    with log.open("wb") as output:
        process = subprocess.Popen(
            list(command),
            env=dict(env) if env is not None else None,
            stdout=output,
            stderr=subprocess.STDOUT,
            cwd=os.getcwd(),
        )
    try:
        deadline = time.monotonic() + startup_timeout
        while not ready():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}:\n{log.read_text()}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not answer in time:\n{log.read_text()}")
            time.sleep(0.05)
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=15)
