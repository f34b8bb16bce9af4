"""A person's own page: their topics and name, changed by them, each change on the record.

The page offers the same topics, under the same question, as the signup form; what it showed
and what was chosen are kept with a ``changed`` consent event in the signup's ``choices``
shape, so the record says what the person agreed to at every point.
"""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import delete
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.models import ConsentKind, Subscriber, SubscriberTopic
from newsletter.schedule import Rhythm
from newsletter.services.consent import Evidence, latest_given_event, record_event
from newsletter.services.subscriptions import find_by_token
from newsletter.services.topic_choices import TopicChoice, store
from newsletter.services.topics import topics_of
from newsletter.tokens import TokenData

__all__ = ["Change", "NameChange", "held_topics", "save_preferences"]


@dataclass(frozen=True)
class NameChange:
    first_name: str
    last_name: str


@dataclass(frozen=True)
class Change:
    """What one save changed: each list is empty when that part stayed as it was."""

    added: tuple[str, ...]
    removed: tuple[str, ...]
    names: tuple[str, ...]
    #: The rhythm now chosen (``newsletter.schedule.Rhythm``), when it changed.
    rhythm: str | None = None

    @property
    def anything(self) -> bool:
        return bool(self.added or self.removed or self.names or self.rhythm)


def held_topics(session: Session, subscriber_id: int) -> tuple[str, ...]:
    """The slugs of the topics the person holds (none: everything)."""
    return topics_of(session, [subscriber_id]).get(subscriber_id, ())


def save_preferences(
    session: Session,
    data: TokenData,
    name: NameChange,
    choice: TopicChoice,
    evidence: Evidence,
    rhythm: Rhythm | None = None,
    default_rhythm: str = Rhythm.EACH,
) -> tuple[Subscriber, Change]:
    """Give the person a preferences token names the topics, name and rhythm chosen
    (``rhythm`` None: as it is; someone who never chose has ``default_rhythm``).

    Saving what they already have changes nothing and records nothing. Otherwise one
    ``changed`` consent event keeps the question, the topics offered and those now chosen,
    and names a changed name or rhythm in its note.
    Raises :class:`~newsletter.services.errors.LinkNoLongerValid` when the token's person is
    gone or its nonce is not theirs.
    """
    subscriber = find_by_token(session, data)
    # Locked (PostgreSQL) and read afresh, so that two saves at once take turns and each sees
    # what the other left; SQLite's writers already take turns (``sqlite_writers``).
    session.refresh(subscriber, with_for_update=True)
    before = set(held_topics(session, subscriber.id))
    after = {topic.slug for topic in choice.chosen}
    names = tuple(
        label
        for label, old, new in (
            ("first name", subscriber.first_name, name.first_name),
            ("last name", subscriber.last_name, name.last_name),
        )
        if old != new
    )
    new_rhythm = None
    if rhythm is not None and rhythm != (subscriber.rhythm or default_rhythm):
        new_rhythm = rhythm.value
    change = Change(tuple(sorted(after - before)), tuple(sorted(before - after)), names, new_rhythm)
    if not change.anything:
        return subscriber, change
    now = utcnow()
    if new_rhythm is not None:
        subscriber.rhythm = new_rhythm
    if before != after:
        session.execute(
            delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber.id)
        )
        store(session, subscriber.id, choice.chosen)
    subscriber.first_name = name.first_name
    subscriber.last_name = name.last_name
    subscriber.updated_at = now
    given = latest_given_event(session, subscriber)
    noted = [*names, f"how often ({new_rhythm})"] if new_rhythm else list(names)
    note = f"changed: {', '.join(noted)}" if noted else None
    record_event(
        session,
        subscriber.id,
        ConsentKind.CHANGED,
        Evidence(
            method=evidence.method,
            ip=evidence.ip,
            user_agent=evidence.user_agent,
            source_url=evidence.source_url,
            note=note,
            choices=choice.as_record(),
        ),
        given.statement_id if given is not None else None,
        at=now,
    )
    return subscriber, change
