"""Helpers for sending tests: subscribers in bulk, a digest, and a small real job."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections import Counter
from datetime import timedelta
from typing import Any

from flask import Flask
from sqlalchemy import insert, select
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.db import utcnow
from newsletter.mail.pieces import encode_piece
from newsletter.mail.wire import AlternativeTemplate, Outgoing
from newsletter.models import Article, Delivery, Digest, DigestArticle, Subscriber, SubscriberStatus
from newsletter.runtime import get_runtime
from newsletter.sending import ledger
from newsletter.sending.engine import Sender, SendOptions
from newsletter.sending.jobs import ClaimedDelivery, DigestJob
from tests.support.articles import draft_digest
from tests.support.smtp import MailServer, Received

FAST = SendOptions(
    workers=2,
    batch=5,
    max_errors=3,
    lease=timedelta(seconds=30),
    backoff=ledger.Backoff(first=0.05, attempts=5),
    poll=0.05,
)


def address(number: int) -> str:
    return f"person{number:05d}@example.org"


def add_subscribers(session: Session, count: int, status: str = SubscriberStatus.ACTIVE) -> None:
    now = utcnow()
    session.execute(
        insert(Subscriber),
        [
            {
                "email": address(n),
                "email_key": address(n),
                "first_name": f"First{n}",
                "last_name": f"Last{n}",
                "status": status,
                "token_nonce": f"nonce{n}",
                "created_at": now,
                "updated_at": now,
            }
            for n in range(count)
        ],
    )


def make_digest(session: Session) -> int:
    digest = Digest(subject="Our news this week")
    session.add(digest)
    session.flush()
    return digest.id


def queued_digest(app: Flask, subscribers: int) -> int:
    """A digest queued for ``subscribers`` active people."""
    with session_factory(app).begin() as session:
        add_subscribers(session, subscribers)
        digest_id = make_digest(session)
        ledger.queue_digest(session, digest_id)
    return digest_id


def plain_job(app: Flask, digest_id: int) -> DigestJob:
    site = get_runtime(app).site
    wire = AlternativeTemplate(site.sender, "Our news this week")

    def compose(delivery: ClaimedDelivery, message_id: str) -> Outgoing:
        person = delivery.person
        return wire.assemble(
            to_name=person.first_name,
            to_address=person.email,
            message_id=message_id,
            text_qp=encode_piece(f"Hello {person.first_name}\n"),
            html_qp=encode_piece(f"<p>Hello {person.first_name}</p>\n"),
        )

    return DigestJob(digest_id, site, compose)


def sender(app: Flask, digest_id: int, options: SendOptions = FAST) -> Sender:
    runtime = get_runtime(app)
    return Sender(
        runtime.sessions,
        runtime.transport,
        runtime.site.sender_address,
        plain_job(app, digest_id),
        options,
    )


def per_recipient(server: MailServer) -> Counter[str]:
    """How many copies each envelope recipient got."""
    return Counter(r for message in server.received for r in message.recipients)


def states(app: Flask, digest_id: int) -> dict[str, str]:
    """Each recipient's delivery state."""
    with session_factory(app)() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.digest_id == digest_id)
        ).all()
    return {email: status for email, status in rows}


def add_articles_and_digest(session: Session, articles: int = 5) -> int:
    """A draft digest holding ``articles`` new articles."""
    now = utcnow()
    digest = Digest(subject="Our news this week")
    session.add(digest)
    for n in range(articles):
        article = Article(
            guid=f"https://example.org/news/{n}",
            url=f"https://example.org/news/{n}",
            title=f"Article number {n}",
            summary=f"A short summary of article {n}.",
            body_html=f"<p>The body of article {n}.</p>",
            published_at=now - timedelta(hours=n),
            content_hash=f"hash{n}",
        )
        session.add(article)
        digest.entries.append(DigestArticle(article=article, position=n))
    session.flush()
    return digest.id


def environment(config: dict[str, Any], mail_url: str, **extra: str) -> dict[str, str]:
    """The test app's settings as the variables a deployment would set, for subprocesses."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("NEWSLETTER_")}
    env.update(
        NEWSLETTER_DATABASE_URL=config["DATABASE_URL"],
        NEWSLETTER_MAIL_URL=mail_url,
        NEWSLETTER_INSTANCE_PATH=config["INSTANCE_PATH"],
        NEWSLETTER_SECRET_KEY=config["SECRET_KEY"],
        NEWSLETTER_BASE_URL=config["BASE_URL"],
        NEWSLETTER_POSTAL_ADDRESS=config["POSTAL_ADDRESS"],
        NEWSLETTER_ORGANISATION=config["ORGANISATION"],
        NEWSLETTER_SENDER=config["SENDER"],
        **extra,
    )
    return env


def digest_to_one(app: Flask, server: MailServer, **article_changes: object) -> Received:
    """A digest of articles 1 and 2 sent by ``digest send`` to one active subscriber, as the
    server received it."""
    with session_factory(app).begin() as session:
        add_subscribers(session, 1)
    digest_id = draft_digest(app, **article_changes)
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    [received] = server.received
    return received


NEWSLETTER = [sys.executable, "-m", "newsletter"]


def start_send(
    base_config: dict[str, Any], server: MailServer, digest_id: int, *extra: str
) -> subprocess.Popen[str]:
    """``digest send`` in a process of its own, as staff start it."""
    return subprocess.Popen(
        [*NEWSLETTER, "digest", "send", str(digest_id), "--workers", "4", *extra],
        env=environment(base_config, server.url),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def resume_send(
    base_config: dict[str, Any], server: MailServer, digest_id: int
) -> subprocess.CompletedProcess[str]:
    """Run ``digest send`` again, to the end, as staff would after a crash or a stop."""
    return subprocess.run(
        [*NEWSLETTER, "digest", "send", str(digest_id)],
        env=environment(base_config, server.url),
        capture_output=True,
        text=True,
        timeout=300,
    )


def kill_9_and_resume(
    base_config: dict[str, Any], server: MailServer, digest_id: int, kill_after: int
) -> subprocess.CompletedProcess[str]:
    """Start a send, kill -9 it once ``kill_after`` messages arrived (or it ended), and run
    it again to the end."""
    process = start_send(base_config, server, digest_id)
    deadline = time.monotonic() + 60
    while len(server.received) < kill_after and process.poll() is None:
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)
    process.kill()
    process.wait(timeout=30)
    assert process.stdout is not None
    process.stdout.close()
    return resume_send(base_config, server, digest_id)
