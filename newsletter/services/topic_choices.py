"""The topics a signup form offers, and what a person chose from them.

The question and the names offered are part of what the person agreed to, so a signup's
consent event keeps them with the slugs chosen (:meth:`TopicChoice.as_record`).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import SubscriberTopic, Topic
from newsletter.services.bulk import table_of

__all__ = ["QUESTION", "OfferedTopic", "TopicChoice", "offered_topics", "read_choice", "store"]

log = logging.getLogger(__name__)

QUESTION = "What would you like to hear about?"
# More than any form offers; what a post may name is cut to this before it is looked at.
MOST_POSTED = 200


@dataclass(frozen=True)
class OfferedTopic:
    id: int
    slug: str
    name: str


@dataclass(frozen=True)
class TopicChoice:
    """What the form asked, the topics it offered and the ones ticked (none: everything)."""

    question: str
    offered: tuple[OfferedTopic, ...]
    chosen: tuple[OfferedTopic, ...]

    def as_record(self) -> str | None:
        """The JSON a consent event keeps; None when the form offered no topic."""
        if not self.offered:
            return None
        record = {
            "question": self.question,
            "offered": [topic.name for topic in self.offered],
            "chosen": [topic.slug for topic in self.chosen],
        }
        return json.dumps(record, ensure_ascii=False)


# Built once, on the table: every form page and every signup reads it, and a statement object
# keeps its cache key (the ORM's columns would add their own set-up to each execution).
_TOPICS = table_of(Topic)
_OFFERED = select(_TOPICS.c.id, _TOPICS.c.slug, _TOPICS.c.name).order_by(
    _TOPICS.c.name, _TOPICS.c.slug
)


def offered_topics(session: Session) -> tuple[OfferedTopic, ...]:
    """Every topic, as the form offers them: by name."""
    return tuple(OfferedTopic(id_, slug, name) for id_, slug, name in session.execute(_OFFERED))


def read_choice(session: Session, posted: Iterable[str]) -> TopicChoice:
    """The topics a post ticked, of those offered now.

    A slug that names no topic (removed since the form was shown, or made up) is left out
    and logged: the rest of the signup stands, and no topic is ever made from input.
    """
    offered = offered_topics(session)
    by_slug = {topic.slug: topic for topic in offered}
    wanted = list(dict.fromkeys(list(posted)[:MOST_POSTED]))
    unknown = [slug for slug in wanted if slug not in by_slug]
    if unknown:
        log.warning(
            "signup named %d topic(s) that do not exist, ignored: %s",
            len(unknown),
            ", ".join(repr(slug[:64]) for slug in unknown[:10]),
        )
    chosen = tuple(topic for topic in offered if topic.slug in wanted)
    return TopicChoice(QUESTION, offered, chosen)


def store(session: Session, subscriber_id: int, chosen: Sequence[OfferedTopic]) -> None:
    """Give a person the topics ``chosen`` (a new person: they hold none yet)."""
    session.add_all(SubscriberTopic(subscriber_id=subscriber_id, topic_id=t.id) for t in chosen)
    session.flush()
