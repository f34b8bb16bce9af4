"""Rate limits per client address: on signup POSTs, and on the bounce webhooks.

Counted in fixed windows by the ``limits`` library's storage when it is shared (``redis://``:
every web process, on every machine, adds to one count per client), or in this process's
memory (``memory://``, the default). Only the limited views pay for it: nothing runs on the
other requests. The in-memory count is our own, a dictionary: the library's starts a thread
for every hit to sweep expired counts, which cost more than the rest of the check.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from functools import wraps
from typing import Any, Protocol, cast

from flask import Flask, current_app, request
from flask.typing import RouteCallable
from limits import RateLimitItem, parse_many
from limits.errors import ConfigurationError
from limits.storage import storage_from_string
from limits.strategies import FixedWindowRateLimiter
from werkzeug.exceptions import TooManyRequests

from newsletter.config import ConfigError

__all__ = ["MemoryWindows", "init_app"]

LIMITED_ENDPOINTS = ("signup.subscribe", "signup.renew_confirmation")
WEBHOOK_ENDPOINTS = ("webhooks.receive",)
EXTENSION = "newsletter.limits"


class Windows(Protocol):
    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        """Count one request; whether it is within the limit."""


class MemoryWindows:
    """Fixed windows counted in this process: a count and the end of its window per key."""

    def __init__(self, sweep_every: float = 60.0) -> None:
        """``sweep_every``: seconds between sweeps of the counts whose window has ended."""
        self._counts: dict[str, tuple[int, float]] = {}
        self._lock = threading.Lock()
        self._sweep_every = sweep_every
        self._next_sweep = time.monotonic() + sweep_every

    def hit(self, item: RateLimitItem, *identifiers: str) -> bool:
        key = item.key_for(*identifiers)
        now = time.monotonic()
        with self._lock:
            if now >= self._next_sweep:
                self._sweep(now)
            count, ends = self._counts.get(key, (0, now))
            if now >= ends:
                count, ends = 0, now + item.get_expiry()
            self._counts[key] = (count + 1, ends)
        return count + 1 <= item.amount

    def __len__(self) -> int:
        """How many counts are kept (clients seen, per limited page and limit)."""
        return len(self._counts)

    def _sweep(self, now: float) -> None:
        # Clients seen once would otherwise stay for the life of the process.
        self._counts = {key: value for key, value in self._counts.items() if value[1] > now}
        self._next_sweep = now + self._sweep_every


def _windows(storage_uri: str) -> Windows:
    if storage_uri.rstrip("/") == "memory:":
        return MemoryWindows()
    try:
        storage = storage_from_string(storage_uri)
    except ConfigurationError as error:
        # An unknown scheme, or redis:// without the redis package installed.
        raise ConfigError(f"NEWSLETTER_RATELIMIT_STORAGE_URI: {error}") from None
    return FixedWindowRateLimiter(storage)


class Limits:
    """One app's limits: its settings, parsed once, and where the counts are kept."""

    def __init__(self, windows: Windows) -> None:
        self.windows = windows
        self._parsed: dict[str, list[RateLimitItem]] = {}

    def check(self, setting: str, scope: str) -> None:
        """Count this request against ``setting`` (e.g. ``SIGNUP_RATE_LIMIT``: one limit, or
        several separated by ``;``) for its client; a ``429`` at the first it is over."""
        text = str(current_app.config[setting])
        items = self._parsed.get(text)
        if items is None:
            items = self._parsed[text] = parse_many(text)
        client = request.remote_addr or "127.0.0.1"
        for item in items:
            if not self.windows.hit(item, scope, client):
                raise TooManyRequests()


def _limited(view: Callable[..., Any], limits: Limits, setting: str, scope: str) -> RouteCallable:
    @wraps(view)
    def checked(*args: Any, **kwargs: Any) -> Any:
        if request.method == "POST":
            limits.check(setting, scope)
        return view(*args, **kwargs)

    return cast(RouteCallable, checked)


def init_app(app: Flask) -> None:
    """One set of counts per app, so each app (and each test) has its own."""
    limits = Limits(_windows(app.config["RATELIMIT_STORAGE_URI"]))
    for endpoints, setting in (
        (LIMITED_ENDPOINTS, "SIGNUP_RATE_LIMIT"),
        (WEBHOOK_ENDPOINTS, "WEBHOOK_RATE_LIMIT"),
    ):
        for endpoint in endpoints:
            view = app.view_functions[endpoint]
            app.view_functions[endpoint] = _limited(view, limits, setting, endpoint)
    app.extensions[EXTENSION] = limits
