"""Confirmation emails are handed over for sending only once the transaction that queued
them has committed, and never after a rollback."""

from __future__ import annotations

from flask import Flask
from sqlalchemy.orm import Session

from newsletter.app_db import get_engine
from newsletter.models import FORM_SIGNUP, Delivery
from newsletter.runtime import get_runtime
from newsletter.services.confirmations import hand_over_after_commit
from newsletter.services.consent import Evidence
from newsletter.services.subscriptions import SignupDetails, sign_up


def watched_session(app: Flask) -> tuple[Session, list[int]]:
    """A session whose committed confirmations are collected in the returned list."""
    session = Session(get_engine(app))
    handed: list[int] = []
    hand_over_after_commit(session, handed.extend)
    return session, handed


def signup(app: Flask, session: Session, email: str) -> int:
    outcome = sign_up(
        session,
        get_runtime(app).site,
        SignupDetails(email, "Ada", "Lovelace"),
        Evidence(FORM_SIGNUP),
    )
    assert outcome.confirmation_id is not None
    return outcome.confirmation_id


def test_queued_confirmations_are_handed_over_once_committed(app: Flask) -> None:
    session, handed = watched_session(app)
    with session:
        first = signup(app, session, "ada@example.org")
        # Signing up a new address ends a savepoint of its own: not yet the commit.
        second = signup(app, session, "grace@example.org")
        assert handed == []
        session.commit()
        assert handed == [first, second]
        session.commit()
    assert handed == [first, second]


def test_a_rollback_forgets_what_was_queued(app: Flask) -> None:
    session, handed = watched_session(app)
    with session:
        signup(app, session, "ada@example.org")
        session.rollback()
        later = signup(app, session, "grace@example.org")
        session.commit()
        assert handed == [later]
        assert session.get(Delivery, later) is not None
