"""Choosing topics when signing up: on our own form and in the frame, stored for a new person,
ignored when unknown, never changed by someone typing another's address, and kept with the
consent (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.models import Subscriber, Topic
from newsletter.services.topic_choices import QUESTION
from newsletter.services.topics import remove_topic, topics_of
from tests.conftest import csrf_token, post_signup
from tests.support.html import parse_page
from tests.support.records import events, subscriber
from tests.support.topics import make_topic

OFFERED = ["Asylum", "North Korea", "Prisons"]


@pytest.fixture
def topics(session: Session) -> None:
    for slug in ["prisons", "north-korea", "asylum"]:
        make_topic(session, slug)


def held(app: Flask, email: str) -> tuple[str, ...]:
    person = subscriber(app, email)
    assert person is not None
    with session_factory(app)() as session:
        return topics_of(session, [person.id]).get(person.id, ())


def choices_of_last_event(app: Flask) -> dict[str, object] | None:
    stored = events(app)[-1].choices
    return json.loads(stored) if stored else None


@pytest.mark.usefixtures("topics")
def test_form_offers_the_topics_in_a_fieldset_by_name(client: FlaskClient) -> None:
    html = client.get("/subscribe").get_data(as_text=True)

    assert '<fieldset class="field topics" aria-describedby="topics-hint">' in html
    assert f"<legend>{QUESTION}</legend>" in html
    assert "Choose none to hear about everything." in html
    for slug, name in [("asylum", "Asylum"), ("north-korea", "North Korea")]:
        assert (f'<input type="checkbox" id="topic-{slug}" name="topics" value="{slug}">') in html
        assert f'<label for="topic-{slug}">{name}</label>' in html
    # By name, and before the consent box the person ticks last.
    positions = [html.index(f">{name}</label>") for name in OFFERED]
    assert positions == sorted(positions)
    assert positions[-1] < html.index('id="consent"')


def test_without_topics_the_form_asks_nothing_and_the_consent_has_no_choices(
    app: Flask, client: FlaskClient
) -> None:
    assert "<fieldset" not in client.get("/subscribe").get_data(as_text=True)
    assert post_signup(client).status_code == 303
    assert choices_of_last_event(app) is None


@pytest.mark.usefixtures("topics")
def test_ticked_topics_are_stored_with_the_wording_in_the_consent(
    app: Flask, client: FlaskClient
) -> None:
    response = post_signup(client, topics=["north-korea", "asylum"])

    assert response.status_code == 303
    assert held(app, "ada@example.org") == ("asylum", "north-korea")
    assert choices_of_last_event(app) == {
        "question": QUESTION,
        "offered": OFFERED,
        "chosen": ["asylum", "north-korea"],
    }


@pytest.mark.usefixtures("topics")
def test_choosing_none_means_everything(app: Flask, client: FlaskClient) -> None:
    assert post_signup(client).status_code == 303

    assert held(app, "ada@example.org") == ()
    assert choices_of_last_event(app) == {"question": QUESTION, "offered": OFFERED, "chosen": []}


@pytest.mark.usefixtures("topics")
def test_unknown_and_removed_topics_are_ignored_and_logged(
    app: Flask, client: FlaskClient, session: Session, caplog: pytest.LogCaptureFixture
) -> None:
    # The form offered prisons; it is removed before the visitor sends the form.
    remove_topic(session, "prisons")
    session.commit()
    posted = ["prisons", "asylum", "made-up", "<b>x</b>", "x" * 5000]

    with caplog.at_level(logging.WARNING):
        response = post_signup(client, topics=posted)

    assert response.status_code == 303
    assert held(app, "ada@example.org") == ("asylum",)
    session.expire_all()
    assert sorted(session.scalars(select(Topic.slug))) == ["asylum", "north-korea"]
    assert choices_of_last_event(app) == {
        "question": QUESTION,
        "offered": ["Asylum", "North Korea"],
        "chosen": ["asylum"],
    }
    [line] = [r.getMessage() for r in caplog.records if "do not exist" in r.getMessage()]
    assert line.startswith("signup named 4 topic(s) that do not exist, ignored: 'prisons', ")


@pytest.mark.usefixtures("topics")
@pytest.mark.parametrize("status", ["pending", "active", "unsubscribed"])
def test_a_signup_for_someone_on_the_list_changes_nothing_of_their_topics(
    app: Flask, client: FlaskClient, session: Session, status: str
) -> None:
    assert post_signup(client, topics=["asylum"]).status_code == 303
    session.execute(Subscriber.__table__.update().values(status=status))
    session.commit()
    before = len(events(app))

    response = post_signup(client, first_name="Eve", topics=["prisons", "north-korea"])

    assert response.status_code == 303
    assert held(app, "ada@example.org") == ("asylum",)
    person = subscriber(app, "ada@example.org")
    assert person is not None and person.first_name == "Ada"
    if status == "active":
        # Nothing is recorded for an active person, as before topics.
        assert len(events(app)) == before
    else:
        # The signup's consent is recorded with what it chose, which nobody is given.
        assert len(events(app)) == before + 1
        assert choices_of_last_event(app) == {
            "question": QUESTION,
            "offered": OFFERED,
            "chosen": ["north-korea", "prisons"],
        }


@pytest.mark.usefixtures("topics")
def test_a_form_sent_back_for_correction_keeps_the_ticked_topics(client: FlaskClient) -> None:
    response = post_signup(client, email="ada@", topics=["prisons", "made-up"])

    assert response.status_code == 400
    page = parse_page(response.get_data(as_text=True))
    html = response.get_data(as_text=True)
    assert 'id="topic-prisons" name="topics" value="prisons" checked>' in html
    assert 'id="topic-asylum" name="topics" value="asylum">' in html
    assert "made-up" not in html
    assert page.value("email") == "ada@"


@pytest.mark.usefixtures("topics")
@pytest.mark.parametrize("path", ["/subscribe?topic=asylum", "/embed?topic=asylum"])
def test_a_link_may_preselect_a_topic(client: FlaskClient, path: str) -> None:
    html = client.get(path).get_data(as_text=True)

    assert 'id="topic-asylum" name="topics" value="asylum" checked>' in html
    assert 'id="topic-prisons" name="topics" value="prisons">' in html


@pytest.mark.usefixtures("topics")
def test_subscribers_show_prints_the_choices_of_the_consent(
    client: FlaskClient, runner: FlaskCliRunner
) -> None:
    assert post_signup(client, topics=["prisons"]).status_code == 303

    result = runner.invoke(args=["subscribers", "show", "ada@example.org"])

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert record["topics"] == ["prisons"]
    [given] = record["consent"]
    assert given["choices"] == {"question": QUESTION, "offered": OFFERED, "chosen": ["prisons"]}


def test_the_form_page_shows_each_visitor_their_token_and_the_topics_of_the_moment(
    app: Flask, session: Session
) -> None:
    """The first visit's page is rendered once and kept; only the token differs, and a topic
    added or removed since shows (or goes) at once."""
    first, second = app.test_client(), app.test_client()
    one, two = (visitor.get("/subscribe").get_data(as_text=True) for visitor in (first, second))
    assert csrf_token(one) != csrf_token(two)
    assert one.replace(csrf_token(one), "") == two.replace(csrf_token(two), "")
    assert "topic-prisons" not in one

    make_topic(session, "prisons")
    again = first.get("/subscribe?topic=prisons").get_data(as_text=True)
    # The same visitor keeps their token: its signed form carries the second it was signed
    # in, so only the token itself (before the first dot) is the same from one page to the next.
    assert csrf_token(again).split(".")[0] == csrf_token(one).split(".")[0]
    assert csrf_token(again).split(".")[0] != csrf_token(two).split(".")[0]
    assert 'id="topic-prisons" name="topics" value="prisons" checked' in again
    plain = second.get("/subscribe").get_data(as_text=True)
    assert 'id="topic-prisons" name="topics" value="prisons">' in plain

    # Each visitor's own token goes with their own cookie.
    assert post_signup(first, email="one@example.org").status_code == 303
    assert post_signup(second, email="two@example.org").status_code == 303
    assert held(app, "two@example.org") == ()

    remove_topic(session, "prisons")
    session.commit()
    assert "topic-prisons" not in first.get("/subscribe").get_data(as_text=True)
