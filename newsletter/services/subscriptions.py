"""Joining and confirming: the subscriber's way in.

State changes are conditional UPDATEs so that two requests racing (a double click, a mail
scanner and a person) change the state and record the event exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import bindparam, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from newsletter.addresses import email_key
from newsletter.db import rowcount, utcnow
from newsletter.models import ConsentEvent, ConsentKind, Subscriber, SubscriberStatus
from newsletter.services import signup_at_once
from newsletter.services.bulk import table_of
from newsletter.services.confirmations import queue_confirmation
from newsletter.services.consent import Evidence, record_event, statement_id
from newsletter.services.errors import LinkNoLongerValid
from newsletter.services.hand_over import note_queued
from newsletter.services.topic_choices import TopicChoice, store
from newsletter.services.welcome import queue_welcome
from newsletter.site import Site
from newsletter.suppressions import lift_suppression
from newsletter.tokens import TokenData

__all__ = [
    "SignupDetails",
    "SignupOutcome",
    "confirm",
    "find_by_token",
    "sign_up",
]


@dataclass(frozen=True)
class SignupDetails:
    """What a person typed into the form (or a file gave): no one is stored yet."""

    email: str
    first_name: str
    last_name: str


@dataclass(frozen=True)
class SignupOutcome:
    """Who signed up (their status after it) and the confirmation email queued, if one was."""

    subscriber_id: int
    email: str
    status: str
    confirmation_id: int | None


def sign_up(
    session: Session,
    site: Site,
    details: SignupDetails,
    evidence: Evidence,
    choice: TopicChoice | None = None,
) -> SignupOutcome:
    """Record a signup and its consent; queue a confirmation email when one is due.

    An address that is already active is left as it is: the caller answers the same either
    way, so the form never tells who is subscribed. A person already on the list (pending or
    unsubscribed) keeps the address, name and topics they have: anyone can type an address
    into the form, so a later signup records its consent, with the topics it chose, but
    changes nothing about who they are. Only a person this signup adds gets its topics.

    Every form post comes here, so it writes with plain statements rather than the ORM's
    unit of work: for a new address three INSERTs (the person, the consent, the email), on
    PostgreSQL one statement holding all three (``signup_at_once``).
    """
    person = _person_values(details)
    if choice is not None:
        evidence = replace(evidence, choices=choice.as_record())
    if site.double_opt_in and not (choice and choice.chosen) and signup_at_once.applies(session):
        statement = statement_id(session, site.consent_statement)
        added = signup_at_once.add_at_once(session, person, evidence, statement)
        if added is not None:
            subscriber_id, email_id = added
            note_queued(session, email_id)
            return SignupOutcome(subscriber_id, details.email, SubscriberStatus.PENDING, email_id)
        found, created = _held(session, person["email_key"]), False
    else:
        found, created = _find_or_create(session, person)
    if found.status == SubscriberStatus.ACTIVE:
        return SignupOutcome(found.id, found.email, found.status, None)
    if choice is not None and created:
        store(session, found.id, choice.chosen)
    statement = statement_id(session, site.consent_statement)
    record_event(session, found.id, ConsentKind.GIVEN, evidence, statement)
    if not site.double_opt_in:
        _set_status(session, found.id, SubscriberStatus.ACTIVE)
        lift_suppression(session, found.email)
        return SignupOutcome(found.id, found.email, SubscriberStatus.ACTIVE, None)
    if found.status != SubscriberStatus.PENDING:
        _set_status(session, found.id, SubscriberStatus.PENDING)
    confirmation = queue_confirmation(session, site, found.id, new=created)
    return SignupOutcome(found.id, found.email, SubscriberStatus.PENDING, confirmation)


@dataclass(frozen=True)
class _Found:
    id: int
    email: str
    status: str


# Locking the row makes concurrent signups of one address take turns, so the count of
# confirmation emails sent today cannot be read twice before either adds one.
_BY_KEY = (
    select(Subscriber.id, Subscriber.email, Subscriber.status)
    .where(Subscriber.email_key == bindparam("key"))
    .with_for_update()
)
# A new address in one statement; a taken one inserts nothing (and, on PostgreSQL, waits for
# a concurrent transaction adding the same address to end first).
_ADD = {
    name: insert(table_of(Subscriber))
    .on_conflict_do_nothing(index_elements=["email_key"])
    .returning(table_of(Subscriber).c.id)
    for name, insert in (("postgresql", postgresql.insert), ("sqlite", sqlite.insert))
}


def _person_values(details: SignupDetails) -> dict[str, str]:
    """A new person's row, as far as the signup gives it."""
    return {
        "email": details.email,
        "email_key": email_key(details.email),
        "first_name": details.first_name,
        "last_name": details.last_name,
        "status": SubscriberStatus.PENDING.value,
    }


