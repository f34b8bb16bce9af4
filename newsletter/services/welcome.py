"""The welcome email: on confirmation, the organisation's greeting, the preferences link and
the latest few articles of the person's topics, sent through the outbox.

The welcome is queued in the transaction that makes the person active, so it goes once per
subscription: confirming again changes nothing, and only an unsubscribe and a fresh signup
make a new subscription. It fixes its window's end (the moment of confirming) and moves the
person's watermark there, so their first digest holds none of its articles.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.mail.digest import ArticleView, article_view
from newsletter.models import (
    Article,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
)
from newsletter.people import Person, person_in, with_person
from newsletter.services.due_readers import later_of
from newsletter.services.hand_over import note_queued
from newsletter.services.topic_articles import covered_by
from newsletter.site import Site

__all__ = ["WELCOME_ARTICLES", "DueWelcome", "queue_welcome", "read_welcome"]

#: How many of the latest articles a welcome shows.
WELCOME_ARTICLES = 3


def queue_welcome(session: Session, site: Site, subscriber: Subscriber, now: datetime) -> None:
    """On confirmation: queue the welcome (when ``NEWSLETTER_WELCOME`` is on) and move the
    person's watermark to ``now`` either way, so their first digest starts from joining."""
    session.execute(
        update(Subscriber)
        .where(Subscriber.id == subscriber.id)
        .values(received_through=later_of(Subscriber.received_through, now))
        .execution_options(synchronize_session=False)
    )
    if not site.welcome:
        return
    delivery = Delivery(
        kind=DeliveryKind.WELCOME,
        subscriber_id=subscriber.id,
        status=DeliveryStatus.QUEUED,
        window_end=now,
    )
    session.add(delivery)
    session.flush()
    note_queued(session, delivery.id)


@dataclass(frozen=True)
class DueWelcome:
    delivery_id: int
    person: Person
    articles: list[ArticleView]


def read_welcome(session: Session, delivery_id: int) -> DueWelcome | None:
    """What a welcome needs, or None when the person is no longer active."""
    row = session.execute(
        with_person(Delivery.window_end)
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(
            Delivery.id == delivery_id,
            Delivery.kind == DeliveryKind.WELCOME,
            Subscriber.status == SubscriberStatus.ACTIVE,
        )
    ).one_or_none()
    person = person_in(row) if row is not None else None
    if row is None or person is None:
        return None
    topics = session.scalars(
        select(SubscriberTopic.topic_id).where(SubscriberTopic.subscriber_id == person.id)
    ).all()
    query = select(Article).where(Article.available_at.is_not(None), Article.available_at <= row[0])
    condition = covered_by(topics)
    if condition is not None:
        query = query.where(condition)
    latest = session.scalars(
        query.order_by(Article.available_at.desc(), Article.published_at.desc()).limit(
            WELCOME_ARTICLES
        )
    )
    return DueWelcome(delivery_id, person, [article_view(article) for article in latest])
