"""Confirmation emails sent from the web process: at once when the form is quiet, several
over one SMTP connection in a burst."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable

from flask import Flask

from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
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
            release.wait(timeout=10)

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