def _find_or_create(session: Session, person: dict[str, str]) -> tuple[_Found, bool]:
    """The person with this address, and whether this call added them."""
    added = session.execute(_ADD[session.get_bind().dialect.name], person).scalar()
    if added is not None:
        return _Found(added, person["email"], SubscriberStatus.PENDING), True
    return _held(session, person["email_key"]), False


def _held(session: Session, key: str) -> _Found:
    """The person who holds the address with this key, their row locked."""
    row = session.execute(_BY_KEY, {"key": key}).one()
    return _Found(row.id, row.email, row.status)


def _set_status(session: Session, subscriber_id: int, status: SubscriberStatus) -> None:
    # Through the ORM, so that a Subscriber the session already holds sees the change.
    session.execute(update(Subscriber).where(Subscriber.id == subscriber_id).values(status=status))


def find_by_token(session: Session, data: TokenData) -> Subscriber:
    """The subscriber a genuine token names, if they still exist with the same nonce."""
    subscriber = session.get(Subscriber, data.subscriber_id)
    if subscriber is None or subscriber.token_nonce != data.nonce:
        raise LinkNoLongerValid("this link is no longer valid")
    return subscriber


def confirm(
    session: Session, data: TokenData, evidence: Evidence, site: Site | None = None
) -> Subscriber:
    """Make a pending subscriber active; pressing the button again changes nothing.

    Their watermark moves to now, so their first digest holds what is new from here on, and
    with ``site``'s welcome on, a welcome is queued (once: only the change to active does it).
    """
    subscriber = find_by_token(session, data)
    if subscriber.status == SubscriberStatus.ACTIVE:
        return subscriber
    if subscriber.status != SubscriberStatus.PENDING or not _consent_still_stands(
        session, subscriber, data.consent_event_id
    ):
        raise LinkNoLongerValid("this confirmation link is no longer valid")
    now = utcnow()
    changed = rowcount(
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == subscriber.id, Subscriber.status == SubscriberStatus.PENDING)
            .values(status=SubscriberStatus.ACTIVE, confirmed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    session.refresh(subscriber)
    if changed == 1:
        statement = session.get(ConsentEvent, data.consent_event_id)
        record_event(
            session,
            subscriber.id,
            ConsentKind.CONFIRMED,
            evidence,
            statement.statement_id if statement else None,
            at=now,
        )
        lift_suppression(session, subscriber.email)
        if site is not None:
            queue_welcome(session, site, subscriber, now)
    return subscriber


def _consent_still_stands(
    session: Session, subscriber: Subscriber, consent_event_id: int | None
) -> bool:
    """The link's consent belongs to this person and was not withdrawn after it was given."""
    if consent_event_id is None:
        return False
    event = session.get(ConsentEvent, consent_event_id)
    if event is None or event.subscriber_id != subscriber.id or event.kind != ConsentKind.GIVEN:
        return False
    withdrawn_after = session.scalar(
        select(func.count())
        .select_from(ConsentEvent)
        .where(
            ConsentEvent.subscriber_id == subscriber.id,
            ConsentEvent.kind == ConsentKind.WITHDRAWN,
            ConsentEvent.id > event.id,
        )
    )
    return not withdrawn_after
