"""Digests made for each person: ``digest send`` gives each person the articles of their
topics plus general news, skips who has nothing to read, and takes the choice in force when
their delivery is claimed. Real SMTP server, both databases."""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Sequence
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.mail.digest import subject_of_titles, version_subject
from newsletter.models import Delivery, DeliveryStatus, Subscriber, SubscriberTopic, Topic
from newsletter.runtime import get_runtime
from newsletter.services.articles import import_entries
from newsletter.services.digests import create_digest
from tests.sending_support import add_subscribers, address, kill_9_and_resume, per_recipient
from tests.support.articles import entry
from tests.support.smtp import MailServer, SMTPServer
from tests.support.topics import choose, make_topic

# Article number → its categories; a higher number is a newer article.
CATEGORIES: dict[int, tuple[str, ...]] = {
    1: ("North Korea",),
    2: ("Asylum",),
    3: ("Prisons",),
    4: ("north korea", "Asylum"),
    5: ("Prisons",),
}
GENERAL = 6  # no category: general news, for everyone


def title(number: int) -> str:
    return f"Article number {number}"


def digest_with_topics(app: Flask, people: int, general: bool = True) -> int:
    """``people`` active subscribers, and :func:`articles_and_topics`' digest."""
    with app.app_context(), session_factory(app)() as session:
        add_subscribers(session, people)
        session.commit()
        return articles_and_topics(session, general)


def articles_and_topics(session: Session, general: bool = True) -> int:
    """Articles 1–5 under topics (and 6, general news, when ``general``) and a digest of
    them; returns the digest's id."""
    numbers = {**CATEGORIES, **({GENERAL: ()} if general else {})}
    import_entries(session, [entry(n, categories=cats) for n, cats in numbers.items()])
    session.commit()
    make_topic(session, "north-korea", "North Korea")
    make_topic(session, "asylum", "Asylum")
    make_topic(session, "prisons", "Prisons")
    make_topic(session, "eritrea", "Eritrea")  # nothing in this digest
    digest = create_digest(session, get_runtime().site, subject="Our news")
    session.commit()
    return digest.id


def person(session: Session, email: str) -> Subscriber:
    return session.scalars(select(Subscriber).where(Subscriber.email == email)).one()


def read(message: EmailMessage) -> tuple[list[int], list[int]]:
    """The article numbers in a delivered message's text and HTML parts, in their order."""
    found = []
    for kind in ("plain", "html"):
        part = message.get_body((kind,))
        assert part is not None
        links = re.findall(r"https://example\.org/news/(\d+)", part.get_content())
        found.append([int(number) for number in dict.fromkeys(links)])
    return found[0], found[1]


def delivered(server: MailServer) -> dict[str, EmailMessage]:
    messages = {}
    for received in server.received:
        [recipient] = received.recipients
        assert recipient not in messages, f"{recipient} got the digest twice"
        messages[recipient] = received.message
    return messages


@pytest.fixture
def mail_app(make_app: Callable[..., Flask], smtp_server: SMTPServer) -> Flask:
    return make_app(MAIL_URL=smtp_server.url, POSTAL_ADDRESS="1 Main Street")


def choices(app: Flask, chosen: dict[str, Sequence[str]]) -> None:
    with session_factory(app)() as session:
        for email, slugs in chosen.items():
            choose(session, person(session, email), slugs)


def status(app: Flask, digest_id: int) -> dict[str, int]:
    result = app.test_cli_runner().invoke(args=["digest", "status", str(digest_id), "--json"])
    assert result.exit_code == 0, result.output
    counts: dict[str, int] = json.loads(result.output)
    return counts


