"""A new address's signup on PostgreSQL: the person, their consent and their confirmation
email in one statement, stored exactly as the general way stores them."""

from __future__ import annotations

from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.app_db import get_engine
from newsletter.models import (
    FORM_SIGNUP,
    ConsentEvent,
    ConsentKind,
    ConsentStatement,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.runtime import get_runtime
from newsletter.services.consent import Evidence
from newsletter.services.hand_over import QUEUED_KEY
from newsletter.services.subscriptions import SignupDetails, SignupOutcome, sign_up
from tests.support.statements import statements

EVIDENCE = Evidence(
    FORM_SIGNUP,
    ip="192.0.2.7",
    user_agent="Mozilla/5.0 (X11)",
    source_url="https://news.example.org/eritrea/article",
    box_style="embed",
)


def signed_up(app: Flask, session: Session, email: str) -> SignupOutcome:
    return sign_up(
        session, get_runtime(app).site, SignupDetails(email, "Ada", "Lovelace"), EVIDENCE
    )


def stored(app: Flask, subscriber_id: int) -> tuple[Subscriber, list[ConsentEvent], list[Delivery]]:
    with Session(get_engine(app)) as session:
        person = session.get_one(Subscriber, subscriber_id)
        events = list(
            session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == subscriber_id))
        )
        emails = list(
            session.scalars(select(Delivery).where(Delivery.subscriber_id == subscriber_id))
        )
        session.expunge_all()
        return person, events, emails


def test_a_new_address_is_stored_with_its_consent_and_email_whichever_the_database(
    app: Flask,
) -> None:
    with Session(get_engine(app)) as session:
        statement = get_runtime(app).site.consent_statement
        outcome = signed_up(app, session, "Ada@Example.org")
        queued = list(session.info.get(QUEUED_KEY, []))
        session.commit()
    person, events, emails = stored(app, outcome.subscriber_id)
    assert (person.email, person.email_key, person.first_name, person.last_name) == (
        "Ada@Example.org",
        "ada@example.org",
        "Ada",
        "Lovelace",
    )
    assert person.status == SubscriberStatus.PENDING
    assert len(person.token_nonce) == 16
    assert abs(person.updated_at - person.created_at) < timedelta(seconds=1)
    (given,) = events
    assert (given.kind, given.method, given.ip, given.user_agent, given.source_url) == (
        ConsentKind.GIVEN,
        FORM_SIGNUP,
        EVIDENCE.ip,
        EVIDENCE.user_agent,
        EVIDENCE.source_url,
    )
    assert given.box_style == "embed"
    assert abs(given.at - person.created_at) < timedelta(seconds=1)
    with Session(get_engine(app)) as session:
        assert session.get_one(ConsentStatement, given.statement_id).text == statement
    (email,) = emails
    assert (email.kind, email.status, email.attempts) == (
        DeliveryKind.CONFIRM,
        DeliveryStatus.QUEUED,
        0,
    )
    assert outcome == SignupOutcome(
        person.id, "Ada@Example.org", SubscriberStatus.PENDING, email.id
    )
    # Handed on for sending once the transaction commits, as every confirmation is.
    assert queued == [email.id]


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_new_address_is_one_statement(app: Flask) -> None:
    with Session(get_engine(app)) as session:
        # The consent wording is stored by the first signup, its id read once by the next.
        for warm_up in ("one@example.org", "two@example.org"):
            signed_up(app, session, warm_up)
        with statements(get_engine(app)) as seen:
            signed_up(app, session, "ada@example.org")
        session.commit()
    assert len(seen) == 1
    assert seen[0].lstrip().startswith("WITH person AS")


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_an_address_already_held_is_not_added_again(app: Flask) -> None:
    with Session(get_engine(app)) as session:
        first = signed_up(app, session, "ada@example.org")
        session.commit()
        again = signed_up(app, session, "ADA@example.org")
        session.commit()
    assert again.subscriber_id == first.subscriber_id
    person, events, emails = stored(app, first.subscriber_id)
    # The first signup's person is kept as typed then; the second's consent is recorded too.
    assert person.email == "ada@example.org"
    assert [e.kind for e in events] == [ConsentKind.GIVEN, ConsentKind.GIVEN]
    assert again.confirmation_id is not None and len(emails) == 2
