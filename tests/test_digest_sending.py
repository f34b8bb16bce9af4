"""The digest send as a service, without the command line: queue, send, finish, count."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable

from flask import Flask
from sqlalchemy import update

from newsletter.app_db import session_factory
from newsletter.models import Delivery, DeliveryStatus, Digest, DigestStatus
from newsletter.runtime import get_runtime
from newsletter.services.digest_sending import DigestSend
from tests.sending_support import (
    FAST,
    add_articles_and_digest,
    add_subscribers,
    address,
    per_recipient,
)
from tests.support.mailbox import body_text
from tests.support.smtp import SMTPServer


def digest_send(app: Flask, digest_id: int) -> DigestSend:
    return DigestSend.load(get_runtime(app), digest_id)


def digest_status(app: Flask, digest_id: int) -> str:
    with session_factory(app)() as session:
        return session.get_one(Digest, digest_id).status


def test_a_send_runs_step_by_step(make_app: Callable[..., Flask], smtp_server: SMTPServer) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    with session_factory(app).begin() as session:
        add_subscribers(session, 6)
        digest_id = add_articles_and_digest(session)
    sending = digest_send(app, digest_id)

    queued = sending.queue()
    assert (queued.queued_now, queued.requeued, queued.open) == (6, 0, 6)
    assert digest_status(app, digest_id) == DigestStatus.SENDING
    finished = sending.finish(sending.sender(FAST).run(), queued)

    assert finished.sent
    assert (finished.after[DeliveryStatus.SENT], finished.skipped, finished.still_queued) == (
        6,
        0,
        0,
    )
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(6)})
    for received in smtp_server.received:
        number = int(received.recipients[0].removeprefix("person").partition("@")[0])
        assert f"Hello First{number}," in body_text(received.message)
    assert digest_status(app, digest_id) == DigestStatus.SENT
    again = digest_send(app, digest_id).queue()
    assert (again.queued_now, again.open) == (None, 0)


def test_resending_the_unknown_reopens_a_sent_digest(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    with session_factory(app).begin() as session:
        add_subscribers(session, 3)
        digest_id = add_articles_and_digest(session)
    first = digest_send(app, digest_id)
    first_queued = first.queue()
    first.finish(first.sender(FAST).run(), first_queued)
    with session_factory(app).begin() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.subscriber_id == 1)
            .values(status=DeliveryStatus.UNKNOWN)
        )

    sending = digest_send(app, digest_id)
    assert sending.queue().requeued == 0
    queued = sending.queue(resend_unknown=True)
    assert (queued.queued_now, queued.requeued, queued.open) == (None, 1, 1)
    assert digest_status(app, digest_id) == DigestStatus.SENDING
    finished = sending.finish(sending.sender(FAST).run(), queued)

    assert finished.sent and finished.unknown == 0
    assert len(smtp_server.received) == 4