def test_three_people_get_exactly_the_articles_of_their_topics(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = digest_with_topics(mail_app, 4)
    choices(
        mail_app,
        {address(0): ["north-korea"], address(1): ["prisons", "eritrea"], address(2): ["asylum"]},
    )
    result = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    messages = delivered(smtp_server)
    expected = {
        address(0): [6, 4, 1],
        address(1): [6, 5, 3],
        address(2): [6, 4, 2],
        address(3): [6, 5, 4, 3, 2, 1],  # no topics: everything
    }
    assert set(messages) == set(expected)
    for email, numbers in expected.items():
        text, html = read(messages[email])
        assert text == numbers and html == numbers, email
    # The first article is general news for all: the staff's subject stands.
    assert {str(message["Subject"]) for message in messages.values()} == {"Our news"}
    assert status(mail_app, digest_id)["sent"] == 4
    # The web version shows the whole digest.
    page = mail_app.test_client().get(f"/digests/{digest_id}")
    assert page.status_code == 200
    assert articles_in(page.get_data(as_text=True)) == [6, 5, 4, 3, 2, 1]


def test_without_general_news_the_subject_names_the_first_article(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = digest_with_topics(mail_app, 2, general=False)
    choices(mail_app, {address(0): ["asylum"]})
    result = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    messages = delivered(smtp_server)
    assert read(messages[address(0)]) == ([4, 2], [4, 2])
    assert str(messages[address(0)]["Subject"]) == f"Our news — {title(4)}"
    # The digest's top article comes first for everyone else: the staff's subject stands.
    assert str(messages[address(1)]["Subject"]) == "Our news"


def test_someone_with_nothing_to_read_is_skipped_with_the_reason_and_counted(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = digest_with_topics(mail_app, 3, general=False)
    choices(mail_app, {address(0): ["eritrea"], address(1): ["prisons"]})
    dry = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "rendered 2 messages" in dry.output
    assert "1 would get no email: nothing in the digest is in their topics" in dry.output
    result = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    messages = delivered(smtp_server)
    assert set(messages) == {address(1), address(2)}
    assert read(messages[address(1)]) == ([5, 3], [5, 3])
    summary = [line for line in result.output.splitlines() if line.startswith("sent ")]
    assert summary and summary[0].startswith("sent 2, failed 0, skipped 1,")
    assert status(mail_app, digest_id) == {
        "queued": 0,
        "sending": 0,
        "sent": 2,
        "failed": 0,
        "skipped": 1,
        "unknown": 0,
    }
    shown = mail_app.test_cli_runner().invoke(args=["digest", "status", str(digest_id)])
    assert f"  {address(0)} [skipped]: nothing in their topics" in shown.output.splitlines()
    with session_factory(mail_app)() as session:
        skipped = session.scalars(
            select(Delivery).where(Delivery.status == DeliveryStatus.SKIPPED)
        ).one()
        assert skipped.subscriber_id == person(session, address(0)).id
        assert skipped.last_error == "nothing in their topics"


def test_a_topic_change_mid_send_counts_for_the_messages_built_after_it(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = digest_with_topics(mail_app, 6)
    choices(mail_app, {address(n): ["north-korea"] for n in range(6)})
    sessions = session_factory(mail_app)

    def the_last_change_to_prisons_at_the_first_message(_recipients: str) -> None:
        smtp_server.handler.data_reply = None
        with sessions.begin() as session:
            subscriber = person(session, address(5))
            session.execute(
                delete(SubscriberTopic).where(SubscriberTopic.subscriber_id == subscriber.id)
            )
            prisons = session.scalars(select(Topic).where(Topic.slug == "prisons")).one()
            session.add(SubscriberTopic(subscriber_id=subscriber.id, topic_id=prisons.id))

    smtp_server.handler.data_reply = the_last_change_to_prisons_at_the_first_message
    result = mail_app.test_cli_runner().invoke(
        args=["digest", "send", str(digest_id), "--workers", "1", "--batch", "2"]
    )
    assert result.exit_code == 0, result.output
    messages = delivered(smtp_server)
    for n in range(5):
        assert read(messages[address(n)]) == ([6, 4, 1], [6, 4, 1])
    # Claimed after the change: the new choice.
    assert read(messages[address(5)]) == ([6, 5, 3], [6, 5, 3])


@pytest.mark.parametrize("kill_after", [400])
def test_kill_9_then_resume_with_topics_sends_each_their_articles_once(
    mail_app: Flask, base_config: dict[str, Any], mail_server: MailServer, kill_after: int
) -> None:
    people = 1200
    slugs = ["north-korea", "asylum", "prisons", "eritrea"]
    with mail_app.app_context(), session_factory(mail_app)() as session:
        add_subscribers(session, people)
        session.commit()
        digest_id = articles_and_topics(session, general=False)
        # Person n holds the topics of the bits of n % 16: some all, some none, some only
        # "eritrea" (nothing to read).
        for n in range(people):
            chosen = [slug for bit, slug in enumerate(slugs) if n % 16 & (1 << bit)]
            subscriber = person(session, address(n))
            for slug in chosen:
                topic = session.scalars(select(Topic).where(Topic.slug == slug)).one()
                session.add(SubscriberTopic(subscriber_id=subscriber.id, topic_id=topic.id))
        session.commit()
    under = {"north-korea": {1, 4}, "asylum": {2, 4}, "prisons": {3, 5}, "eritrea": set()}

    def expected(n: int) -> list[int]:
        chosen = [slug for bit, slug in enumerate(slugs) if n % 16 & (1 << bit)]
        if not chosen:
            return [5, 4, 3, 2, 1]
        return sorted(set().union(*(under[slug] for slug in chosen)), reverse=True)

    resumed = kill_9_and_resume(base_config, mail_server, digest_id, kill_after)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    received = per_recipient(mail_server)
    assert max(received.values()) == 1, "somebody got the digest twice"
    messages = {r: message.message for message in mail_server.received for r in message.recipients}
    with session_factory(mail_app)() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.last_error).join(
                Subscriber, Subscriber.id == Delivery.subscriber_id
            )
        ).all()
    unknown = {email for email, state, _ in rows if state == DeliveryStatus.UNKNOWN}
    assert len(unknown) <= 4
    for n in range(people):
        email = address(n)
        if email in unknown and email not in messages:
            continue  # marked sending when the process died: never resent on its own
        if not expected(n):  # "eritrea" alone: nothing to read
            state = next(state for e, state, _ in rows if e == email)
            assert state == DeliveryStatus.SKIPPED and email not in messages
            continue
        assert read(messages[email]) == (expected(n), expected(n)), email


def preview(app: Flask, digest_id: int, *options: str) -> tuple[int, str]:
    result = app.test_cli_runner().invoke(args=["digest", "preview", str(digest_id), *options])
    return result.exit_code, result.output


def articles_in(text: str) -> list[int]:
    links = re.findall(r"https://example\.org/news/(\d+)", text)
    return [int(number) for number in dict.fromkeys(links)]


def test_preview_as_a_subscriber_and_as_a_topic(
    mail_app: Flask, smtp_server: SMTPServer, tmp_path: Path
) -> None:
    digest_id = digest_with_topics(mail_app, 2, general=False)
    choices(mail_app, {address(0): ["asylum", "prisons"]})
    code, output = preview(mail_app, digest_id, "--as", address(0).upper())
    assert code == 0, output
    assert output.splitlines()[0] == "Subject: Our news"  # 5 is the digest's top article
    assert articles_in(output) == [5, 4, 3, 2]  # asylum and prisons, newest first
    code, output = preview(mail_app, digest_id, "--as", address(1))
    assert code == 0 and articles_in(output) == [5, 4, 3, 2, 1]  # no topics: everything
    code, output = preview(mail_app, digest_id, "--topic", "north-korea")
    assert code == 0, output
    assert output.splitlines()[0] == f"Subject: Our news — {title(4)}"
    assert articles_in(output) == [4, 1]
    assert "Hello Alex," in output
    # The whole digest without either.
    code, output = preview(mail_app, digest_id)
    assert code == 0 and articles_in(output) == [5, 4, 3, 2, 1]

    out = tmp_path / "version.html"
    code, output = preview(mail_app, digest_id, "--topic", "prisons", "--out", str(out))
    assert code == 0, output
    assert articles_in(out.read_text(encoding="utf-8")) == [5, 3]
    code, output = preview(mail_app, digest_id, "--as", address(0), "--to", "editor@example.net")
    assert code == 0, output
    [received] = smtp_server.received
    assert received.recipients == ["editor@example.net"]
    assert str(received.message["Subject"]) == "[TEST] Our news"
    assert read(received.message) == ([5, 4, 3, 2], [5, 4, 3, 2])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--as", "nobody@example.org"], "Error: --as: there is no subscriber nobody@example.org"),
        (["--topic", "tibet"], "Error: --topic: there is no topic tibet"),
        (["--topic", "Not A Slug"], "Error: --topic: 'Not A Slug' is not a topic slug"),
        (["--topic", "eritrea"], "Error: a reader of topic eritrea gets no email of digest"),
        (["--as", "person00000@example.org"], "Error: person00000@example.org gets no email"),
        (["--as", "person00001@example.org", "--topic", "asylum"], "Error: give --as or --topic"),
    ],
)
def test_preview_of_an_unknown_person_or_topic_or_nothing_to_read_is_one_error_line(
    mail_app: Flask, smtp_server: SMTPServer, options: list[str], message: str
) -> None:
    digest_id = digest_with_topics(mail_app, 2, general=False)
    choices(mail_app, {address(0): ["eritrea"]})
    code, output = preview(mail_app, digest_id, *options, "--to", "editor@example.net")
    assert code != 0
    assert message in output.splitlines()[-1]
    assert "Traceback" not in output
    assert smtp_server.received == []


def test_a_default_subject_is_made_again_from_the_version_and_staffs_own_gains_the_title(
    app: Flask,
) -> None:
    site = get_runtime(app).site
    titles = ["Court halts eviction", "Annual report", "Helpline open"]
    whole = subject_of_titles(site, titles)
    assert whole == f"{site.organisation}: Court halts eviction (+2 more)"
    assert version_subject(site, whole, titles, titles) == whole
    assert (
        version_subject(site, whole, titles[1:], titles)
        == f"{site.organisation}: Annual report (+1 more)"
    )
    assert version_subject(site, whole, titles[2:], titles) == f"{site.organisation}: Helpline open"
    assert version_subject(site, "Our news", titles[1:], titles) == "Our news — Annual report"
    assert version_subject(site, "Our news", titles[:2], titles) == "Our news"
    assert version_subject(site, "Annual report out", titles[1:], titles) == "Annual report out"
