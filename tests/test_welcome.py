"""The welcome email: sent through the outbox on confirming, with the greeting, the
preferences link and the latest articles of the person's topics; once per subscription; its
articles never repeated by the first digest (SQLite and PostgreSQL)."""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.models import Subscriber
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import csrf_token, post_signup
from tests.support.automation import SiteFeed, auto, site_feed
from tests.support.mailbox import body_text, find_link, read_maildir
from tests.support.people import sign_up_and_confirm
from tests.support.records import subscriber
from tests.support.topics import make_topic

feed = site_feed
ARTICLE = re.compile(r"https://example\.org/news/([\w-]+)")
NOW = utcnow()


@pytest.fixture
def welcome_app(make_app: Callable[..., Flask], feed: SiteFeed, session: Session) -> Flask:
    app = make_app(WELCOME=True, FEEDS=str(feed.path), SCHEDULE="daily 09:00")
    make_topic(session, "asylum", "Asylum")
    make_topic(session, "prisons", "Prisons")
    # Five asylum stories and a prisons one, published and settled an hour ago.
    for number in range(5):
        feed.publish(f"a{number}", NOW - timedelta(hours=3, minutes=5 - number), "Asylum")
    feed.publish("p0", NOW - timedelta(hours=3), "Prisons")
    assert auto(app, NOW - timedelta(hours=2)).exit_code == 0
    assert auto(app, NOW - timedelta(hours=1)).exit_code == 0
    return app


@pytest.fixture
def mail(welcome_app: Flask, outbox_path: Path) -> Callable[[], list[EmailMessage]]:
    """What the welcoming app has sent, once its background sender is done."""

    def read() -> list[EmailMessage]:
        get_dispatcher(welcome_app).drain()
        return read_maildir(outbox_path)

    return read


def welcomes(messages: list[EmailMessage]) -> list[EmailMessage]:
    return [m for m in messages if str(m["Subject"]).startswith("Welcome to the news")]


def join(client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]], email: str) -> None:
    """Sign up for asylum news and confirm."""
    page = client.get("/subscribe")
    response = client.post(
        "/subscribe",
        data={
            "csrf_token": csrf_token(page),
            "first_name": "Ada",
            "last_name": "Lovelace",
            "email": email,
            "consent": "y",
            "topics": ["asylum"],
        },
    )
    assert response.status_code == 303
    [confirmation] = [
        m for m in sent_mail() if m["Subject"].startswith("Please confirm") and email in m["To"]
    ][-1:]
    path = find_link(confirmation, "/confirm/").split("news.example.org", 1)[1]
    form = client.get(path)
    assert client.post(path, data={"csrf_token": csrf_token(form)}).status_code == 200


def test_confirming_sends_one_welcome_with_the_latest_articles_of_their_topics(
    welcome_app: Flask, mail: Callable[[], list[EmailMessage]]
) -> None:
    client = welcome_app.test_client()
    join(client, mail, "ada@example.org")
    [welcome] = welcomes(mail())
    text = body_text(welcome)
    assert welcome["To"] == "Ada Lovelace <ada@example.org>"
    assert "Hello Ada," in text and "Welcome, and thank you" in text
    assert "/preferences/" in text and "/unsubscribe/" in text
    assert ARTICLE.findall(text) == ["a4", "a3", "a2"]  # the latest three, asylum only
    page = body_text(welcome, "html")
    assert "/preferences/" in page
    assert "View in browser" not in page and "/digests/" not in page
    assert welcome["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"

    # Pressing Confirm again is no new subscription.
    confirmation = [m for m in mail() if m["Subject"].startswith("Please confirm")][-1]
    path = find_link(confirmation, "/confirm/").split("news.example.org", 1)[1]
    again = client.post(path, data={"csrf_token": csrf_token(client.get("/subscribe"))})
    assert again.status_code == 200
    post_signup(client, email="ada@example.org")  # already active: nothing happens
    assert len(welcomes(mail())) == 1


def test_a_fresh_signup_after_leaving_is_welcomed_again(
    welcome_app: Flask, mail: Callable[[], list[EmailMessage]]
) -> None:
    client = welcome_app.test_client()
    sign_up_and_confirm(client, mail, "ada@example.org", "Ada", "Lovelace")
    [first] = welcomes(mail())
    leave = find_link(first, "/unsubscribe/").split("news.example.org", 1)[1]
    assert client.post(leave).status_code == 200
    person = subscriber(welcome_app, "ada@example.org")
    assert person is not None and person.status == "unsubscribed"
    sign_up_and_confirm(client, mail, "ada@example.org", "Ada", "Lovelace")
    assert len(welcomes(mail())) == 2


def test_the_first_digest_does_not_repeat_the_welcome(
    welcome_app: Flask, mail: Callable[[], list[EmailMessage]], feed: SiteFeed
) -> None:
    join(welcome_app.test_client(), mail, "ada@example.org")
    [welcome] = welcomes(mail())
    welcomed = set(ARTICLE.findall(body_text(welcome)))
    assert welcomed == {"a2", "a3", "a4"}
    later = NOW + timedelta(hours=1)
    feed.publish("a5", later, "Asylum")
    feed.publish("p1", later, "Prisons")
    assert auto(welcome_app, later).exit_code == 0
    # Runs until the next slot after the story settled: a digest goes out.
    next_day = (later + timedelta(days=1)).replace(hour=9, minute=5)
    result = auto(welcome_app, next_day)
    assert result.exit_code == 0, result.output
    digests = [m for m in mail() if "Story a5" in str(m["Subject"])]
    assert len(digests) == 1, result.output
    assert set(ARTICLE.findall(body_text(digests[0]))) == {"a5"}


def test_without_the_setting_nobody_is_welcomed(
    app: Flask, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    sign_up_and_confirm(app.test_client(), sent_mail, "ada@example.org", "Ada", "Lovelace")
    assert welcomes(sent_mail()) == []
    person: Subscriber | None = subscriber(app, "ada@example.org")
    assert person is not None and person.received_through is not None
