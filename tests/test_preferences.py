"""The preferences page: topics and name changed by the person, each change on the record;
leaving; their data as a download; and links that are not theirs change nothing
(SQLite and PostgreSQL)."""

from __future__ import annotations

import email
import html
import json
import re
from collections.abc import Callable
from email.message import EmailMessage
from email.policy import default
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.mail.digest import prepare_digest
from newsletter.models import ConsentKind, Subscriber
from newsletter.people import Person
from newsletter.runtime import get_runtime
from newsletter.services.digests import create_digest
from newsletter.services.privacy import person_record
from newsletter.services.topic_choices import QUESTION
from newsletter.services.topics import topics_of
from newsletter.tokens import Purpose, TokenData
from newsletter.web.preferences import METHOD, NOT_VALID
from tests.conftest import csrf_token, post_signup
from tests.support.articles import add_articles
from tests.support.html import parse_page
from tests.support.mailbox import body_text, find_link
from tests.support.people import add_subscriber
from tests.support.records import events, subscriber
from tests.support.tokens import flip_first
from tests.support.topics import choose, make_topic

ADA = "ada@example.org"
GRACE = "grace@example.org"


@pytest.fixture
def people(session: Session) -> dict[str, Subscriber]:
    for slug in ["prisons", "north-korea", "asylum"]:
        make_topic(session, slug)
    ada = add_subscriber(session, ADA, "Ada", "Lovelace")
    grace = add_subscriber(session, GRACE, "Grace", "Hopper")
    choose(session, ada, ["prisons"])
    choose(session, grace, ["asylum", "north-korea"])
    return {"ada": ada, "grace": grace}


def token(app: Flask, person: Subscriber, purpose: Purpose = Purpose.PREFERENCES) -> str:
    return get_runtime(app).site.tokens.make(purpose, TokenData(person.id, person.token_nonce))


def state(app: Flask) -> list[Any]:
    """Everything a visit could change: people, their topics and the consent log."""
    with session_factory(app)() as session:
        rows = session.query(Subscriber).order_by(Subscriber.id).all()
        people = [
            (s.email, s.first_name, s.last_name, s.status, s.updated_at, s.unsubscribed_at)
            for s in rows
        ]
        held = topics_of(session, [s.id for s in rows])
    return [people, held, [(e.id, e.kind) for e in events(app)]]


def held(app: Flask, email: str) -> tuple[str, ...]:
    person = subscriber(app, email)
    assert person is not None
    with session_factory(app)() as session:
        return topics_of(session, [person.id]).get(person.id, ())


def save(client: FlaskClient, path: str, **fields: Any) -> Any:
    page = client.get(path)
    data = {"csrf_token": csrf_token(page), "first_name": "Ada", "last_name": "Lovelace"}
    data.update(fields)
    return client.post(path, data=data)


