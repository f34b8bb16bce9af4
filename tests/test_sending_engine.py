"""The sending engine against real SMTP servers with faults, on both databases: every test
that talks to a server runs against aiosmtpd offering PIPELINING and against a server that
offers CHUNKING as well, so that messages go with DATA after their envelope in one case and
in one write with it in the other."""

from __future__ import annotations

import itertools
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import replace
from datetime import timedelta

import pytest
from flask import Flask
from sqlalchemy import select, text, update

from newsletter.addresses import suppression_hash
from newsletter.app_db import session_factory
from newsletter.db import create_db_engine, utcnow
from newsletter.mail.dkim import SignedLater
from newsletter.mail.wire import Outgoing
from newsletter.models import (
    Delivery,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from newsletter.sending import ledger
from newsletter.sending.engine import Outcome, RunResult, Sender, SendOptions
from newsletter.sending.jobs import ClaimedDelivery, Skip
from newsletter.sending.ratelimit import TokenBucket
from tests.sending_support import FAST, address, per_recipient, queued_digest, sender, states
from tests.support.smtp import SERVER_KINDS, MailServer, SMTPServer


@pytest.fixture
def smtp_server(mail_server: MailServer) -> MailServer:
    return mail_server


@pytest.fixture
def mail_app(make_app: Callable[..., Flask], smtp_server: SMTPServer) -> Flask:
    return make_app(MAIL_URL=smtp_server.url)


def stages() -> list[tuple[str, str]]:
    """Each server with each stage it has (a server offering CHUNKING gets no DATA command)."""
    return [
        (kind, stage)
        for kind in SERVER_KINDS
        for stage in ["mail", "rcpt", "data", "end of data"]
        if not (kind == "chunking" and stage == "data")
    ]


@pytest.mark.parametrize(("mail_server", "stage"), stages(), indirect=["mail_server"])
def test_4xx_is_retried_and_5xx_fails_at_each_stage(
    mail_app: Flask, mail_server: MailServer, stage: str
) -> None:
    # The first message to reach the stage is refused for now, the second for good.
    answers = itertools.chain(["451 4.3.0 try again later", "554 5.7.1 refused"], [None] * 99)
    hook = {
        "mail": "mail_reply",
        "rcpt": "rcpt_reply",
        "data": "data_command_reply",
        "end of data": "data_reply",
    }[stage]
    setattr(mail_server.handler, hook, lambda _value: next(answers))
    digest_id = queued_digest(mail_app, 6)
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.COMPLETE
    assert result.counts[DeliveryStatus.SENT] == 5
    assert result.counts[DeliveryStatus.FAILED] == 1
    with session_factory(mail_app)() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.attempts, Delivery.last_error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.digest_id == digest_id)
        ).all()
    [failed] = [row for row in rows if row.status == DeliveryStatus.FAILED]
    assert failed.last_error is not None and "554 5.7.1 refused" in failed.last_error
    assert sorted(row.attempts for row in rows) == [1, 1, 1, 1, 1, 2]
    assert per_recipient(mail_server) == Counter(
        {row.email: 1 for row in rows if row.status == DeliveryStatus.SENT}
    )


def test_every_active_subscriber_gets_exactly_one(mail_app: Flask, smtp_server: SMTPServer) -> None:
    digest_id = queued_digest(mail_app, 30)
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.COMPLETE
    assert result.counts[DeliveryStatus.SENT] == 30
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(30)})
    assert set(states(mail_app, digest_id).values()) == {DeliveryStatus.SENT}
    with session_factory(mail_app).begin() as session:
        assert ledger.finish_digest(session, digest_id)
        digest = session.get_one(Digest, digest_id)
        assert digest.status == DigestStatus.SENT
        message_ids = session.scalars(
            select(Delivery.message_id).where(Delivery.digest_id == digest_id)
        ).all()
    assert len(set(message_ids)) == 30
    assert {m.message["Message-ID"] for m in smtp_server.received} == set(message_ids)


def test_more_workers_than_a_usual_connection_pool_all_send(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    # Each worker keeps a database connection for its per-message writes: 20 workers (the
    # command allows 64) need more than a pool's usual 15 at once.
    digest_id = queued_digest(mail_app, 60)
    result = sender(mail_app, digest_id, replace(FAST, workers=20, batch=2)).run()
    assert result.outcome is Outcome.COMPLETE, result.message
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(60)})


