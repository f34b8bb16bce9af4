"""Hands confirmation emails to the transport in the background, after the signup committed.

The visitor's response never waits for the mail server (so it looks the same whether or not an
email was due), and a failure leaves the delivery queued for ``newsletter outbox flush``.
"""

from __future__ import annotations

import logging
import threading
from concurrent.futures import Future, ThreadPoolExecutor, wait

from flask import Flask, current_app

from newsletter.services.outbox import Outbox

__all__ = ["MailDispatcher", "get_dispatcher", "init_app"]

log = logging.getLogger(__name__)


class MailDispatcher:
    def __init__(self, outbox: Outbox, workers: int = 2) -> None:
        self.outbox = outbox
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mail")
        self._pending: set[Future[None]] = set()
        self._lock = threading.Lock()

    def submit(self, delivery_id: int) -> None:
        future = self._executor.submit(self._send, delivery_id)
        with self._lock:
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _send(self, delivery_id: int) -> None:
        try:
            self.outbox.send_one(delivery_id)
        except Exception:
            # Nobody waits on this thread: log it, and the delivery stays for `outbox flush`.
            log.exception("sending confirmation email %s failed", delivery_id)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for every submitted email (tests, and shutting down cleanly)."""
        with self._lock:
            pending = set(self._pending)
        wait(pending, timeout=timeout)


def init_app(app: Flask, outbox: Outbox) -> None:
    app.extensions["newsletter.dispatcher"] = MailDispatcher(outbox)


def get_dispatcher(app: Flask | None = None) -> MailDispatcher:
    dispatcher: MailDispatcher = (app or current_app).extensions["newsletter.dispatcher"]
    return dispatcher
