"""Topics and people's choices put straight into a test's database."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.orm import Session

from newsletter.models import Subscriber, SubscriberTopic, Topic
from newsletter.services.topics import add_topic, find_topic

__all__ = ["choose", "make_topic"]


def make_topic(session: Session, slug: str, *matches: str) -> Topic:
    """A topic named after its slug, matching ``matches``; committed."""
    topic = add_topic(session, slug, slug.replace("-", " ").title(), matches)
    session.commit()
    return topic


def choose(session: Session, subscriber: Subscriber, slugs: Sequence[str]) -> None:
    """Give ``subscriber`` the topics ``slugs``; committed."""
    for slug in slugs:
        session.add(
            SubscriberTopic(subscriber_id=subscriber.id, topic_id=find_topic(session, slug).id)
        )
    session.commit()