def test_queueing_happens_once(mail_app: Flask) -> None:
    digest_id = queued_digest(mail_app, 5)
    with session_factory(mail_app).begin() as session:
        assert ledger.queue_digest(session, digest_id) is None
        count = session.scalar(
            select(text("count(*)")).select_from(Delivery).where(Delivery.digest_id == digest_id)
        )
    assert count == 5


def test_temporary_failures_are_retried_within_the_run(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    seen: Counter[str] = Counter()

    def first_time_451(recipient: str) -> str | None:
        seen[recipient] += 1
        if recipient in {address(1), address(2), address(3)} and seen[recipient] == 1:
            return "451 4.3.0 try again later"
        return None

    smtp_server.handler.rcpt_reply = first_time_451
    digest_id = queued_digest(mail_app, 8)
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.COMPLETE
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(8)})
    with session_factory(mail_app)() as session:
        attempts = dict(
            session.execute(
                select(Subscriber.email, Delivery.attempts)
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.digest_id == digest_id)
            ).all()
        )
    assert attempts[address(1)] == 2
    assert attempts[address(0)] == 1


def test_a_recipient_always_answering_451_fails_after_five_attempts(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    tries: Counter[str] = Counter()

    def always_451_for_one(recipient: str) -> str | None:
        tries[recipient] += 1
        return "451 4.2.1 mailbox busy" if recipient == address(0) else None

    smtp_server.handler.rcpt_reply = always_451_for_one
    digest_id = queued_digest(mail_app, 3)
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.COMPLETE
    assert tries[address(0)] == 5
    assert states(mail_app, digest_id)[address(0)] == DeliveryStatus.FAILED
    assert per_recipient(smtp_server) == Counter({address(1): 1, address(2): 1})


def test_550_fails_and_no_such_user_marks_a_hard_bounce(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    replies = {
        address(1): "550 5.1.1 no such user",
        address(2): "550 5.7.1 message refused as spam",
    }
    smtp_server.handler.rcpt_reply = replies.get
    digest_id = queued_digest(mail_app, 4)
    result = sender(mail_app, digest_id).run()
    assert result.counts[DeliveryStatus.FAILED] == 2
    assert result.counts[DeliveryStatus.SENT] == 2
    with session_factory(mail_app)() as session:
        status = dict(session.execute(select(Subscriber.email, Subscriber.status)).all())
        suppressed = set(session.scalars(select(Suppression.email_hash)).all())
        error = session.scalar(
            select(Delivery.last_error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Subscriber.email == address(2))
        )
    assert status[address(1)] == SubscriberStatus.BOUNCED
    assert status[address(2)] == SubscriberStatus.ACTIVE
    assert suppressed == {suppression_hash(address(1))}
    assert error is not None and "550" in error and "spam" in error


def test_550_after_data_fails_that_message(mail_app: Flask, smtp_server: SMTPServer) -> None:
    smtp_server.handler.data_reply = lambda rcpts: (
        "554 5.6.0 content rejected" if address(0) in rcpts else None
    )
    digest_id = queued_digest(mail_app, 3)
    sender(mail_app, digest_id).run()
    assert states(mail_app, digest_id) == {
        address(0): DeliveryStatus.FAILED,
        address(1): DeliveryStatus.SENT,
        address(2): DeliveryStatus.SENT,
    }


def test_a_server_refusing_connections_stops_the_run_and_a_rerun_resumes(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    smtp_server.handler.greeting_reply = lambda: "421 4.3.2 service not available"
    digest_id = queued_digest(mail_app, 6)
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.TOO_MANY_ERRORS
    assert "421" in result.message
    assert smtp_server.received == []
    assert set(states(mail_app, digest_id).values()) == {DeliveryStatus.QUEUED}
    with session_factory(mail_app)() as session:
        assert set(
            session.scalars(select(Delivery.attempts).where(Delivery.digest_id == digest_id))
        ) == {0}
    smtp_server.handler.greeting_reply = None
    again = sender(mail_app, digest_id).run()
    assert again.outcome is Outcome.COMPLETE
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(6)})


def test_a_stopped_server_stops_the_run(mail_app: Flask, smtp_server: SMTPServer) -> None:
    smtp_server.stop()
    digest_id = queued_digest(mail_app, 3)
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.TOO_MANY_ERRORS
    assert "cannot connect" in result.message
    smtp_server.start()
    assert sender(mail_app, digest_id).run().outcome is Outcome.COMPLETE
    assert len(smtp_server.received) == 3


def test_a_connection_dropped_after_data_is_unknown_and_never_resent_on_its_own(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    smtp_server.handler.drop_after_data = lambda rcpts: address(1) in rcpts
    digest_id = queued_digest(mail_app, 4)
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.COMPLETE
    assert result.counts[DeliveryStatus.UNKNOWN] == 1
    assert states(mail_app, digest_id)[address(1)] == DeliveryStatus.UNKNOWN
    smtp_server.handler.drop_after_data = None
    sender(mail_app, digest_id).run()
    assert address(1) not in per_recipient(smtp_server)
    job_scope = Delivery.digest_id == digest_id
    with session_factory(mail_app).begin() as session:
        assert ledger.resend_unknown(session, sender(mail_app, digest_id).job) == 1
        assert ledger.counts(session, job_scope)[DeliveryStatus.QUEUED] == 1
    sender(mail_app, digest_id).run()
    assert per_recipient(smtp_server)[address(1)] == 1


def test_someone_who_leaves_mid_send_is_skipped(
    mail_app: Flask, smtp_server: SMTPServer, database_url: str
) -> None:
    digest_id = queued_digest(mail_app, 10)
    other = create_db_engine(database_url)

    def unsubscribe_the_last_one(recipient: str) -> str | None:
        if recipient == address(2):
            with other.begin() as connection:
                connection.execute(
                    update(Subscriber)
                    .where(Subscriber.email == address(9))
                    .values(status=SubscriberStatus.UNSUBSCRIBED)
                )
        return None

    smtp_server.handler.rcpt_reply = unsubscribe_the_last_one
    options = FAST.__class__(**{**FAST.__dict__, "workers": 1, "batch": 3})
    result = sender(mail_app, digest_id, options).run()
    other.dispose()
    assert result.counts[DeliveryStatus.SKIPPED] == 1
    assert states(mail_app, digest_id)[address(9)] == DeliveryStatus.SKIPPED
    assert address(9) not in per_recipient(smtp_server)
    assert len(smtp_server.received) == 9


def test_ctrl_c_finishes_in_flight_gives_back_the_rest_and_a_rerun_completes(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = queued_digest(mail_app, 40)
    run = sender(mail_app, digest_id)

    def interrupt_after_ten(recipient: str) -> str | None:
        if len(smtp_server.received) >= 10:
            run.interrupt()
        return None

    smtp_server.handler.rcpt_reply = interrupt_after_ten
    result = run.run()
    assert result.outcome is Outcome.INTERRUPTED
    after_stop = states(mail_app, digest_id)
    assert DeliveryStatus.SENDING not in after_stop.values()
    assert 10 <= list(after_stop.values()).count(DeliveryStatus.SENT) < 40
    with session_factory(mail_app)() as session:
        still_claimed = session.scalar(
            select(text("count(*)"))
            .select_from(Delivery)
            .where(Delivery.digest_id == digest_id, Delivery.claimed_by.is_not(None))
        )
    assert still_claimed == 0
    smtp_server.handler.rcpt_reply = None
    assert sender(mail_app, digest_id).run().outcome is Outcome.COMPLETE
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(40)})


def test_a_crashed_run_leaves_sending_rows_unknown_and_queued_rows_for_the_next(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = queued_digest(mail_app, 6)
    past = utcnow() - timedelta(minutes=5)
    with session_factory(mail_app).begin() as session:
        ids = session.scalars(
            select(Delivery.id).where(Delivery.digest_id == digest_id).order_by(Delivery.id)
        ).all()
        session.execute(
            update(Delivery)
            .where(Delivery.id == ids[0])
            .values(status=DeliveryStatus.SENDING, claimed_by="gone:1:x", claimed_until=past)
        )
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_(ids[1:3]))
            .values(claimed_by="gone:1:x", claimed_until=past)
        )
    result = sender(mail_app, digest_id).run()
    assert result.outcome is Outcome.COMPLETE
    final = states(mail_app, digest_id)
    assert final[address(0)] == DeliveryStatus.UNKNOWN
    assert [final[address(n)] for n in range(1, 6)] == [DeliveryStatus.SENT] * 5
    assert address(0) not in per_recipient(smtp_server)


