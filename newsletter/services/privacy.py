"""A person's rights over their data: see everything held about them, and have it erased.

Erasure keeps exactly one thing: the hash of the address in ``suppressions``, so that the
address is never mailed or imported again. The person can still come back through the form,
with fresh consent and confirmation.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session

from newsletter.addresses import email_key
from newsletter.db import rowcount
from newsletter.isotime import iso_utc
from newsletter.models import (
    BounceReport,
    ConsentEvent,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberTopic,
)
from newsletter.services.bounces import reports_of
from newsletter.services.topics import topics_of
from newsletter.suppressions import earliest_suppression, suppress

__all__ = [
    "ERASED",
    "Erasure",
    "erase",
    "find_subscriber",
    "person_record",
    "suppression_reason",
]

ERASED = "erased"


def find_subscriber(session: Session, email: str) -> Subscriber | None:
    """The subscriber with this address, however its letters are cased."""
    return session.scalar(select(Subscriber).where(Subscriber.email_key == email_key(email)))


def suppression_reason(session: Session, email: str) -> str | None:
    """Why the address is suppressed (``erased``, ``bounced``…), or None when it is not."""
    entry = earliest_suppression(session, email)
    return entry.reason if entry is not None else None


def _time(value: Any) -> str | None:
    return iso_utc(value) if value is not None else None


def person_record(session: Session, subscriber: Subscriber) -> dict[str, Any]:
    """Everything held about ``subscriber``, as plain JSON-ready values.

    Profile and times, every consent event with the exact wording agreed to, and a summary of
    the mail sent to them (the messages themselves are not kept).
    """
    consent = [
        {
            "kind": event.kind,
            "at": _time(event.at),
            "method": event.method,
            "ip": event.ip,
            "user_agent": event.user_agent,
            "source_url": event.source_url,
            "box_style": event.box_style,
            # The question asked, the topics offered (by name) and those chosen (by slug).
            "choices": json.loads(event.choices) if event.choices else None,
            "note": event.note,
            "statement": (
                {"version": event.statement.id, "text": event.statement.text}
                if event.statement is not None
                else None
            ),
        }
        for event in subscriber.consent_events
    ]
    return {
        "id": subscriber.id,
        "email": subscriber.email,
        "first_name": subscriber.first_name,
        "last_name": subscriber.last_name,
        "status": subscriber.status,
        "created_at": _time(subscriber.created_at),
        "updated_at": _time(subscriber.updated_at),
        "confirmed_at": _time(subscriber.confirmed_at),
        "unsubscribed_at": _time(subscriber.unsubscribed_at),
        "suppressed": suppression_reason(session, subscriber.email),
        # Slugs of the topics chosen; none means everything.
        "topics": list(topics_of(session, [subscriber.id]).get(subscriber.id, ())),
        # How often they chose to get digests; null: the site's default.
        "rhythm": subscriber.rhythm,
        # Every article that became available up to this moment was theirs to receive.
        "received_through": _time(subscriber.received_through),
        "consent": consent,
        "deliveries": _delivery_summary(session, subscriber.id),
        # What mail providers reported back: bounces and complaints.
        "bounce_reports": [row.as_dict() for row in reports_of(session, subscriber.id)],
    }


def _delivery_summary(session: Session, subscriber_id: int) -> dict[str, Any]:
    by_kind: dict[str, dict[str, int]] = {}
    total = 0
    query = (
        select(Delivery.kind, Delivery.status, func.count())
        .where(Delivery.subscriber_id == subscriber_id)
        .group_by(Delivery.kind, Delivery.status)
        .order_by(Delivery.kind, Delivery.status)
    )
    for kind, status, count in session.execute(query):
        by_kind.setdefault(kind, {})[status] = count
        total += count
    last_sent = session.scalar(
        select(func.max(Delivery.sent_at)).where(Delivery.subscriber_id == subscriber_id)
    )
    return {"total": total, "by_kind": by_kind, "last_sent_at": _time(last_sent)}


@dataclass(frozen=True)
class Erasure:
    """What erasing one person removed."""

    email: str
    name: str
    status: str
    consent_events: int
    deliveries: int
    cancelled: int


def erase(session: Session, subscriber: Subscriber) -> Erasure:
    """Delete ``subscriber`` and their consent events, strip their deliveries of anything
    personal, and suppress the address.

    Delivery rows stay (their ``subscriber_id`` becomes NULL through the foreign key), so a
    digest's counts per state do not change; their error texts go, since a mail server's
    answer often quotes the address. Mail still queued for the person is cancelled.
    """
    erasure_id = subscriber.id
    events = session.scalar(
        select(func.count())
        .select_from(ConsentEvent)
        .where(ConsentEvent.subscriber_id == erasure_id)
    )
    deliveries = rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == erasure_id)
            .values(last_error=None)
            .execution_options(synchronize_session=False)
        )
    )
    cancelled = rowcount(
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == erasure_id, Delivery.status == DeliveryStatus.QUEUED)
            .values(status=DeliveryStatus.SKIPPED, last_error="recipient erased")
            .execution_options(synchronize_session=False)
        )
    )
    erasure = Erasure(
        email=subscriber.email,
        name=f"{subscriber.first_name} {subscriber.last_name}",
        status=subscriber.status,
        consent_events=events or 0,
        deliveries=deliveries,
        cancelled=cancelled,
    )
    session.expunge(subscriber)
    # Explicit deletes rather than relying on ON DELETE CASCADE alone: the proof of consent
    # must go even on a database where foreign keys were left unenforced.
    session.execute(delete(ConsentEvent).where(ConsentEvent.subscriber_id == erasure_id))
    session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == erasure_id))
    session.execute(delete(BounceReport).where(BounceReport.subscriber_id == erasure_id))
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == erasure_id)
        .values(subscriber_id=None)
        .execution_options(synchronize_session=False)
    )
    session.execute(delete(Subscriber).where(Subscriber.id == erasure_id))
    suppress(session, erasure.email, ERASED)
    return erasure
