"""``newsletter digest auto``: feeds imported, the digest the schedule says is due composed and
sent once, each reader's own articles, settling, a missed slot, a failing feed; both
databases, a real SMTP server, time given with ``--at``."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from sqlalchemy import select

from newsletter.app_db import session_factory
from newsletter.models import Article, Delivery, Digest, DigestSlot, DigestStatus
from tests.support.automation import SiteFeed, at, auto, received_articles, site_feed
from tests.support.people import add_subscriber
from tests.support.smtp import SMTPServer
from tests.support.topics import choose, make_topic

feed = site_feed
START = at("2027-03-01 00:00")  # a Monday


@pytest.fixture
def auto_app(make_app: Callable[..., Flask], smtp_server: SMTPServer, feed: SiteFeed) -> Flask:
    return make_app(
        MAIL_URL=smtp_server.url,
        FEEDS=str(feed.path),
        SCHEDULE="daily 09:00",
        ARTICLE_SETTLE_MINUTES=30,
    )


def reader(app: Flask, email: str, rhythm: str | None = None, *topics: str) -> int:
    """An active reader who has had everything up to START."""
    with session_factory(app)() as session:
        person = add_subscriber(session, email)
        person.received_through = START
        person.rhythm = rhythm
        session.commit()
        if topics:
            choose(session, person, topics)
        return person.id


def asylum_and_prisons(app: Flask) -> None:
    """Two topics, and a reader who chose each of them."""
    with session_factory(app)() as session:
        make_topic(session, "asylum", "Asylum")
        make_topic(session, "prisons", "Prisons")
    reader(app, "asylum@example.org", None, "asylum")
    reader(app, "prisons@example.org", None, "prisons")


def test_a_due_digest_goes_out_once_and_a_second_run_sends_nothing(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    reader(auto_app, "ada@example.org")
    reader(auto_app, "bob@example.org")
    feed.publish("a1", at("2027-03-01 06:00"))
    feed.publish("a2", at("2027-03-01 07:00"))
    first = auto(auto_app, "2027-03-01 08:00")
    assert first.exit_code == 0, first.output
    assert "Imported" in first.output and "2 added" in first.output
    # The latest slot was 28 February's: due, but nothing had settled yet.
    assert "Digest of Sunday 28 February 2027 09:00 UTC: 2 readers due, but nothing new" in (
        first.output
    )
    assert smtp_server.received == []

    due = auto(auto_app, "2027-03-01 09:05")
    assert due.exit_code == 0, due.output
    assert "2 articles settled" in due.output
    assert "2 articles for 2 readers" in due.output
    assert "sent 2, failed 0, skipped 0, unknown 0, queued 0" in due.output
    assert received_articles(smtp_server) == {
        "ada@example.org": Counter({"a1": 1, "a2": 1}),
        "bob@example.org": Counter({"a1": 1, "a2": 1}),
    }
    again = auto(auto_app, "2027-03-01 09:06")
    assert again.exit_code == 0, again.output
    assert "Nothing due until Tuesday 2 March 2027 09:00 UTC (daily 09:00 UTC)" in again.output
    assert len(smtp_server.received) == 2
    with session_factory(auto_app)() as session:
        [digest] = session.scalars(select(Digest)).all()
        assert digest.status == DigestStatus.SENT


def test_not_due_before_the_slot_and_a_missed_slot_goes_out_once(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    reader(auto_app, "ada@example.org")
    feed.publish("a1", at("2027-03-01 10:00"))
    auto(auto_app, "2027-03-01 10:00")  # deals with 1 March's slot; a1 not settled yet
    not_yet = auto(auto_app, "2027-03-02 08:59")
    assert "Nothing due until Tuesday 2 March 2027 09:00 UTC" in not_yet.output
    assert smtp_server.received == []
    # The machine was down from Tuesday to Friday: one digest, at the first run back.
    back = auto(auto_app, "2027-03-05 14:00")
    assert back.exit_code == 0, back.output
    assert "1 article for 1 reader" in back.output
    later = auto(auto_app, "2027-03-05 14:05")
    assert "Nothing due until Saturday 6 March 2027 09:00 UTC" in later.output
    assert received_articles(smtp_server) == {"ada@example.org": Counter({"a1": 1})}
    with session_factory(auto_app)() as session:
        slots = session.scalars(select(DigestSlot.slot_at).order_by(DigestSlot.slot_at)).all()
    assert slots == [at("2027-02-28 09:00"), at("2027-03-05 09:00")] or slots == [
        at("2027-03-01 09:00"),
        at("2027-03-05 09:00"),
    ]


def test_an_article_is_taken_only_once_settled_and_an_edit_after_sending_is_not_mailed(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    reader(auto_app, "ada@example.org")
    auto(auto_app, "2027-03-01 09:00")
    feed.publish("a1", at("2027-03-02 08:40"), title="First draft")
    auto(auto_app, "2027-03-02 08:40")
    feed.edit("a1", "Corrected headline")
    auto(auto_app, "2027-03-02 08:50")  # changed: settles from now on
    early = auto(auto_app, "2027-03-02 09:05")
    assert "1 reader due, but nothing new became available" in early.output
    assert smtp_server.received == []  # not settled at 09:05 (changed at 08:50)
    next_day = auto(auto_app, "2027-03-03 09:00")
    assert next_day.exit_code == 0, next_day.output
    [message] = [r.message for r in smtp_server.received]
    assert "Corrected headline" in message["Subject"]
    feed.edit("a1", "Corrected again")
    auto(auto_app, "2027-03-03 10:00")
    auto(auto_app, "2027-03-04 09:00")
    auto(auto_app, "2027-03-05 09:00")
    assert len(smtp_server.received) == 1
    # The web version shows the article as it is now.
    with session_factory(auto_app)() as session:
        digest_id = session.scalars(select(Digest.id)).one()
    page = auto_app.test_client().get(f"/digests/{digest_id}")
    assert "Corrected again" in page.get_data(as_text=True)


def test_each_reader_gets_their_topics_and_general_news(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    asylum_and_prisons(auto_app)
    reader(auto_app, "all@example.org")
    auto(auto_app, "2027-03-01 09:00")
    feed.publish("a1", at("2027-03-01 10:00"), "Asylum")
    feed.publish("p1", at("2027-03-01 10:00"), "Prisons")
    feed.publish("g1", at("2027-03-01 10:00"), "Other")
    auto(auto_app, "2027-03-01 10:00")
    result = auto(auto_app, "2027-03-02 09:00")
    assert result.exit_code == 0, result.output
    assert received_articles(smtp_server) == {
        "asylum@example.org": Counter({"a1": 1, "g1": 1}),
        "prisons@example.org": Counter({"p1": 1, "g1": 1}),
        "all@example.org": Counter({"a1": 1, "p1": 1, "g1": 1}),
    }
    subjects = {r.recipients[0]: r.message["Subject"] for r in smtp_server.received}
    assert "Story p1" not in subjects["asylum@example.org"]


def test_a_feed_that_fails_is_one_warning_and_the_others_go_on(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, feed: SiteFeed, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_text("this is not a feed")
    app = make_app(
        MAIL_URL=smtp_server.url,
        FEEDS=f"{tmp_path / 'missing.xml'} {broken} {feed.path}",
        SCHEDULE="daily 09:00",
    )
    reader(app, "ada@example.org")
    feed.publish("a1", at("2027-03-01 06:00"))
    auto(app, "2027-03-01 06:00")
    result = auto(app, "2027-03-02 09:00")
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.stderr.splitlines() if line.startswith("Warning: feed")]
    assert len(warnings) == 2, result.stderr
    assert "missing.xml" in warnings[0] and "broken.xml" in warnings[1]
    assert "Traceback" not in result.output
    assert received_articles(smtp_server) == {"ada@example.org": Counter({"a1": 1})}


def test_dry_run_prints_who_gets_what_and_changes_nothing(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    with session_factory(auto_app)() as session:
        make_topic(session, "asylum", "Asylum")
        make_topic(session, "prisons", "Prisons")
    reader(auto_app, "asylum@example.org", "weekly", "asylum")
    reader(auto_app, "all@example.org")
    feed.publish("a1", at("2027-03-01 06:00"), "Asylum", title="Asylum ruling")
    feed.publish("p1", at("2027-03-01 06:00"), "Prisons", title="Prison visit")
    auto(auto_app, "2027-03-01 06:00")
    feed.publish("p2", at("2027-03-02 06:00"), "Prisons", title="Prison report")
    dry = auto(auto_app, "2027-03-02 09:00", "--dry-run")
    assert dry.exit_code == 0, dry.output
    assert "1 would be added" in dry.output and "Imported" not in dry.output
    assert "2 articles for 2 readers" in dry.output
    assert "  asylum@example.org (weekly): 1: Asylum ruling" in dry.output
    assert "  all@example.org (each): 2: " in dry.output
    assert "nothing was imported, sent or changed" in dry.output
    assert smtp_server.received == []
    with session_factory(auto_app)() as session:
        assert session.scalars(select(Digest)).all() == []
        # Only the slot the run at 06:00 dealt with (28 February's).
        assert session.scalars(select(DigestSlot.slot_at)).all() == [at("2027-02-28 09:00")]
        assert session.scalars(select(Delivery)).all() == []
    real = auto(auto_app, "2027-03-02 09:00")
    assert real.exit_code == 0, real.output
    assert sorted(received_articles(smtp_server)) == ["all@example.org", "asylum@example.org"]


@pytest.mark.parametrize(
    "moment", ["0001-01-01T00:00", "0001-01-01T00:00+14:00", "9999-12-31T23:59-12:00"]
)
def test_an_at_past_the_calendar_is_one_error_and_changes_nothing(
    auto_app: Flask, feed: SiteFeed, moment: str
) -> None:
    feed.publish("a1", at("2027-03-01 06:00"))
    result = auto_app.test_cli_runner().invoke(args=["digest", "auto", "--at", moment])
    assert result.exit_code != 0
    assert isinstance(result.exception, SystemExit), result.exception  # no traceback
    errors = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert len(errors) == 1 and "--at" in errors[0] and moment in errors[0], result.output
    with session_factory(auto_app)() as session:
        assert session.scalars(select(DigestSlot)).all() == []
        assert session.scalars(select(Article)).all() == []


def test_automation_off_does_nothing(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, FEEDS=str(feed.path), AUTOMATION=False)
    reader(app, "ada@example.org")
    feed.publish("a1", at("2027-03-01 06:00"))
    result = auto(app, "2027-03-09 09:00")
    assert result.exit_code == 0
    assert "Automation is off" in result.output
    assert smtp_server.received == []


def test_status_without_an_id_shows_what_the_automation_did_and_will_do(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    reader(auto_app, "ada@example.org")
    feed.publish("a1", at("2027-03-01 06:00"))
    auto(auto_app, "2027-03-01 06:00")
    auto(auto_app, "2027-03-01 09:00")
    feed.publish("a2", at("2027-03-01 10:00"))
    auto(auto_app, "2027-03-01 10:00")
    shown = auto_app.test_cli_runner().invoke(args=["digest", "status"])
    assert shown.exit_code == 0, shown.output
    assert "Automatic digests: on; schedule daily 09:00 UTC." in shown.output
    assert "articles still settling: 1" in shown.output
    lines = shown.output.splitlines()
    assert lines[-2].startswith("  Monday 1 March 2027 09:00 UTC: 1 reader due, digest 1 (sent)")
    assert lines[-1].startswith(
        "  Sunday 28 February 2027 09:00 UTC: 1 reader due, nothing new, no digest"
    )
    document = json.loads(
        auto_app.test_cli_runner().invoke(args=["digest", "status", "--json"]).output
    )
    assert document["settling"] == 1
    assert [slot["digest"] for slot in document["slots"]] == [1, None]
    assert document["slots"][0]["slot"] == "2027-03-01T09:00:00Z"


def test_a_send_stopped_by_the_mail_server_is_finished_with_each_readers_own_articles(
    auto_app: Flask, smtp_server: SMTPServer, feed: SiteFeed
) -> None:
    asylum_and_prisons(auto_app)
    feed.publish("a1", at("2027-03-01 06:00"), "Asylum")
    feed.publish("p1", at("2027-03-01 06:00"), "Prisons")
    auto(auto_app, "2027-03-01 06:00")
    smtp_server.handler.greeting_reply = lambda: "421 4.3.2 not now"
    stopped = auto(auto_app, "2027-03-01 09:05", "--max-errors", "2")
    assert stopped.exit_code == 2, stopped.output
    assert smtp_server.received == []
    smtp_server.handler.greeting_reply = None
    with session_factory(auto_app)() as session:
        digest_id = session.scalars(select(Digest.id)).one()
    # Staff may finish it by hand, as any digest: still each reader's own articles.
    finished = auto_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert finished.exit_code == 0, finished.output
    assert received_articles(smtp_server) == {
        "asylum@example.org": Counter({"a1": 1}),
        "prisons@example.org": Counter({"p1": 1}),
    }
    later = auto(auto_app, "2027-03-01 09:10")
    assert "Nothing due until Tuesday 2 March 2027" in later.output
    assert len(smtp_server.received) == 2
