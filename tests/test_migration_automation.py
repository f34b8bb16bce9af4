"""Revision 0007 on a database with people, articles and a sent digest: old articles count as
available since their last change and people as having received everything up to the upgrade,
so automation mails nothing old; downgrade takes the new columns away and loses nothing else
(SQLite and PostgreSQL)."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import Engine, column, insert, inspect, select, table

from newsletter.db import UTCDateTime, utcnow
from newsletter.migrate import alembic_config, current_revision, upgrade
from tests.support.migrations import DELIVERIES as deliveries
from tests.support.migrations import add_sent_delivery, engine_with_ada

WHEN = UTCDateTime(timezone=True)
articles = table(
    "articles",
    column("id"),
    column("guid"),
    column("url"),
    column("title"),
    column("summary"),
    column("body_html"),
    column("published_at", WHEN),
    column("content_hash"),
    column("created_at", WHEN),
    column("updated_at", WHEN),
)
digests = table(
    "digests", column("id"), column("subject"), column("status"), column("created_at", WHEN)
)
events = table(
    "consent_events", column("subscriber_id"), column("kind"), column("at", WHEN), column("method")
)
topics = table(
    "topics",
    column("id"),
    column("slug"),
    column("name"),
    column("description"),
    column("created_at", WHEN),
)
held = table("subscriber_topics", column("subscriber_id"), column("topic_id"))
categories = table(
    "article_categories",
    column("article_id"),
    column("category_key"),
    column("category"),
    column("position"),
)
EDITED = utcnow() - timedelta(days=3)


@pytest.fixture(params=["sqlite", "postgresql"])
def engine_at_0006(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    with engine_with_ada(request, tmp_path, "0006") as engine:
        with engine.begin() as connection:
            connection.execute(
                insert(articles).values(
                    id=1,
                    guid="a1",
                    url="https://example.org/a1",
                    title="Old news",
                    summary="",
                    body_html="",
                    published_at=EDITED,
                    content_hash="x",
                    created_at=EDITED,
                    updated_at=EDITED,
                )
            )
            connection.execute(
                insert(digests).values(id=1, subject="S", status="sent", created_at=EDITED)
            )
            connection.execute(
                insert(events).values(subscriber_id=1, kind="given", at=EDITED, method="web form")
            )
            connection.execute(
                insert(topics).values(
                    id=1, slug="asylum", name="Asylum", description="", created_at=EDITED
                )
            )
            connection.execute(insert(held).values(subscriber_id=1, topic_id=1))
            connection.execute(
                insert(categories).values(
                    article_id=1, category_key="asylum", category="Asylum", position=0
                )
            )
            add_sent_delivery(connection, digest_id=1, at=EDITED)
        yield engine


def _columns(engine: Engine, name: str) -> set[str]:
    return {each["name"] for each in inspect(engine).get_columns(name)}


def test_upgrade_marks_the_old_as_had_and_downgrade_takes_it_away(engine_at_0006: Engine) -> None:
    before = utcnow()
    upgrade(engine_at_0006, "0007")

    assert current_revision(engine_at_0006) == "0007"
    new_articles = table("articles", column("available_at", WHEN), column("updated_at", WHEN))
    people = table(
        "subscribers",
        column("rhythm"),
        column("received_through", WHEN),
        column("last_digest_slot", WHEN),
    )
    new_deliveries = table(
        "deliveries", column("status"), column("window_start"), column("window_end")
    )
    with engine_at_0006.connect() as connection:
        [(available, updated)] = connection.execute(select(new_articles)).all()
        assert available == updated == EDITED.replace(microsecond=available.microsecond)
        [(rhythm, received, slot)] = connection.execute(select(people)).all()
        assert rhythm is None and slot is None
        assert received >= before - timedelta(seconds=1)
        assert connection.execute(select(new_deliveries)).all() == [("sent", None, None)]
        assert connection.execute(select(table("digest_slots", column("slot_at")))).all() == []

    command.downgrade(alembic_config(engine_at_0006), "0006")

    assert current_revision(engine_at_0006) == "0006"
    assert "available_at" not in _columns(engine_at_0006, "articles")
    assert not {"rhythm", "received_through", "last_digest_slot"} & _columns(
        engine_at_0006, "subscribers"
    )
    assert not {"window_start", "window_end"} & _columns(engine_at_0006, "deliveries")
    assert "digest_slots" not in inspect(engine_at_0006).get_table_names()
    with engine_at_0006.connect() as connection:
        assert connection.execute(select(articles.c.title)).all() == [("Old news",)]
        # Nothing that hangs from a person or an article went with the columns.
        assert connection.execute(select(events.c.kind)).all() == [("given",)]
        assert connection.execute(select(held)).all() == [(1, 1)]
        assert connection.execute(select(categories.c.category)).all() == [("Asylum",)]
        assert connection.execute(select(deliveries.c.status, deliveries.c.digest_id)).all() == [
            ("sent", 1)
        ]

    upgrade(engine_at_0006, "0007")
    assert "available_at" in _columns(engine_at_0006, "articles")
