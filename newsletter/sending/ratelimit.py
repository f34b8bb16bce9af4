"""A token bucket shared by the worker threads: ``--rate`` is a cap for the whole run."""

from __future__ import annotations

import threading
import time

__all__ = ["TokenBucket"]


class TokenBucket:
    def __init__(self, per_second: float, burst: float | None = None) -> None:
        if per_second <= 0:
            raise ValueError("the rate must be positive")
        self.per_second = per_second
        self.capacity = burst if burst is not None else max(1.0, per_second / 10)
        self._tokens = self.capacity
        self._updated = time.monotonic()
        self._lock = threading.Lock()

    def take(self, stop: threading.Event | None = None) -> bool:
        """Wait for one token; returns False if ``stop`` was set while waiting."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(
                    self.capacity, self._tokens + (now - self._updated) * self.per_second
                )
                self._updated = now
                if self._tokens >= 1:
                    self._tokens -= 1
                    return True
                wait = (1 - self._tokens) / self.per_second
            if stop is not None and stop.wait(wait):
                return False
            if stop is None:
                time.sleep(wait)
