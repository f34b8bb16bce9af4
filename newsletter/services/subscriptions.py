"""Joining and confirming: the subscriber's way in.

State changes are conditional UPDATEs so that two requests racing (a double click, a mail
scanner and a person) change the state and record the event exactly once.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.addresses import email_key
from newsletter.db import rowcount, utcnow
from newsletter.models import (
    ConsentEvent,
    ConsentKind,
    Delivery,
    Subscriber,
    SubscriberStatus,
)
from newsletter.services.confirmations import queue_confirmation
from newsletter.services.consent import Evidence, record_event, statement_version
from newsletter.services.errors import LinkNoLongerValid
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
    subscriber: Subscriber
    confirmation: Delivery | None


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
    """
    subscriber, created = _find_or_create(session, details)
    if subscriber.status == SubscriberStatus.ACTIVE:
        return SignupOutcome(subscriber, None)
    if choice is not None:
        evidence = replace(evidence, choices=choice.as_record())
        if created:
            store(session, subscriber.id, choice.chosen)
    statement = statement_version(session, site.consent_statement)
    record_event(session, subscriber, ConsentKind.GIVEN, evidence, statement)
    if not site.double_opt_in:
        subscriber.status = SubscriberStatus.ACTIVE
        lift_suppression(session, subscriber.email)
        session.flush()
        return SignupOutcome(subscriber, None)
    subscriber.status = SubscriberStatus.PENDING
    session.flush()
    return SignupOutcome(subscriber, queue_confirmation(session, site, subscriber))


def _find_or_create(session: Session, details: SignupDetails) -> tuple[Subscriber, bool]:
    """The person with this address, and whether this call added them."""
    key = email_key(details.email)
    # Locking the row makes concurrent signups of one address take turns, so the count of
    # confirmation emails sent today cannot be read twice before either adds one.
    by_key = select(Subscriber).where(Subscriber.email_key == key).with_for_update()
    subscriber = session.scalar(by_key)
    if subscriber is not None:
        return subscriber, False
    try:
        with session.begin_nested():
            subscriber = Subscriber(
                email=details.email,
                email_key=key,
                first_name=details.first_name,
                last_name=details.last_name,
                status=SubscriberStatus.PENDING,
            )
            session.add(subscriber)
    except IntegrityError:
        # The same address was signed up by a concurrent request.
        subscriber = session.scalars(by_key).one()
        return subscriber, False
    return subscriber, True


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
            subscriber,
            ConsentKind.CONFIRMED,
            evidence,
            statement.statement if statement else None,
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
