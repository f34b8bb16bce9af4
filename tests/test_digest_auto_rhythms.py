"""Each reader's rhythm over five simulated weeks, and changes of topics and rhythm between
runs: per person, every article of their topics at least once, none twice, none outside their
topics, and digests only on their days. Both databases, a real SMTP server, ``--at``."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from flask import Flask
from sqlalchemy import delete

from newsletter.app_db import session_factory
from newsletter.models import Subscriber, SubscriberTopic
from tests.support.automation import SiteFeed, at, auto, received_articles, site_feed
from tests.support.people import add_subscriber
from tests.support.smtp import SMTPServer
from tests.support.topics import choose, make_topic

feed = site_feed
START = at("2027-03-01 00:00")  # a Monday
TOPICS = {"asylum": "Asylum", "prisons": "Prisons", "press": "Press"}
CATEGORY_CYCLE = [("Asylum",), ("Prisons",), ("Press",), ("Other",), ("Asylum", "Press"), ()]
READERS = {
    "each-all@example.org": ("each", ()),
    "each-asylum@example.org": ("each", ("asylum",)),
    "weekly-all@example.org": ("weekly", ()),
    "weekly-prisons@example.org": ("weekly", ("prisons",)),
    "weekly-two@example.org": ("weekly", ("asylum", "press")),
    "monthly-all@example.org": ("monthly", ()),
    "monthly-press@example.org": ("monthly", ("press",)),
}


@pytest.fixture
def auto_app(make_app: Callable[..., Flask], smtp_server: SMTPServer, feed: SiteFeed) -> Flask:
    app = make_app(MAIL_URL=smtp_server.url, FEEDS=str(feed.path), SCHEDULE="daily 09:00")
    with session_factory(app)() as session:
        for slug, name in TOPICS.items():
            make_topic(session, slug, name)
    return app


def reader(app: Flask, email: str, rhythm: str, topics: tuple[str, ...]) -> None:
    with session_factory(app)() as session:
        person = add_subscriber(session, email)
        person.received_through = START
        person.rhythm = rhythm
        session.commit()
        choose(session, person, topics)


def covers(topics: tuple[str, ...], categories: tuple[str, ...]) -> bool:
    """The rule a reader's articles follow: their topics' articles, and general news."""
    matched = {slug for slug, name in TOPICS.items() if name in categories}
    return not topics or not matched or bool(matched & set(topics))


def test_five_weeks_of_each_rhythm(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    for email, (rhythm, topics) in READERS.items():
        reader(auto_app, email, rhythm, topics)
    # Articles on most days of five weeks, at different hours, in every mix of categories.
    published: dict[str, tuple[str, ...]] = {}
    plan: dict[datetime, list[str]] = defaultdict(list)
    for day in range(35):
        for number in range(1 + day % 2):
            if day % 5 == 4 and number == 0:
                continue  # a quiet day now and then
            guid = f"d{day:02d}n{number}"
            hour = (7, 13, 19)[(day + number) % 3]
            plan[START + timedelta(days=day, hours=hour)].append(guid)
            published[guid] = CATEGORY_CYCLE[(day + number) % len(CATEGORY_CYCLE)]
    sent_on: dict[str, list[datetime]] = defaultdict(list)
    # Runs through to the first slot of May, when the monthly readers get April.
    for day in range(62):
        for hour in (7, 9, 13, 19):
            moment = START + timedelta(days=day, hours=hour)
            for guid in plan.get(moment, []):
                feed.publish(guid, moment, *published[guid])
            if hour not in (9, 19):
                continue  # cron runs at 09:00 and 19:00 only: later runs import what came
            before = len(smtp_server.received)
            result = auto(auto_app, moment, "--workers", "1")
            assert result.exit_code == 0, result.output
            for received in smtp_server.received[before:]:
                sent_on[received.recipients[0]].append(moment)

    got = received_articles(smtp_server)
    for email, (rhythm, topics) in READERS.items():
        theirs = {guid for guid, categories in published.items() if covers(topics, categories)}
        assert got[email] and max(got[email].values()) == 1, f"{email} got an article twice"
        assert set(got[email]) == theirs, email
        days = sent_on[email]
        assert all(moment.hour == 9 for moment in days)
        if rhythm == "weekly":
            assert {moment.weekday() for moment in days} == {0}, email
            assert len(days) == len({moment.isocalendar()[:2] for moment in days})
        if rhythm == "monthly":
            # The first slot of each month, when it has something for them.
            assert {moment.day for moment in days} == {1}, email
            assert len(days) == len({moment.month for moment in days})
        if rhythm == "each":
            assert len(days) == len({moment.date() for moment in days})
            assert len(days) >= 20
    # A weekly reader's Monday digest holds the week before it (five Mondays from 8 March),
    # a monthly reader's the month: 1 April (March), 1 May (April).
    assert len(sent_on["weekly-all@example.org"]) == 5
    assert [moment.date().isoformat() for moment in sent_on["monthly-all@example.org"]] == [
        "2027-04-01",
        "2027-05-01",
    ]


def set_choice(app: Flask, email: str, rhythm: str, topics: tuple[str, ...]) -> None:
    with session_factory(app)() as session:
        person = session.query(Subscriber).filter_by(email=email).one()
        person.rhythm = rhythm
        session.execute(delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == person.id))
        session.commit()
        choose(session, person, topics)


def test_a_change_of_topics_and_rhythm_between_runs_repeats_nothing(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    email = "ada@example.org"
    reader(auto_app, email, "each", ("asylum",))

    def publish_and_run(when: str, *articles: tuple[str, str]) -> None:
        for guid, category in articles:
            feed.publish(guid, at(when), category)
        assert auto(auto_app, when).exit_code == 0

    publish_and_run("2027-03-01 10:00", ("a1", "Asylum"), ("p1", "Prisons"))
    publish_and_run("2027-03-02 09:00")
    assert received_articles(smtp_server)[email] == Counter({"a1": 1})

    set_choice(auto_app, email, "weekly", ("prisons", "asylum"))
    publish_and_run("2027-03-02 10:00", ("a2", "Asylum"), ("p2", "Prisons"))
    for day in range(3, 8):  # Wednesday to Sunday: this week's digest was Tuesday's
        publish_and_run(f"2027-03-0{day} 09:00")
    assert len(smtp_server.received) == 1
    publish_and_run("2027-03-08 09:00")  # Monday
    assert received_articles(smtp_server)[email] == Counter({"a1": 1, "a2": 1, "p2": 1})

    set_choice(auto_app, email, "each", ("prisons",))
    publish_and_run("2027-03-08 10:00", ("a3", "Asylum"), ("p3", "Prisons"))
    publish_and_run("2027-03-09 09:00")
    set_choice(auto_app, email, "monthly", ())
    publish_and_run("2027-03-09 10:00", ("p4", "Prisons"))
    publish_and_run("2027-03-10 09:00")
    publish_and_run("2027-04-01 09:00")
    assert received_articles(smtp_server)[email] == Counter(
        {"a1": 1, "a2": 1, "p2": 1, "p3": 1, "p4": 1}
    )
    assert len(smtp_server.received) == 4
