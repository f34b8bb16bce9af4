"""``newsletter topics`` add, list, edit and remove, and the service behind them (SQLite and
PostgreSQL)."""

from __future__ import annotations

import pytest
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import SubscriberTopic, Topic, TopicMatch
from newsletter.services.topics import (
    BadSlug,
    DuplicateTopic,
    TopicInUse,
    UnknownTopic,
    add_topic,
    edit_topic,
    list_topics,
    remove_topic,
)
from tests.support.people import add_subscriber
from tests.support.topics import choose, make_topic
from tests.test_articles import one_line_error


def matches_of(session: Session, slug: str) -> dict[str, str]:
    session.expire_all()
    rows = session.execute(
        select(TopicMatch.category_key, TopicMatch.category)
        .join(Topic, Topic.id == TopicMatch.topic_id)
        .where(Topic.slug == slug)
    )
    return {key: category for key, category in rows}


def test_add_stores_folded_categories_once(session: Session) -> None:
    topic = add_topic(
        session,
        "north-korea",
        "North Korea",
        ["North Korea", "NORTH  korea", "DPRK"],
        " Human rights in North Korea ",
    )
    session.commit()
    assert (topic.slug, topic.name, topic.description) == (
        "north-korea",
        "North Korea",
        "Human rights in North Korea",
    )
    assert matches_of(session, "north-korea") == {"north korea": "North Korea", "dprk": "DPRK"}


@pytest.mark.parametrize(
    "slug", ["", "North-Korea", "north_korea", "north korea", "köln", "a" * 65, "x/y"]
)
def test_bad_slugs_are_refused(session: Session, slug: str) -> None:
    with pytest.raises(BadSlug, match="not a topic slug"):
        add_topic(session, slug, "Name")


def test_slug_limits_are_inclusive(session: Session) -> None:
    add_topic(session, "a" * 64, "Long")
    add_topic(session, "7", "Short")
    add_topic(session, "-", "Odd but allowed")
    session.commit()
    assert len(list_topics(session)) == 3


def test_duplicate_and_unknown_topics_are_refused(session: Session) -> None:
    make_topic(session, "asylum", "Asylum")
    with pytest.raises(DuplicateTopic, match="already a topic asylum"):
        add_topic(session, "asylum", "Again")
    with pytest.raises(UnknownTopic, match="no topic prisons"):
        edit_topic(session, "prisons", name="Prisons")
    with pytest.raises(UnknownTopic):
        remove_topic(session, "prisons")


def test_edit_replaces_adds_and_removes_categories(session: Session) -> None:
    make_topic(session, "asylum", "Asylum", "Refugees")
    edit_topic(session, "asylum", matches=["Asylum seekers", "Migration"], add=["Borders"])
    session.commit()
    assert matches_of(session, "asylum") == {
        "asylum seekers": "Asylum seekers",
        "migration": "Migration",
        "borders": "Borders",
    }
    edit_topic(session, "asylum", add=["MIGRATION", "Detention"], remove=["migration"])
    session.commit()
    assert matches_of(session, "asylum") == {
        "asylum seekers": "Asylum seekers",
        "borders": "Borders",
        "detention": "Detention",
    }
    with pytest.raises(ValueError, match="does not match the category 'Prisons'"):
        edit_topic(session, "asylum", remove=["Prisons"])


def test_remove_is_refused_while_held_and_forced_keeps_other_choices(session: Session) -> None:
    make_topic(session, "asylum", "Asylum")
    make_topic(session, "prisons", "Prisons")
    ada = add_subscriber(session, "ada@example.org")
    choose(session, ada, ["asylum", "prisons"])

    with pytest.raises(TopicInUse, match="1 person holds the topic asylum"):
        remove_topic(session, "asylum")
    session.rollback()

    assert remove_topic(session, "asylum", force=True) == 1
    session.commit()
    session.expire_all()
    assert session.scalars(select(Topic.slug)).all() == ["prisons"]
    held = session.scalars(select(SubscriberTopic.topic_id)).all()
    assert held == [session.scalars(select(Topic.id)).one()]
    assert session.scalar(select(func.count()).select_from(TopicMatch)) == 1  # prisons'


def test_commands(runner: FlaskCliRunner, session: Session) -> None:
    assert "No topics yet" in runner.invoke(args=["topics", "list"]).output

    added = runner.invoke(
        args=[
            "topics",
            "add",
            "north-korea",
            "--name",
            "North Korea",
            "--match",
            "North Korea",
            "--match",
            "DPRK",
        ]
    )
    assert added.exit_code == 0, added.output
    assert added.output == (
        "Added the topic north-korea (North Korea), matching 'North Korea', 'DPRK'.\n"
    )
    assert runner.invoke(args=["topics", "add", "asylum", "--name", "Asylum"]).exit_code == 0
    choose(session, add_subscriber(session, "ada@example.org"), ["north-korea"])
    choose(session, add_subscriber(session, "bob@example.org"), ["north-korea"])

    listed = runner.invoke(args=["topics", "list"])
    assert listed.exit_code == 0, listed.output
    assert listed.output.splitlines() == [
        "slug         name         people  categories",
        "asylum       Asylum            0  -",
        "north-korea  North Korea       2  DPRK, North Korea",
    ]

    edited = runner.invoke(
        args=["topics", "edit", "asylum", "--add-match", "Refugees", "--name", "Refuge"]
    )
    assert edited.exit_code == 0, edited.output
    assert edited.output == "Changed the topic asylum (Refuge), matching 'Refugees'.\n"

    refused = runner.invoke(args=["topics", "remove", "north-korea"])
    assert refused.exit_code == 1
    assert one_line_error(refused.output) == (
        "Error: 2 people hold the topic north-korea; add --yes to remove it anyway (they are "
        "not told, and keep their other topics)"
    )
    removed = runner.invoke(args=["topics", "remove", "north-korea", "--yes"])
    assert removed.exit_code == 0, removed.output
    assert removed.output == (
        "Removed the topic north-korea (held by 2, who keep their other topics).\n"
    )
    assert runner.invoke(args=["topics", "remove", "asylum"]).output == (
        "Removed the topic asylum.\n"
    )
    session.expire_all()
    assert session.scalar(select(func.count()).select_from(Topic)) == 0


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["add", "North Korea", "--name", "X"], "'North Korea' is not a topic slug"),
        (["add", "asylum", "--name", "Again"], "there is already a topic asylum"),
        (["add", "prisons", "--name", " "], "The name is required."),
        (["add", "prisons", "--name", "P", "--match", " "], "cannot be empty"),
        (["edit", "prisons", "--name", "P"], "there is no topic prisons"),
        (["edit", "asylum", "--remove-match", "Prisons"], "does not match the category"),
        (["remove", "prisons"], "there is no topic prisons"),
        (["remove", "Bad_Slug"], "'Bad_Slug' is not a topic slug"),
    ],
)
def test_command_problems_are_one_line_and_change_nothing(
    runner: FlaskCliRunner, session: Session, args: list[str], message: str
) -> None:
    make_topic(session, "asylum", "Asylum")
    result = runner.invoke(args=["topics", *args])
    assert result.exit_code == 1
    assert message in one_line_error(result.output)
    assert [(t.slug, t.name, t.categories) for t in list_topics(session)] == [
        ("asylum", "Asylum", ("Asylum",))
    ]
