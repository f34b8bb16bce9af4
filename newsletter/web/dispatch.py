"""Hands confirmation emails to the transport in the background, after the signup committed.

The visitor's response never waits for the mail server (so it looks the same whether or not an
email was due), and a failure leaves the delivery queued for ``newsletter outbox flush``.
Threads belong to the web process, so this lives here; what is due and how it is sent is
``newsletter.services.confirmations``'s work.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor, wait

from flask import Flask, current_app, has_request_context

from newsletter.app_db import session_factory
from newsletter.services.confirmations import Outbox, hand_over_after_commit

__all__ = ["MailDispatcher", "get_dispatcher", "init_app"]

log = logging.getLogger(__name__)


class MailDispatcher:
    """Background threads that send confirmation emails as signups commit.

    A quiet form gets each email sent on its own at once. In a burst, emails that arrive while
    the threads are busy wait in a list, and the next free thread sends up to ``batch`` of them
    over one SMTP connection with one claim: per email that saves a connection (TCP, EHLO,
    QUIT) and two database transactions, which is most of the work besides building it.
    """

    def __init__(self, outbox: Outbox, workers: int = 2, batch: int = 50) -> None:
        self.outbox = outbox
        self._workers = workers
        self._batch = batch
        # The executor starts its threads on the first email, in the process that sends it
        # (with gunicorn --preload the app is built before the fork, which threads do not
        # survive).
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mail")
        self._pending: set[Future[None]] = set()
        self._waiting: list[int] = []
        self._running = 0
        self._lock = threading.Lock()

    def submit(self, delivery_ids: Iterable[int]) -> None:
        """Send these committed confirmations soon, in a background thread."""
        with self._lock:
            self._waiting.extend(delivery_ids)
            if self._running >= self._workers:
                return  # a busy thread takes it when it finishes its batch
            self._running += 1
            future = self._executor.submit(self._send_waiting)
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _send_waiting(self) -> None:
        while True:
            with self._lock:
                batch = self._waiting[: self._batch]
                del self._waiting[: self._batch]
                if not batch:
                    self._running -= 1
                    return
            try:
                self.outbox.send_many(batch)
            except Exception:
                # Nobody waits on this thread: log it, and the deliveries stay for
                # `outbox flush`.
                log.exception("sending confirmation emails %s failed", batch)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait for every submitted email (tests, and shutting down cleanly)."""
        with self._lock:
            pending = set(self._pending)
        wait(pending, timeout=timeout)


def init_app(app: Flask, outbox: Outbox) -> None:
    dispatcher = MailDispatcher(outbox)
    app.extensions["newsletter.dispatcher"] = dispatcher

    def from_web_requests(delivery_ids: list[int]) -> None:
        # Only a visitor's request hands over: a command or a script working with the app's
        # sessions has no background threads to wait for, and leaves its emails to
        # `outbox flush`.
        if has_request_context():
            dispatcher.submit(delivery_ids)

    hand_over_after_commit(session_factory(app), from_web_requests)


def get_dispatcher(app: Flask | None = None) -> MailDispatcher:
    dispatcher: MailDispatcher = (app or current_app).extensions["newsletter.dispatcher"]
    return dispatcher
