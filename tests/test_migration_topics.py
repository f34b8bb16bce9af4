"""Revision 0005 on a database that holds people and articles: the topic tables arrive empty,
nothing else changes, and going back down and up again loses nothing (SQLite and
PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime

import pytest
from alembic import command
from sqlalchemy import Engine, func, insert, inspect, select
from sqlalchemy.orm import Session

from newsletter.db import create_db_engine, utcnow
from newsletter.migrate import alembic_config, current_revision, head_revision, upgrade
from newsletter.models import Article, ConsentEvent, Subscriber, SubscriberTopic, Topic

BEFORE_TOPICS = "0003"
TOPIC_TABLES = {"topics", "topic_matches", "article_categories", "subscriber_topics"}


@pytest.fixture
def engine_before_topics(empty_database_url: str) -> Iterator[Engine]:
    """A database at the revision before topics, holding a person and an article."""
    engine = create_db_engine(empty_database_url)
    upgrade(engine, BEFORE_TOPICS)
    _fill(engine)
    yield engine
    engine.dispose()


def _fill(engine: Engine) -> None:
    now = utcnow()
    with engine.begin() as connection:
        connection.execute(
            insert(Subscriber.__table__),
            {
                "id": 1,
                "email": "ada@example.org",
                "email_key": "ada@example.org",
                "first_name": "Ada",
                "last_name": "Lovelace",
                "status": "active",
                "token_nonce": "nonce1",
                "created_at": now,
                "updated_at": now,
            },
        )
        connection.execute(
            insert(ConsentEvent.__table__),
            {"subscriber_id": 1, "kind": "given", "at": now, "method": "web form"},
        )
        connection.execute(
            insert(Article.__table__),
            {
                "id": 1,
                "guid": "https://example.org/a",
                "url": "https://example.org/a",
                "title": "An article",
                "summary": "",
                "body_html": "",
                "published_at": datetime(2025, 3, 1, tzinfo=UTC),
                "content_hash": "0" * 64,
                "created_at": now,
                "updated_at": now,
            },
        )


def _counts(engine: Engine) -> tuple[int, int, int]:
    with Session(engine) as session:
        return (
            session.scalar(select(func.count()).select_from(Subscriber)) or 0,
            session.scalar(select(func.count()).select_from(ConsentEvent)) or 0,
            session.scalar(select(func.count()).select_from(Article)) or 0,
        )


def test_upgrade_adds_empty_topic_tables_and_keeps_everything(
    engine_before_topics: Engine,
) -> None:
    assert not TOPIC_TABLES & set(inspect(engine_before_topics).get_table_names())

    upgrade(engine_before_topics)

    assert current_revision(engine_before_topics) == head_revision(engine_before_topics)
    assert TOPIC_TABLES <= set(inspect(engine_before_topics).get_table_names())
    assert _counts(engine_before_topics) == (1, 1, 1)
    with Session(engine_before_topics) as session:
        assert session.scalar(select(func.count()).select_from(Topic)) == 0
        # The old rows work with the new tables: the person can hold a topic.
        topic = Topic(slug="north-korea", name="North Korea")
        session.add(topic)
        session.flush()
        session.add(SubscriberTopic(subscriber_id=1, topic_id=topic.id))
        session.commit()
        assert session.scalar(select(func.count()).select_from(SubscriberTopic)) == 1


def test_downgrade_drops_only_the_topic_tables_and_upgrades_again(
    engine_before_topics: Engine,
) -> None:
    upgrade(engine_before_topics)
    with Session(engine_before_topics) as session:
        session.add(Topic(slug="asylum", name="Asylum"))
        session.commit()

    command.downgrade(alembic_config(engine_before_topics), BEFORE_TOPICS)

    assert current_revision(engine_before_topics) == BEFORE_TOPICS
    assert not TOPIC_TABLES & set(inspect(engine_before_topics).get_table_names())
    assert _counts(engine_before_topics) == (1, 1, 1)

    upgrade(engine_before_topics)
    assert TOPIC_TABLES <= set(inspect(engine_before_topics).get_table_names())
    assert _counts(engine_before_topics) == (1, 1, 1)