def test_a_live_lease_of_another_sender_is_waited_for(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = queued_digest(mail_app, 3)
    soon = utcnow() + timedelta(seconds=1)
    with session_factory(mail_app).begin() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.digest_id == digest_id)
            .values(claimed_by="elsewhere:1:x", claimed_until=soon)
        )
    notices: list[str] = []
    run = sender(mail_app, digest_id)
    run.notice = notices.append
    assert run.run().outcome is Outcome.COMPLETE
    assert any("waiting for another sender" in notice for notice in notices)
    assert len(smtp_server.received) == 3


def test_claims_of_a_dead_process_on_this_host_are_taken_back_at_once(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    dead_pid = 2**22 + 12345  # above the kernel's default pid_max, so never a live process
    digest_id = queued_digest(mail_app, 2)
    later = utcnow() + timedelta(minutes=10)
    with session_factory(mail_app).begin() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.digest_id == digest_id)
            .values(claimed_by=f"{socket.gethostname()}:{dead_pid}:x", claimed_until=later)
        )
    started = time.monotonic()
    assert sender(mail_app, digest_id).run().outcome is Outcome.COMPLETE
    assert time.monotonic() - started < 60  # not the ten-minute lease
    assert len(smtp_server.received) == 2


def test_two_senders_at_once_send_each_message_once(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = queued_digest(mail_app, 120)
    first, second = sender(mail_app, digest_id), sender(mail_app, digest_id)
    results: list[RunResult] = []
    threads = [
        threading.Thread(target=lambda s=s: results.append(s.run())) for s in (first, second)
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert [r.outcome for r in results] == [Outcome.COMPLETE, Outcome.COMPLETE]
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(120)})
    assert sum(r.counts[DeliveryStatus.SENT] for r in results) == 120


