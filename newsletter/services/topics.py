"""Topics: what subscribers can choose to hear about, each defined by the feed categories it
matches. Adding, changing, listing and removing them, and who holds which.

Functions flush and never commit: the command that calls them owns the transaction.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from newsletter.categories import clean_category, fold_category
from newsletter.controls import has_controls
from newsletter.models import SLUG_LENGTH, SubscriberTopic, Topic, TopicMatch
from newsletter.services.errors import NotFound, ServiceError
from newsletter.validation import InvalidValue, clean_name

__all__ = [
    "DESCRIPTION_LENGTH",
    "BadSlug",
    "DuplicateTopic",
    "TopicInUse",
    "TopicListing",
    "UnknownTopic",
    "add_topic",
    "check_slug",
    "edit_topic",
    "find_topic",
    "list_topics",
    "remove_topic",
    "topic_ids_by_slug",
    "topic_ids_of",
    "topics_of",
]

DESCRIPTION_LENGTH = 1000
SLUG = re.compile(rf"[a-z0-9-]{{1,{SLUG_LENGTH}}}")
# Keeps each IN (...) list well under the bound-parameter limits of SQLite and PostgreSQL.
LOOKUP_BATCH = 500


class BadSlug(ServiceError, ValueError):
    """A slug that is not 1-64 lower-case letters, digits and hyphens."""


class UnknownTopic(NotFound):
    """No topic has this slug."""


class DuplicateTopic(ServiceError, ValueError):
    """A topic with this slug exists already."""


class TopicInUse(ServiceError, RuntimeError):
    """People hold the topic, and removing it was not forced."""

    def __init__(self, slug: str, holders: int) -> None:
        people = "1 person holds" if holders == 1 else f"{holders:,} people hold"
        super().__init__(f"{people} the topic {slug}")
        self.holders = holders


@dataclass(frozen=True)
class TopicListing:
    id: int
    slug: str
    name: str
    description: str
    categories: tuple[str, ...]
    subscribers: int


def check_slug(slug: str) -> str:
    """``slug`` when it is 1-64 lower-case letters, digits and hyphens; :class:`BadSlug`."""
    if not SLUG.fullmatch(slug):
        message = (
            f"{slug!r} is not a topic slug: use 1 to {SLUG_LENGTH} lower-case letters, "
            "digits and hyphens, such as north-korea"
        )
        raise BadSlug(message)
    return slug


def find_topic(session: Session, slug: str) -> Topic:
    """The topic with this slug; :class:`BadSlug` or :class:`UnknownTopic` otherwise."""
    topic = session.scalar(select(Topic).where(Topic.slug == check_slug(slug)))
    if topic is None:
        raise UnknownTopic(f"there is no topic {slug} (see `newsletter topics list`)")
    return topic


def _description(value: str) -> str:
    text = value.strip()
    if has_controls(text):
        raise InvalidValue("the description must be one line of text")
    if len(text) > DESCRIPTION_LENGTH:
        raise InvalidValue(f"the description must be at most {DESCRIPTION_LENGTH} characters")
    return text


def _categories(values: Iterable[str]) -> dict[str, str]:
    """Folded form → category as typed, in order; an empty one is an error."""
    found: dict[str, str] = {}
    for value in values:
        text = clean_category(value)
        if not text:
            raise InvalidValue("a category to match cannot be empty")
        found.setdefault(fold_category(text), text)
    return found


def add_topic(
    session: Session,
    slug: str,
    name: str,
    matches: Sequence[str] = (),
    description: str = "",
) -> Topic:
    """A new topic matching the categories ``matches`` (compared ignoring case)."""
    check_slug(slug)
    if session.scalar(select(Topic.id).where(Topic.slug == slug)) is not None:
        raise DuplicateTopic(f"there is already a topic {slug}")
    topic = Topic(
        slug=slug, name=clean_name(name, "The name"), description=_description(description)
    )
    for key, category in _categories(matches).items():
        topic.matches.append(TopicMatch(category_key=key, category=category))
    session.add(topic)
    session.flush()
    return topic


def edit_topic(
    session: Session,
    slug: str,
    *,
    name: str | None = None,
    matches: Sequence[str] | None = None,
    add: Sequence[str] = (),
    remove: Sequence[str] = (),
    description: str | None = None,
) -> Topic:
    """Change a topic: ``matches`` replaces its categories, then ``add`` and ``remove`` adjust
    them; removing a category it does not match is an error."""
    topic = find_topic(session, slug)
    if name is not None:
        topic.name = clean_name(name, "The name")
    if description is not None:
        topic.description = _description(description)
    current = {match.category_key: match.category for match in topic.matches}
    wanted = _categories(matches) if matches is not None else dict(current)
    for key, category in _categories(add).items():
        wanted.setdefault(key, category)
    for key, category in _categories(remove).items():
        if key not in wanted:
            raise InvalidValue(f"the topic {slug} does not match the category {category!r}")
        del wanted[key]
    # Kept rows stay as they are (keeping their first spelling); the rest are replaced.
    topic.matches = [match for match in topic.matches if match.category_key in wanted]
    for key, category in wanted.items():
        if key not in current:
            topic.matches.append(TopicMatch(category_key=key, category=category))
    session.flush()
    return topic


def remove_topic(session: Session, slug: str, force: bool = False) -> int:
    """Remove a topic; returns how many people held it. Refused with :class:`TopicInUse`
    while anyone holds it, unless ``force``: then they lose this topic only, untold."""
    topic = find_topic(session, slug)
    holders = _holders(session, topic.id)
    if holders and not force:
        raise TopicInUse(slug, holders)
    # Explicit deletes, not only ON DELETE CASCADE: the same on a database whose foreign
    # keys are not enforced.
    session.execute(delete(SubscriberTopic).where(SubscriberTopic.topic_id == topic.id))
    session.delete(topic)
    session.flush()
    return holders


def _holders(session: Session, topic_id: int) -> int:
    query = select(func.count()).where(SubscriberTopic.topic_id == topic_id)
    return session.scalar(query) or 0


def list_topics(session: Session) -> list[TopicListing]:
    """Every topic by slug, with its categories and how many people hold it."""
    query = select(SubscriberTopic.topic_id, func.count()).group_by(SubscriberTopic.topic_id)
    counts = {topic_id: count for topic_id, count in session.execute(query)}
    return [
        TopicListing(
            id=topic.id,
            slug=topic.slug,
            name=topic.name,
            description=topic.description,
            categories=tuple(match.category for match in topic.matches),
            subscribers=counts.get(topic.id, 0),
        )
        for topic in session.scalars(select(Topic).order_by(Topic.slug))
    ]


def topic_ids_by_slug(session: Session) -> dict[str, int]:
    """Every topic's id by its slug."""
    return {slug: id_ for slug, id_ in session.execute(select(Topic.slug, Topic.id))}


def topic_ids_of(session: Session, subscriber_id: int) -> tuple[int, ...]:
    """The ids of the topics one subscriber holds, ascending; none means everything."""
    return tuple(
        session.scalars(
            select(SubscriberTopic.topic_id)
            .where(SubscriberTopic.subscriber_id == subscriber_id)
            .order_by(SubscriberTopic.topic_id)
        )
    )


def topics_of(session: Session, subscriber_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The slugs of the topics each of ``subscriber_ids`` holds, sorted; those holding none
    are left out."""
    found: dict[int, list[str]] = {}
    for start in range(0, len(subscriber_ids), LOOKUP_BATCH):
        rows = session.execute(
            select(SubscriberTopic.subscriber_id, Topic.slug)
            .join(Topic, Topic.id == SubscriberTopic.topic_id)
            .where(SubscriberTopic.subscriber_id.in_(subscriber_ids[start : start + LOOKUP_BATCH]))
            .order_by(SubscriberTopic.subscriber_id, Topic.slug)
        )
        for subscriber_id, slug in rows:
            found.setdefault(subscriber_id, []).append(slug)
    return {subscriber_id: tuple(slugs) for subscriber_id, slugs in found.items()}
