from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage

from flask.testing import FlaskClient

from tests.conftest import post_signup


def test_signup_sends_confirmation(
    client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    response = post_signup(client)
    assert response.status_code == 303
    messages = sent_mail()
    assert len(messages) == 1
