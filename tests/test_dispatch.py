"""Confirmation emails sent from the web process: at once when the form is quiet, several
over one SMTP connection in a burst, and built with the database let go."""

from __future__ import annotations

import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import create_engine, text

from newsletter.mail.render import EmailRenderer, RenderedEmail
from newsletter.models import FORM_SIGNUP, DeliveryStatus
from newsletter.runtime import get_runtime
from newsletter.services.confirmations import Outbox
from newsletter.services.consent import Evidence
from newsletter.services.subscriptions import SignupDetails, sign_up
from newsletter.web.dispatch import MailDispatcher, get_dispatcher
from tests.conftest import post_signup
from tests.support.mailbox import body_text, read_maildir
from tests.support.smtp import SMTPServer


def recipients(server: SMTPServer) -> Counter[str]:
    return Counter(r for message in server.received for r in message.recipients)


def test_a_quiet_form_gets_each_email_at_once(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    client = app.test_client()
    for number in range(3):
        assert post_signup(client, email=f"quiet{number}@example.org").status_code == 303
        get_dispatcher(app).drain()
        assert recipients(smtp_server)[f"quiet{number}@example.org"] == 1
    assert len(smtp_server.received) == 3


def test_a_burst_shares_connections_and_sends_each_email_once(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    client = app.test_client()
    release = threading.Event()
    greetings: list[int] = []

    def hold_the_first_connection() -> None:
        # The server stalls until the burst is in, so the emails have to wait for a thread.
        greetings.append(1)
        if len(greetings) == 1:
            # Bounded, but long enough for 30 signups on a loaded machine; the burst
            # releases it as soon as it is in.
            release.wait(timeout=60)

    smtp_server.handler.greeting_reply = hold_the_first_connection
    addresses = [f"burst{number}@example.org" for number in range(30)]
    try:
        for email in addresses:
            assert post_signup(client, email=email).status_code == 303
    finally:
        release.set()
    get_dispatcher(app).drain()
    assert recipients(smtp_server) == Counter(addresses)
    # One connection per email before; now the two busy threads take the rest in batches.
    assert len(greetings) <= 4, len(greetings)


class ProbingRenderer(EmailRenderer):
    """The real renderer, which first looks whether any transaction is holding the database."""

    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.database_url = database_url
        self.free: list[bool] = []

    def render(self, name: str, context: dict[str, Any]) -> RenderedEmail:
        self.free.append(database_is_free(self.database_url))
        return super().render(name, context)


def database_is_free(database_url: str) -> bool:
    """On SQLite, another connection can take the write lock at once; on PostgreSQL, no
    session is inside a transaction but our own look."""
    if database_url.startswith("sqlite"):
        path = database_url.removeprefix("sqlite:///")
        connection = sqlite3.connect(path, timeout=0, isolation_level=None)
        try:
            connection.execute("BEGIN IMMEDIATE")
            connection.execute("ROLLBACK")
            return True
        except sqlite3.OperationalError:
            return False
        finally:
            connection.close()
    engine = create_engine(database_url)
    try:
        with engine.connect() as connection:
            busy = connection.scalar(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                    "AND pid <> pg_backend_pid() AND state LIKE 'idle in transaction%'"
                )
            )
        return busy == 0
    finally:
        engine.dispose()


def test_the_email_is_built_after_the_database_is_let_go(
    make_app: Callable[..., Flask], database_url: str, outbox_path: Path
) -> None:
    app = make_app()
    runtime = get_runtime(app)
    with runtime.sessions.begin() as session:
        outcome = sign_up(
            session,
            runtime.site,
            SignupDetails("lin@example.org", "Lin", "Ito"),
            Evidence(FORM_SIGNUP, ip="192.0.2.1"),
        )
        assert outcome.confirmation_id is not None
        delivery_id = outcome.confirmation_id
    renderer = ProbingRenderer(database_url)
    outbox = Outbox(runtime._replace(renderer=renderer))
    assert outbox.send_one(delivery_id)[DeliveryStatus.SENT] == 1
    assert renderer.free == [True]
    [message] = read_maildir(outbox_path)
    assert message["To"] == "lin@example.org"
    assert "/confirm/" in body_text(message)


def test_emails_one_after_another_share_the_connection_kept_open(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    greetings: list[int] = []
    smtp_server.handler.greeting_reply = lambda: greetings.append(1)
    client = app.test_client()
    for number in range(3):
        assert post_signup(client, email=f"steady{number}@example.org").status_code == 303
        get_dispatcher(app).drain()
        assert recipients(smtp_server)[f"steady{number}@example.org"] == 1
    # Each email on its own, as soon as it was due, and all over one connection.
    assert greetings == [1]


def queued_confirmations(app: Flask, count: int) -> list[int]:
    runtime = get_runtime(app)
    ids = []
    for number in range(count):
        with runtime.sessions.begin() as session:
            outcome = sign_up(
                session,
                runtime.site,
                SignupDetails(f"later{number}@example.org", "Lin", "Ito"),
                Evidence(FORM_SIGNUP, ip="192.0.2.1"),
            )
            assert outcome.confirmation_id is not None
            ids.append(outcome.confirmation_id)
    return ids


def test_a_connection_kept_open_is_closed_after_a_quiet_spell(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    runtime = get_runtime(app)
    outbox = Outbox(runtime)
    dispatcher = MailDispatcher(outbox, keep_open=0.2)
    greetings: list[int] = []
    quits: list[int] = []

    async def handle_quit(server: Any, session: Any, envelope: Any) -> str:
        quits.append(1)
        return "221 Bye"

    smtp_server.handler.greeting_reply = lambda: greetings.append(1)
    smtp_server.handler.handle_QUIT = handle_quit  # type: ignore[attr-defined]
    first, second = queued_confirmations(app, 2)
    try:
        dispatcher.submit([first])
        dispatcher.drain()
        # With no email for a while, the thread closes its connection (QUIT) and ends.
        deadline = time.monotonic() + 10
        while not quits and time.monotonic() < deadline:
            time.sleep(0.05)
        assert (greetings, quits) == ([1], [1])
        dispatcher.submit([second])
        dispatcher.drain()
    finally:
        dispatcher.close()
    assert (greetings, quits) == ([1, 1], [1, 1])
    assert recipients(smtp_server) == Counter(["later0@example.org", "later1@example.org"])


class CountingOutbox(Outbox):
    """The real outbox, noting the batches it is given."""

    def __init__(self, *args: Any) -> None:
        super().__init__(*args)
        self.batches: list[list[int]] = []

    def send_many(self, delivery_ids: list[int], connection: Any = None) -> Counter[str]:
        self.batches.append(list(delivery_ids))
        return super().send_many(delivery_ids, connection)


def send_one_by_one(
    app: Flask, ids: list[int], linger: float, batch: int
) -> tuple[list[list[int]], float]:
    """Submit each email on its own at once; the batches sent and the seconds it took."""
    runtime = get_runtime(app)
    outbox = CountingOutbox(runtime)
    dispatcher = MailDispatcher(outbox, linger=linger, batch=batch)
    try:
        started = time.monotonic()
        for delivery_id in ids:
            dispatcher.submit([delivery_id])
        dispatcher.drain()
        return outbox.batches, time.monotonic() - started
    finally:
        dispatcher.close()


@pytest.mark.parametrize(
    ("linger", "batch"),
    [
        (0.5, 4),  # three emails one after another wait the linger, then go as one batch
        (30.0, 3),  # a full batch goes at once, without waiting for the linger
    ],
)
def test_emails_due_within_the_linger_go_out_in_one_batch(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, linger: float, batch: int
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    ids = queued_confirmations(app, 3)
    batches, seconds = send_one_by_one(app, ids, linger=linger, batch=batch)
    assert batches == [ids]
    assert seconds >= linger if batch > len(ids) else seconds < 10
    assert recipients(smtp_server) == Counter(f"later{n}@example.org" for n in range(3))