def test_no_transaction_is_open_during_smtp(
    mail_app: Flask, smtp_server: SMTPServer, database_url: str
) -> None:
    digest_id = queued_digest(mail_app, 6)
    other = create_db_engine(database_url)
    problems: list[str] = []

    def check_database_is_free(recipient: str) -> str | None:
        if other.dialect.name == "sqlite":
            # Our transactions take SQLite's write lock at BEGIN: if one were open, this
            # write would wait for it, and with no busy timeout it fails at once.
            raw = other.raw_connection()
            try:
                raw.driver_connection.execute("PRAGMA busy_timeout=0")
                raw.driver_connection.execute("BEGIN IMMEDIATE")
                raw.driver_connection.execute("ROLLBACK")
            except sqlite3.OperationalError as error:
                problems.append(str(error))
            finally:
                raw.close()
        else:
            with other.connect() as connection:
                idle = connection.execute(
                    text(
                        "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database()"
                        " AND state LIKE 'idle in transaction%' AND pid <> pg_backend_pid()"
                    )
                ).scalar()
                if idle:
                    problems.append(f"{idle} transactions open")
        return None

    smtp_server.handler.rcpt_reply = check_database_is_free
    result = sender(mail_app, digest_id, FAST.__class__(**{**FAST.__dict__, "workers": 1})).run()
    other.dispose()
    assert result.counts[DeliveryStatus.SENT] == 6
    assert problems == []


def test_the_token_bucket_caps_the_rate() -> None:
    bucket = TokenBucket(per_second=50, burst=1)
    started = time.monotonic()
    for _ in range(11):
        assert bucket.take()
    # Ten tokens beyond the first cannot come faster than 50 per second.
    assert time.monotonic() - started >= 10 / 50 * 0.95


def test_a_stop_during_a_rate_wait_returns_promptly() -> None:
    bucket = TokenBucket(per_second=0.1, burst=1)
    assert bucket.take()
    stop = threading.Event()
    stop.set()
    assert bucket.take(stop) is False


