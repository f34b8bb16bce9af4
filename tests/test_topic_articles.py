"""Which articles a choice of topics covers: the topics' own plus general news, newest first
(SQLite and PostgreSQL)."""

from __future__ import annotations

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Article
from newsletter.services.articles import import_entries
from newsletter.services.topic_articles import articles_for_topics
from newsletter.services.topics import edit_topic, find_topic, remove_topic
from tests.support.articles import entry
from tests.support.topics import make_topic

# Article number → its categories; a higher number is a newer article.
CATEGORIES: dict[int, tuple[str, ...]] = {
    1: ("North Korea",),
    2: ("asylum",),
    3: (),  # no categories: general news
    4: ("Sport",),  # a category no topic matches: general news
    5: ("NORTH KOREA", "Asylum"),
    6: ("Prisons", "Sport"),
}


@pytest.fixture
def topic_ids(session: Session) -> dict[str, int]:
    import_entries(session, [entry(n, categories=cats) for n, cats in CATEGORIES.items()])
    session.commit()
    make_topic(session, "north-korea", "North Korea", "DPRK")
    make_topic(session, "asylum", "Asylum")
    make_topic(session, "prisons", "Prisons")
    make_topic(session, "unused")
    return {slug: find_topic(session, slug).id for slug in ("north-korea", "asylum", "prisons")}


def numbers(
    session: Session, topics: list[int] | None, among: list[int] | None = None
) -> list[int]:
    return [
        int(article.guid.split("-")[1]) for article in articles_for_topics(session, topics, among)
    ]


def test_no_topics_means_every_article_newest_first(
    session: Session, topic_ids: dict[str, int]
) -> None:
    assert numbers(session, None) == [6, 5, 4, 3, 2, 1]
    assert numbers(session, []) == [6, 5, 4, 3, 2, 1]


@pytest.mark.parametrize(
    ("chosen", "expected"),
    [
        (["north-korea"], [5, 4, 3, 1]),
        (["asylum"], [5, 4, 3, 2]),
        (["prisons"], [6, 4, 3]),
        (["north-korea", "asylum"], [5, 4, 3, 2, 1]),
        (["north-korea", "asylum", "prisons"], [6, 5, 4, 3, 2, 1]),
    ],
)
def test_topics_get_their_articles_and_general_news(
    session: Session, topic_ids: dict[str, int], chosen: list[str], expected: list[int]
) -> None:
    assert numbers(session, [topic_ids[slug] for slug in chosen]) == expected


def test_a_topic_matching_nothing_still_gets_general_news(
    session: Session, topic_ids: dict[str, int]
) -> None:
    unused = find_topic(session, "unused").id
    assert numbers(session, [unused]) == [4, 3]


def test_among_narrows_to_given_articles(session: Session, topic_ids: dict[str, int]) -> None:
    ids = {
        int(guid.split("-")[1]): id_
        for guid, id_ in session.execute(select(Article.guid, Article.id))
    }
    among = [ids[1], ids[2], ids[3]]
    assert numbers(session, [topic_ids["north-korea"]], among) == [3, 1]
    assert numbers(session, None, among) == [3, 2, 1]


def test_changing_topics_changes_what_is_general_news(
    session: Session, topic_ids: dict[str, int]
) -> None:
    # Sport becomes a topic's: articles 4 and 6 are no longer for everyone.
    edit_topic(session, "prisons", add=["sport"])
    session.commit()
    assert numbers(session, [topic_ids["north-korea"]]) == [5, 3, 1]
    remove_topic(session, "prisons", force=True)
    session.commit()
    assert numbers(session, [topic_ids["north-korea"]]) == [6, 5, 4, 3, 1]
