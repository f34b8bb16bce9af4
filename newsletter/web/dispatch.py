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
from newsletter.mail.transports import Connection
from newsletter.services.confirmations import Outbox, hand_over_after_commit

__all__ = ["MailDispatcher", "get_dispatcher", "init_app"]

log = logging.getLogger(__name__)


#: Seconds a mail thread keeps its SMTP connection open waiting for more emails: long enough
#: to carry a busy form's emails from one batch to the next, far shorter than the minutes
#: after which servers end idle sessions, so a kept connection is never a stale one.
KEEP_OPEN = 5.0


#: Seconds a mail thread, woken by an email, waits for more to join its batch. Each batch costs
#: one claim and one record whatever its size, and one wake-up of a thread, which costs the
#: request that wakes it more than its own database work: under load this is a fifth of a
#: signup's server time. The visitor, who is reading the thanks page, cannot tell.
LINGER = 0.02


class MailDispatcher:
    """Background threads that send confirmation emails as signups commit.

    A quiet form gets each email sent on its own at once. In a burst, emails that arrive while
    the threads are busy wait in a list, and the next free thread sends up to ``batch`` of them
    over one SMTP connection with one claim: per email that saves a connection (TCP, EHLO,
    QUIT) and two database transactions, which is most of the work besides building it. A
    thread woken by an email waits ``linger`` seconds for others to join its batch. A thread
    keeps its connection for the next batch while emails keep coming, and closes it (and
    ends) after ``keep_open`` seconds without one.
    """

    def __init__(
        self,
        outbox: Outbox,
        workers: int = 2,
        batch: int = 50,
        keep_open: float = KEEP_OPEN,
        linger: float = LINGER,
    ) -> None:
        self.outbox = outbox
        self._workers = workers
        self._batch = batch
        self._keep_open = keep_open
        self._linger = linger
        # The executor starts its threads on the first email, in the process that sends it
        # (with gunicorn --preload the app is built before the fork, which threads do not
        # survive).
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="mail")
        self._pending: set[Future[None]] = set()
        self._waiting: list[int] = []
        self._running = 0  # threads started and not ended, sending or waiting for emails
        self._busy = 0  # threads sending a batch now
        self._closing = False
        self._lock = threading.Lock()
        self._changed = threading.Condition(self._lock)

    def submit(self, delivery_ids: Iterable[int]) -> None:
        """Send these committed confirmations soon, in a background thread."""
        with self._lock:
            already_waiting = bool(self._waiting)
            self._waiting.extend(delivery_ids)
            if self._running > self._busy or self._running >= self._workers:
                # A thread waiting with its connection open takes it now; a busy one when
                # it finishes its batch. Only the first email of a batch wakes anyone: the
                # later ones join it (waking a thread costs the request more than its own
                # database work). All are woken: drain() waits on the same condition.
                if not already_waiting or len(self._waiting) >= self._batch:
                    self._changed.notify_all()
                return
            self._running += 1
            future = self._executor.submit(self._send_waiting)
            self._pending.add(future)
        future.add_done_callback(self._forget)

    def _forget(self, future: Future[None]) -> None:
        with self._lock:
            self._pending.discard(future)

    def _next_batch(self) -> list[int]:
        """Up to ``batch`` waiting emails, after waiting up to ``keep_open`` seconds for one;
        an empty list ends the thread."""
        with self._lock:
            self._changed.wait_for(lambda: self._waiting or self._closing, self._keep_open)
            if self._linger and self._waiting and not self._closing:
                # Let the emails of the next few signups join this one's batch.
                self._changed.wait_for(
                    lambda: len(self._waiting) >= self._batch or self._closing, self._linger
                )
            batch = self._waiting[: self._batch]
            del self._waiting[: self._batch]
            if batch:
                self._busy += 1
            else:
                self._running -= 1
                self._changed.notify_all()
            return batch

    def _send_waiting(self) -> None:
        connection: Connection | None = None
        try:
            while batch := self._next_batch():
                try:
                    connection = connection or self.outbox.transport.connect()
                    self.outbox.send_many(batch, connection)
                except Exception:
                    # Nobody waits on this thread: log it, and the deliveries stay for
                    # `outbox flush`. The next batch starts on a new connection.
                    log.exception("sending confirmation emails %s failed", batch)
                    if connection is not None:
                        _close_quietly(connection)
                        connection = None
                finally:
                    with self._lock:
                        self._busy -= 1
                        self._changed.notify_all()
        finally:
            if connection is not None:
                _close_quietly(connection)

    def drain(self, timeout: float = 30.0) -> None:
        """Wait until every submitted email has been handed over (tests, shutting down)."""
        with self._lock:
            self._changed.wait_for(lambda: not self._waiting and not self._busy, timeout)

    def close(self, timeout: float = 30.0) -> None:
        """Send what is waiting, then close the kept connections and end the threads."""
        with self._lock:
            self._closing = True
            self._changed.notify_all()
            pending = set(self._pending)
        wait(pending, timeout=timeout)


def _close_quietly(connection: Connection) -> None:
    try:
        connection.close()
    except Exception:
        log.warning("closing the mail connection failed", exc_info=True)


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
