"""``newsletter outbox flush`` against a mail server that stops answering (both databases)."""

from __future__ import annotations

from collections.abc import Callable

from flask import Flask

from newsletter.models import DeliveryStatus
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.support.records import deliveries
from tests.support.smtp import SMTPServer


def test_a_confirmation_the_server_never_answered_is_unknown_and_exits_1(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}?timeout=1")
    smtp_server.stop()
    assert post_signup(app.test_client()).status_code == 303
    get_dispatcher(app).drain()
    smtp_server.handler.data_delay = lambda: 3.0
    smtp_server.start()
    flush = app.test_cli_runner().invoke(args=["outbox", "flush"])
    assert flush.exit_code == 1, flush.output
    assert "sent 0, failed 0, skipped 0, unknown 1, still waiting 0" in flush.output
    [delivery] = deliveries(app)
    assert delivery.status == DeliveryStatus.UNKNOWN
    assert delivery.last_error is not None
    assert "no answer after the message was sent" in delivery.last_error