def test_rate_is_one_cap_shared_by_all_workers(mail_app: Flask, smtp_server: SMTPServer) -> None:
    digest_id = queued_digest(mail_app, 20)
    options = FAST.__class__(**{**FAST.__dict__, "workers": 4, "rate": 50.0})
    started = time.monotonic()
    result = sender(mail_app, digest_id, options).run()
    elapsed = time.monotonic() - started
    assert result.counts[DeliveryStatus.SENT] == 20
    # Four workers without a shared cap would need a quarter of this; the burst is 5 messages.
    assert elapsed >= (20 - 5) / 50 * 0.95


def test_a_refused_login_stops_the_run_and_the_right_one_resumes_it(
    make_app: Callable[..., Flask],
) -> None:
    server = SMTPServer(login=("news", "right password"))
    server.start()
    try:
        wrong = make_app(MAIL_URL=server.url_with_login("news", "wrong password"))
        digest_id = queued_digest(wrong, 4)
        result = sender(wrong, digest_id).run()
        assert result.outcome is Outcome.TOO_MANY_ERRORS
        assert "535" in result.message
        assert server.received == []
        assert set(states(wrong, digest_id).values()) == {DeliveryStatus.QUEUED}
        right = make_app(MAIL_URL=server.url_with_login("news", "right password"))
        assert sender(right, digest_id).run().outcome is Outcome.COMPLETE
        assert per_recipient(server) == Counter({address(n): 1 for n in range(4)})
    finally:
        server.stop()


Composed = Outgoing | Skip | None
Compose = Callable[[ClaimedDelivery], Composed]


def sender_composing_through(
    app: Flask,
    digest_id: int,
    options: SendOptions,
    through: Callable[[Compose, ClaimedDelivery], Composed],
) -> Sender:
    """A sender whose job composes each message through ``through``, given the job's own
    way of composing it."""
    send = sender(app, digest_id, options)
    compose = send.job.compose
    send.job.compose = lambda delivery: through(compose, delivery)  # type: ignore[method-assign]
    return send


def sender_composing(
    app: Flask, digest_id: int, options: SendOptions, before: Callable[[ClaimedDelivery], None]
) -> Sender:
    """A sender whose job calls ``before`` with each delivery it composes a message for."""

    def after_before(compose: Compose, delivery: ClaimedDelivery) -> Composed:
        before(delivery)
        return compose(delivery)

    return sender_composing_through(app, digest_id, options, after_before)


def test_a_message_composed_ahead_goes_only_once_its_delivery_is_marked(
    mail_app: Flask, smtp_server: MailServer
) -> None:
    """Each message is composed while the one before it is sent; someone who leaves between
    their message being composed and their turn gets nothing."""
    digest_id = queued_digest(mail_app, 5)
    leaving = address(1)
    composed: list[str] = []

    def leave(delivery: ClaimedDelivery) -> None:
        composed.append(delivery.person.email)
        if delivery.person.email == leaving:
            with session_factory(mail_app).begin() as session:
                session.execute(
                    update(Subscriber)
                    .where(Subscriber.email == leaving)
                    .values(status=SubscriberStatus.UNSUBSCRIBED)
                )

    one_worker = replace(FAST, workers=1, batch=5)
    result = sender_composing(mail_app, digest_id, one_worker, leave).run()
    assert result.outcome is Outcome.COMPLETE
    assert leaving in composed
    assert states(mail_app, digest_id)[leaving] == DeliveryStatus.SKIPPED
    assert leaving not in per_recipient(smtp_server)
    assert sum(per_recipient(smtp_server).values()) == result.counts[DeliveryStatus.SENT] == 4


def test_a_message_that_could_not_be_composed_ahead_fails_at_its_turn_alone(
    mail_app: Flask, smtp_server: MailServer
) -> None:
    digest_id = queued_digest(mail_app, 5)
    broken = address(2)

    def fail(delivery: ClaimedDelivery) -> None:
        if delivery.person.email == broken:
            raise ValueError("no domain can have this address")

    one_worker = replace(FAST, workers=1, batch=5)
    result = sender_composing(mail_app, digest_id, one_worker, fail).run()
    assert result.outcome is Outcome.COMPLETE
    assert states(mail_app, digest_id)[broken] == DeliveryStatus.FAILED
    assert sorted(per_recipient(smtp_server)) == [address(n) for n in (0, 1, 3, 4)]


