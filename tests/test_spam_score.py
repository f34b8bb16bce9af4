"""What SpamAssassin makes of the messages the service sends, as delivered to a real SMTP
server (Debian's ``spamassassin -t -L``: local rules, no network), on both databases."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask

from newsletter.app_db import session_factory
from newsletter.runtime import get_runtime
from newsletter.services.digests import create_digest
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.sending_support import add_subscribers
from tests.support.articles import add_articles
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
    with session_factory(app).begin() as session:
        add_subscribers(session, 1)
    with session_factory(app)() as session:
        add_articles(session, [1, 2, 3], image_url="https://example.org/picture.jpg")
        digest = create_digest(session, get_runtime(app).site)
        session.commit()
        digest_id = digest.id
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    [received] = smtp_server.received
    assert_clean(spamassassin.check(received.data))


def test_a_delivered_confirmation_scores_nothing(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, spamassassin: SpamAssassin
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    assert post_signup(app.test_client()).status_code == 303
    get_dispatcher(app).drain()
    [received] = smtp_server.received
    assert_clean(spamassassin.check(received.data))
