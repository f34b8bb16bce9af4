"""A person leaves from a real email, in a real browser."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.app_db import session_factory
from newsletter.models import ConsentEvent, ConsentKind, Subscriber, SubscriberStatus
from newsletter.web.dispatch import get_dispatcher
from newsletter.web.unsubscribe import PAGE_METHOD
from tests.conftest import axe_violations, csrf_token, post_signup
from tests.support.browser import live_server
from tests.support.mailbox import find_link
from tests.support.smtp import SMTPServer

BASE = "https://news.example.org"


@pytest.mark.browser
def test_unsubscribe_link_from_received_email_in_browser(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, page: Any
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, BASE_URL=BASE)
    client = app.test_client()
    assert post_signup(client, email="ada@example.org").status_code == 303
    get_dispatcher(app).drain()
    (received,) = smtp_server.received
    assert received.recipients == ["ada@example.org"]
    message = received.message
    confirm_link = find_link(message, "/confirm/")
    leave_link = find_link(message, "/unsubscribe/")
    assert message["List-Unsubscribe"] == f"<{leave_link}>"
    confirm_path = confirm_link.removeprefix(BASE)
    confirm_page = client.get(confirm_path)
    assert (
        client.post(confirm_path, data={"csrf_token": csrf_token(confirm_page)}).status_code == 200
    )

    with live_server(app) as base:
        # The link names the public address; the page is served here under a local one.
        assert leave_link.startswith(f"{BASE}/unsubscribe/")
        page.goto(base + leave_link.removeprefix(BASE))
        assert page.get_by_role("heading", name="Unsubscribe").is_visible()
        assert page.get_by_text("a•••@example.org").is_visible()
        assert page.get_by_role("link", name="Go to the signup form").is_visible()
        assert axe_violations(page) == []
        with session_factory(app)() as session:
            ada = session.scalars(select(Subscriber)).one()
            assert ada.status == SubscriberStatus.ACTIVE

        page.get_by_role("button", name="Unsubscribe").click()

        page.get_by_role("heading", name="You are unsubscribed").wait_for()
        assert page.url == base + leave_link.removeprefix(BASE)
        assert page.get_by_text("a•••@example.org").is_visible()
        assert page.get_by_role("link", name="Sign up again").is_visible()
        assert axe_violations(page) == []

        # A damaged link gets a page that explains, accessible too.
        page.goto(base + leave_link.removeprefix(BASE)[:-8])
        assert page.get_by_role("heading", name="This link cannot be used").is_visible()
        assert axe_violations(page) == []

    with session_factory(app)() as session:
        ada = session.scalars(select(Subscriber)).one()
        assert ada.status == SubscriberStatus.UNSUBSCRIBED
        withdrawn = session.scalars(
            select(ConsentEvent).where(ConsentEvent.kind == ConsentKind.WITHDRAWN)
        ).one()
        assert withdrawn.method == PAGE_METHOD
        assert withdrawn.user_agent is not None and "Chrom" in withdrawn.user_agent
    # Leaving sends nothing.
    assert len(smtp_server.received) == 1