def test_each_message_is_composed_once_however_far_ahead(
    mail_app: Flask, smtp_server: MailServer
) -> None:
    digest_id = queued_digest(mail_app, 12)
    composed: Counter[str] = Counter()

    def count(delivery: ClaimedDelivery) -> None:
        composed[delivery.person.email] += 1

    two_workers = replace(FAST, workers=2, batch=5)
    assert sender_composing(mail_app, digest_id, two_workers, count).run().outcome is (
        Outcome.COMPLETE
    )
    assert composed == Counter({address(n): 1 for n in range(12)})
    assert per_recipient(smtp_server) == composed


class Unsignable(SignedLater):
    """A message whose signatures cannot be made."""

    def __init__(self) -> None:
        pass

    @property
    def data(self) -> bytes:
        raise ValueError("the signature could not be made")


def test_a_message_whose_signature_cannot_be_made_fails_alone(
    mail_app: Flask, smtp_server: MailServer
) -> None:
    digest_id = queued_digest(mail_app, 4)
    unsigned = address(1)

    def compose_unsignable(compose: Compose, delivery: ClaimedDelivery) -> Composed:
        message = compose(delivery)
        if delivery.person.email != unsigned or not isinstance(message, Outgoing):
            return message
        return Outgoing(message.message_id, Unsignable())

    one_worker = replace(FAST, workers=1, batch=4)
    send = sender_composing_through(mail_app, digest_id, one_worker, compose_unsignable)
    assert send.run().outcome is Outcome.COMPLETE
    assert states(mail_app, digest_id)[unsigned] == DeliveryStatus.FAILED
    assert sorted(per_recipient(smtp_server)) == [address(n) for n in (0, 2, 3)]


def delivery_ids(app: Flask, digest_id: int) -> list[int]:
    with session_factory(app)() as session:
        return list(session.scalars(select(Delivery.id).where(Delivery.digest_id == digest_id)))


def test_a_batch_sent_at_once_to_a_server_out_of_reach_stays_queued_untried(
    mail_app: Flask, smtp_server: MailServer
) -> None:
    """The first delivery of a batch sent at once is marked ``sending`` with its claim; when
    the server cannot be reached it goes back to the queue with the rest, no try counted,
    and each goes once the server is back."""
    digest_id = queued_digest(mail_app, 3)
    smtp_server.stop()
    counts = sender(mail_app, digest_id).send_now(delivery_ids(mail_app, digest_id))
    assert counts[DeliveryStatus.SENT] == 0
    with session_factory(mail_app)() as session:
        rows = session.execute(
            select(Delivery.status, Delivery.attempts).where(Delivery.digest_id == digest_id)
        ).all()
    assert rows == [(DeliveryStatus.QUEUED, 0)] * 3
    smtp_server.start()
    counts = sender(mail_app, digest_id).send_now(delivery_ids(mail_app, digest_id))
    assert counts[DeliveryStatus.SENT] == 3
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(3)})


def test_a_message_no_longer_due_is_composed_once_and_skipped(
    mail_app: Flask, smtp_server: MailServer
) -> None:
    digest_id = queued_digest(mail_app, 4)
    gone = address(2)
    composed: Counter[str] = Counter()

    def compose_or_nothing(compose: Compose, delivery: ClaimedDelivery) -> Composed:
        composed[delivery.person.email] += 1
        return None if delivery.person.email == gone else compose(delivery)

    one_worker = replace(FAST, workers=1, batch=4)
    send = sender_composing_through(mail_app, digest_id, one_worker, compose_or_nothing)
    assert send.run().outcome is Outcome.COMPLETE
    assert composed == Counter({address(n): 1 for n in range(4)})
    assert states(mail_app, digest_id)[gone] == DeliveryStatus.SKIPPED
    assert sorted(per_recipient(smtp_server)) == [address(n) for n in (0, 1, 3)]
