"""What SpamAssassin makes of the messages the service sends, as delivered to a real SMTP
server (Debian's ``spamassassin -t -L``: local rules, no network), on both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.sending_support import digest_to_one
from tests.support.smtp import SMTPServer
from tests.support.spamassassin import SpamAssassin, SpamReport


@pytest.fixture
def spamassassin(tmp_path: Path) -> SpamAssassin:
    folder = tmp_path / "spamassassin"
    folder.mkdir()
    return SpamAssassin.find(folder)


def assert_clean(report: SpamReport) -> None:
    assert "HTML_FONT_LOW_CONTRAST" not in report.tests, report
    assert report.score <= 0.0, report


def test_a_delivered_digest_scores_nothing(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, spamassassin: SpamAssassin
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    received = digest_to_one(app, smtp_server, image_url="https://example.org/picture.jpg")
    assert_clean(spamassassin.check(received.data))


def test_a_delivered_confirmation_scores_nothing(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, spamassassin: SpamAssassin
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    assert post_signup(app.test_client()).status_code == 303
    get_dispatcher(app).drain()
    [received] = smtp_server.received
    assert_clean(spamassassin.check(received.data))