def test_opening_the_page_shows_their_choices_and_changes_nothing(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    before = state(app)
    response = client.get(f"/preferences/{token(app, people['ada'])}")

    assert response.status_code == 200
    html = response.get_data(as_text=True)
    page = parse_page(html)
    assert page.value("first_name") == "Ada"
    assert page.value("last_name") == "Lovelace"
    assert f"<legend>{QUESTION}</legend>" in html
    assert 'id="topic-prisons" name="topics" value="prisons" checked' in html
    assert 'id="topic-asylum" name="topics" value="asylum">' in html
    assert "a•••@example.org" in html
    assert "Download my data" in html and "Unsubscribe from everything" in html
    assert response.headers["Referrer-Policy"] == "no-referrer"
    # Nothing of anyone else.
    assert "Grace" not in html and "Hopper" not in html and GRACE not in html
    assert state(app) == before


def test_saving_changes_topics_and_name_and_records_what_was_shown_and_chosen(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    path = f"/preferences/{token(app, people['ada'])}"
    response = save(client, path, first_name="Augusta", topics=["asylum", "north-korea"])

    assert response.status_code == 200, response.get_data(as_text=True)
    html = response.get_data(as_text=True)
    assert "Added: Asylum" in html and "Added: North Korea" in html
    assert "Removed: Prisons" in html
    assert "Your first name is changed." in html
    assert held(app, ADA) == ("asylum", "north-korea")
    ada = subscriber(app, ADA)
    assert ada is not None and (ada.first_name, ada.last_name) == ("Augusta", "Lovelace")
    changed = events(app, ConsentKind.CHANGED)
    assert len(changed) == 1
    event = changed[0]
    assert event.subscriber_id == ada.id
    assert event.method == METHOD
    assert event.ip == "127.0.0.1"
    assert event.source_url is None  # the address holds the person's token
    assert event.note == "changed: first name"
    assert json.loads(event.choices or "") == {
        "question": QUESTION,
        "offered": ["Asylum", "North Korea", "Prisons"],
        "chosen": ["asylum", "north-korea"],
    }
    # Grace is untouched.
    assert held(app, GRACE) == ("asylum", "north-korea")


def test_how_often_shows_the_default_and_a_change_is_saved_and_recorded(
    make_app: Callable[..., Flask], people: dict[str, Subscriber]
) -> None:
    app = make_app(DEFAULT_RHYTHM="weekly")
    client = app.test_client()
    path = f"/preferences/{token(app, people['ada'])}"
    page = client.get(path).get_data(as_text=True)
    assert "How often would you like our news?" in page
    assert 'id="rhythm-weekly" name="rhythm" value="weekly" checked' in page
    assert 'id="rhythm-each" name="rhythm" value="each">' in page

    # Saving the default as it stands is no change.
    unchanged = save(client, path, topics=["prisons"], rhythm="weekly")
    assert "Nothing changed" in unchanged.get_data(as_text=True)
    assert events(app, ConsentKind.CHANGED) == []

    response = save(client, path, topics=["prisons"], rhythm="monthly")
    html = response.get_data(as_text=True)
    assert "How often: Once a month" in html
    assert 'id="rhythm-monthly" name="rhythm" value="monthly" checked' in html
    ada = subscriber(app, ADA)
    assert ada is not None and ada.rhythm == "monthly"
    (event,) = events(app, ConsentKind.CHANGED)
    assert event.note == "changed: how often (monthly)"
    assert json.loads(event.choices or "")["chosen"] == ["prisons"]

    # A value the page never offers changes nothing.
    made_up = save(client, path, topics=["prisons"], rhythm="hourly")
    assert "Nothing changed" in made_up.get_data(as_text=True)
    ada = subscriber(app, ADA)
    assert ada is not None and ada.rhythm == "monthly"


def test_ticking_none_means_everything_and_is_recorded(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    response = save(client, f"/preferences/{token(app, people['ada'])}")

    assert response.status_code == 200
    assert "Removed: Prisons" in response.get_data(as_text=True)
    assert held(app, ADA) == ()
    (event,) = events(app, ConsentKind.CHANGED)
    assert json.loads(event.choices or "")["chosen"] == []


def test_saving_what_they_already_have_records_nothing(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    before = state(app)
    response = save(client, f"/preferences/{token(app, people['ada'])}", topics=["prisons"])

    assert response.status_code == 200
    assert "Nothing changed" in response.get_data(as_text=True)
    assert state(app) == before


def test_an_unknown_topic_is_ignored(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    path = f"/preferences/{token(app, people['ada'])}"
    response = save(client, path, topics=["prisons", "asylum", "made-up"])

    assert response.status_code == 200
    assert held(app, ADA) == ("asylum", "prisons")


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("first_name", "", "First name is required."),
        ("last_name", "<b>Lovelace</b>", "Last name cannot contain markup (<, > or =?)."),
        ("first_name", "see https://spam.example", "First name cannot contain a web address."),
    ],
)
def test_a_bad_name_is_shown_beside_its_field_and_nothing_is_saved(
    app: Flask,
    client: FlaskClient,
    people: dict[str, Subscriber],
    field: str,
    value: str,
    message: str,
) -> None:
    before = state(app)
    path = f"/preferences/{token(app, people['ada'])}"
    response = save(client, path, topics=["asylum"], **{field: value})

    assert response.status_code == 400
    html = response.get_data(as_text=True)
    page = parse_page(html)
    assert page.texts[f"{field}-error"] == message
    assert page.inputs[field].get("aria-invalid") == "true"
    # What was typed and ticked is kept.
    assert page.value(field) == value
    assert 'id="topic-asylum" name="topics" value="asylum" checked' in html
    assert state(app) == before


def test_saving_without_the_forms_token_changes_nothing(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    before = state(app)
    path = f"/preferences/{token(app, people['ada'])}"
    response = client.post(path, data={"first_name": "Eve", "last_name": "X", "topics": "asylum"})

    assert response.status_code == 400
    assert "This page expired" in response.get_data(as_text=True)
    for action in ("leave", "data"):
        refused = client.post(f"{path}/{action}", data={})
        assert refused.status_code == 400
        assert "Lovelace" not in refused.get_data(as_text=True)
    assert state(app) == before


def _misused(app: Flask, people: dict[str, Subscriber]) -> dict[str, str]:
    ada = people["ada"]
    genuine = token(app, ada)
    body, stamp, signature = genuine.split(".")
    tokens = get_runtime(app).site.tokens
    return {
        "tampered": f"{body}.{stamp}.{flip_first(signature)}",
        "truncated": genuine[:-3],
        "unsubscribe": token(app, ada, Purpose.UNSUBSCRIBE),
        "confirm": tokens.make(Purpose.CONFIRM, TokenData(ada.id, ada.token_nonce, 1)),
        "old nonce": tokens.make(Purpose.PREFERENCES, TokenData(ada.id, "rotated")),
        "nobody": tokens.make(Purpose.PREFERENCES, TokenData(999_999, ada.token_nonce)),
    }


@pytest.mark.parametrize(
    "kind", ["tampered", "truncated", "unsubscribe", "confirm", "old nonce", "nobody"]
)
def test_a_link_that_is_not_a_preferences_link_changes_nothing(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber], kind: str
) -> None:
    bad = _misused(app, people)[kind]
    # A form token from a genuine page, so only the link is wrong.
    form = csrf_token(client.get(f"/preferences/{token(app, people['grace'])}"))
    before = state(app)

    answers = [client.get(f"/preferences/{bad}")]
    for suffix in ("", "/leave", "/data"):
        data = {"csrf_token": form, "first_name": "Eve", "last_name": "X", "topics": "asylum"}
        answers.append(client.post(f"/preferences/{bad}{suffix}", data=data))

    for answer in answers:
        assert answer.status_code == 400
        html = answer.get_data(as_text=True)
        assert NOT_VALID.replace("“", "&#8220;")[:30] in html or NOT_VALID[:30] in html
        for secret in ("Lovelace", "Hopper", ADA, GRACE):
            assert secret not in html
    assert state(app) == before


def test_preferences_link_does_not_unsubscribe(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    before = state(app)
    answer = client.post(f"/unsubscribe/{token(app, people['ada'])}")
    assert answer.status_code == 400
    assert state(app) == before


def test_download_is_that_persons_record_only(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    path = f"/preferences/{token(app, people['ada'])}"
    save(client, path, topics=["asylum"])  # a consent event of their own to carry
    before = state(app)
    answer = client.post(f"{path}/data", data={"csrf_token": csrf_token(client.get(path))})

    assert answer.status_code == 200
    assert answer.mimetype == "application/json"
    assert answer.headers["Content-Disposition"] == 'attachment; filename="my-data.json"'
    record = json.loads(answer.get_data(as_text=True))
    with session_factory(app)() as db:
        ada = db.get(Subscriber, people["ada"].id)
        assert ada is not None
        assert record == json.loads(json.dumps(person_record(db, ada)))
    assert record["email"] == ADA and record["topics"] == ["asylum"]
    assert [event["kind"] for event in record["consent"]] == ["changed"]
    text = answer.get_data(as_text=True)
    assert "Grace" not in text and GRACE not in text and "north-korea" not in text
    assert state(app) == before


def test_leave_everything_unsubscribes_like_the_unsubscribe_link(
    app: Flask, client: FlaskClient, people: dict[str, Subscriber]
) -> None:
    path = f"/preferences/{token(app, people['ada'])}"
    form = csrf_token(client.get(path))
    answer = client.post(f"{path}/leave", data={"csrf_token": form})

    assert answer.status_code == 200
    assert "You are unsubscribed" in answer.get_data(as_text=True)
    ada = subscriber(app, ADA)
    assert ada is not None and ada.status == "unsubscribed"
    (withdrawn,) = events(app, ConsentKind.WITHDRAWN)
    assert withdrawn.method == METHOD and withdrawn.subscriber_id == ada.id
    grace = subscriber(app, GRACE)
    assert grace is not None and grace.status == "active"
    # Pressing again, or opening the page, changes nothing more.
    again = client.post(f"{path}/leave", data={"csrf_token": form})
    assert again.status_code == 200
    assert "You are unsubscribed" in client.get(path).get_data(as_text=True)
    assert len(events(app, ConsentKind.WITHDRAWN)) == 1


# --- the link in every email ------------------------------------------------------------------


def assert_links_to(link: str, html_part: str) -> None:
    """The HTML part carries ``link`` as a "Your preferences" link (with inlined styles)."""
    pattern = rf'<a href="{re.escape(html.escape(link))}"[^>]*>Your preferences</a>'
    assert re.search(pattern, html_part), html_part


def _opens_their_page(client: FlaskClient, link: str, first_name: str) -> None:
    assert link.startswith("https://news.example.org/preferences/")
    page = client.get(urlsplit(link).path)
    assert page.status_code == 200
    assert parse_page(page.get_data(as_text=True)).value("first_name") == first_name


def test_the_confirmation_email_links_to_the_preferences_page(
    client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    assert post_signup(client, first_name="Ada", last_name="Lovelace").status_code == 303
    [message] = sent_mail()

    link = find_link(message, "/preferences/")
    assert_links_to(link, body_text(message, "html"))
    _opens_their_page(client, link, "Ada")


def test_each_digest_links_to_its_readers_own_preferences_page(
    app: Flask, client: FlaskClient, session: Session, people: dict[str, Subscriber]
) -> None:
    add_articles(session, [1, 2])
    runtime = get_runtime(app)
    prepared = prepare_digest(
        session, runtime.site, runtime.renderer, create_digest(session, runtime.site)
    )
    session.commit()
    for key, first_name in (("ada", "Ada"), ("grace", "Grace")):
        row = people[key]
        reader = Person(row.id, row.token_nonce, row.email, row.first_name, row.last_name)
        outgoing = prepared.outgoing_for(reader, f"<{key}@example.org>")
        message = email.message_from_bytes(outgoing.data, policy=default)
        assert isinstance(message, EmailMessage)
        link = find_link(message, "/preferences/")
        assert_links_to(link, body_text(message, "html"))
        _opens_their_page(client, link, first_name)
