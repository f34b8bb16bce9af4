"""The per-message write: record the last message sent and mark the next one sending, as one
commit (one statement on PostgreSQL), only while the claim is this sender's."""

from __future__ import annotations

import fcntl
import os
import sqlite3
import threading
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select, text, update

from newsletter.app_db import get_engine, session_factory
from newsletter.db import create_db_engine, utcnow
from newsletter.models import Delivery, DeliveryStatus, Subscriber, SubscriberStatus
from newsletter.sending import ledger
from newsletter.sending.jobs import ClaimedDelivery
from newsletter.sending.message_writes import (
    DriverWrites,
    MessageWrites,
    StatementWrites,
    message_writes,
)
from tests.sending_support import plain_job, queued_digest
from tests.support.statements import statements

OWNER = "this-host:1:aaaa"
Queue = tuple[MessageWrites, list[ClaimedDelivery]]


def claimed(app: Flask, digest_id: int, size: int, owner: str = OWNER) -> list[ClaimedDelivery]:
    with get_engine(app).begin() as db:
        return ledger.claim_batch(db, plain_job(app, digest_id), owner, size, timedelta(seconds=30))


def row(app: Flask, delivery_id: int) -> Delivery:
    with session_factory(app)() as session:
        return session.execute(select(Delivery).where(Delivery.id == delivery_id)).scalar_one()


@pytest.fixture
def queue(app: Flask) -> Iterator[Queue]:
    """A sender's writes and the four deliveries it has claimed."""
    digest_id = queued_digest(app, 4)
    writes = message_writes(get_engine(app), plain_job(app, digest_id), OWNER)
    yield writes, claimed(app, digest_id, 4)
    writes.close()


def test_each_database_takes_its_own_driver_path(app: Flask, queue: Queue) -> None:
    writes, _ = queue
    expected = {StatementWrites: "postgresql", DriverWrites: "sqlite"}[type(writes)]
    assert get_engine(app).dialect.name == expected


def writers_queue_taken(app: Flask) -> bool:
    """Whether some connection holds the SQLite writers' lock (looked at as another process)."""
    fd = os.open(f"{get_engine(app).url.database}-writers", os.O_RDWR)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)
    return False


# SQLite only: the per-message transaction runs on the driver's connection, outside the engine.
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_the_sqlite_write_waits_its_turn_on_the_writers_lock(app: Flask, queue: Queue) -> None:
    writes, (first, *_) = queue
    other_writer_open = threading.Event()
    let_go = threading.Event()

    def other_writer() -> None:
        with get_engine(app).begin() as db:
            db.execute(text("SELECT 1"))
            other_writer_open.set()
            let_go.wait(10)

    holder = threading.Thread(target=other_writer)
    holder.start()
    assert other_writer_open.wait(10)
    done: list[tuple[int, bool]] = []
    waiter = threading.Thread(target=lambda: done.append(writes.advance([], first.id)))
    waiter.start()
    waiter.join(0.3)
    assert done == [] and waiter.is_alive()
    let_go.set()
    holder.join(10)
    waiter.join(10)
    assert done == [(0, True)]
    assert row(app, first.id).status == DeliveryStatus.SENDING
    assert not writers_queue_taken(app)


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_a_failed_sqlite_write_changes_nothing_and_lets_go(app: Flask, queue: Queue) -> None:
    writes, (first, second, third, _) = queue
    writes.advance([], first.id)
    writes.advance([(first.id, "<1@example.org>")], second.id)
    # The second Message-ID cannot be stored, after the first record ran in the transaction.
    accepted: list[tuple[int, Any]] = [(second.id, "<2@example.org>"), (third.id, object())]
    with pytest.raises(sqlite3.Error):
        writes.advance(accepted, third.id)
    assert row(app, second.id).status == DeliveryStatus.SENDING
    assert row(app, third.id).status == DeliveryStatus.QUEUED
    assert len(accepted) == 2
    assert not writers_queue_taken(app)
    # The worker's connection goes on.
    assert writes.advance(accepted[:1], third.id) == (1, True)
    assert row(app, second.id).status == DeliveryStatus.SENT


def test_advance_records_the_last_and_marks_the_next(app: Flask, queue: Queue) -> None:
    writes, (first, second, *_) = queue
    accepted: list[tuple[int, str]] = []

    assert writes.advance(accepted, first.id) == (0, True)
    assert row(app, first.id).status == DeliveryStatus.SENDING
    assert row(app, first.id).attempts == 1

    accepted.append((first.id, "<first@example.org>"))
    assert writes.advance(accepted, second.id) == (1, True)
    assert accepted == []
    done, next_one = row(app, first.id), row(app, second.id)
    assert (done.status, done.message_id, done.claimed_by) == (
        DeliveryStatus.SENT,
        "<first@example.org>",
        None,
    )
    assert done.sent_at is not None
    assert next_one.status == DeliveryStatus.SENDING

    accepted.append((second.id, "<second@example.org>"))
    assert writes.record(accepted) == 1
    assert row(app, second.id).status == DeliveryStatus.SENT


def test_several_accepted_are_all_recorded(app: Flask, queue: Queue) -> None:
    writes, (one, two, three, _) = queue
    for delivery in (one, two):
        writes.advance([], delivery.id)
    accepted = [(one.id, "<1@example.org>"), (two.id, "<2@example.org>")]
    assert writes.advance(accepted, three.id) == (2, True)
    assert [row(app, d.id).status for d in (one, two, three)] == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.SENDING,
    ]


def test_someone_who_left_is_skipped_and_the_last_still_recorded(app: Flask, queue: Queue) -> None:
    writes, (first, leaver, *_) = queue
    writes.advance([], first.id)
    with session_factory(app).begin() as session:
        session.execute(
            update(Subscriber)
            .where(Subscriber.id == leaver.person.id)
            .values(status=SubscriberStatus.UNSUBSCRIBED)
        )
    assert writes.advance([(first.id, "<1@example.org>")], leaver.id) == (1, False)
    assert row(app, first.id).status == DeliveryStatus.SENT
    assert row(app, leaver.id).status == DeliveryStatus.SKIPPED


def test_a_claim_that_is_no_longer_ours_is_left_alone(app: Flask, queue: Queue) -> None:
    writes, (first, taken, *_) = queue
    writes.advance([], first.id)
    with session_factory(app).begin() as session:
        # Our lease ran out and another sender claimed and marked the row.
        session.execute(
            update(Delivery)
            .where(Delivery.id.in_([first.id, taken.id]))
            .values(claimed_by="other-host:2:bbbb", status=DeliveryStatus.SENDING)
        )
    assert writes.advance([(first.id, "<1@example.org>")], taken.id)[1] is False
    # Neither the record nor the skip touched the other sender's rows.
    for delivery in (first, taken):
        stored = row(app, delivery.id)
        assert (stored.status, stored.claimed_by) == (DeliveryStatus.SENDING, "other-host:2:bbbb")
        assert stored.message_id is None


def test_claims_record_the_last_message_and_never_overlap(app: Flask) -> None:
    digest_id = queued_digest(app, 5)
    job = plain_job(app, digest_id)
    ours = message_writes(get_engine(app), job, OWNER)
    theirs = message_writes(get_engine(app), job, "other-host:2:bbbb")
    try:
        recorded, first = ours.claim([], 2, timedelta(seconds=30))
        assert (recorded, len(first)) == (0, 2)
        ours.advance([], first[0].id)
        _, second = theirs.claim([], 2, timedelta(seconds=30))
        recorded, third = ours.claim([(first[0].id, "<1@example.org>")], 5, timedelta(seconds=30))
    finally:
        ours.close()
        theirs.close()
    assert recorded == 1
    assert row(app, first[0].id).status == DeliveryStatus.SENT
    ids = [d.id for d in first + second + third]
    assert sorted(ids) == sorted(set(ids)) and len(ids) == 5
    assert {row(app, d.id).claimed_by for d in second} == {"other-host:2:bbbb"}
    assert {row(app, d.id).claimed_by for d in third} == {OWNER}
    assert third[0].person.email.endswith("@example.org")
    assert third[0].person.first_name.startswith("First")


def test_a_delivery_whose_subscriber_was_erased_is_skipped_at_claim(app: Flask) -> None:
    digest_id = queued_digest(app, 3)
    with session_factory(app).begin() as session:
        erased = session.scalars(select(Delivery.id).order_by(Delivery.id)).first()
        session.execute(update(Delivery).where(Delivery.id == erased).values(subscriber_id=None))
    writes = message_writes(get_engine(app), plain_job(app, digest_id), OWNER)
    try:
        _, batch = writes.claim([], 10, timedelta(seconds=30))
    finally:
        writes.close()
    assert erased is not None and erased not in [d.id for d in batch]
    assert len(batch) == 2
    assert row(app, erased).status == DeliveryStatus.SKIPPED


# PostgreSQL only: SQLite has no row locks, its writers queue for the whole database.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_lease_renewal_skips_a_row_being_updated_instead_of_waiting(
    app: Flask, database_url: str
) -> None:
    digest_id = queued_digest(app, 3)
    busy, *others = claimed(app, digest_id, 3)
    leases = {d.id: row(app, d.id).claimed_until for d in (busy, *others)}
    worker = create_db_engine(database_url)
    try:
        with worker.connect() as statement_in_flight:
            # A worker's per-message statement holding its row, as it does for a moment.
            statement_in_flight.execute(
                select(Delivery.id).where(Delivery.id == busy.id).with_for_update()
            )
            with get_engine(app).begin() as db:
                db.execute(text("SET LOCAL lock_timeout = '2s'"))
                ledger.renew(db, OWNER, timedelta(hours=1))
            statement_in_flight.rollback()
    finally:
        worker.dispose()
    assert row(app, busy.id).claimed_until == leases[busy.id]
    for delivery in others:
        renewed = row(app, delivery.id).claimed_until
        assert renewed is not None and renewed - leases[delivery.id] > timedelta(minutes=50)


def test_work_given_to_do_meanwhile_is_done_once_and_the_mark_still_made(
    app: Flask, queue: Queue
) -> None:
    writes, (first, second, *_) = queue
    done: list[str] = []
    writes.advance([], first.id, meanwhile=lambda: done.append("first"))
    assert writes.advance(
        [(first.id, "<1@example.org>")], second.id, meanwhile=lambda: done.append("second")
    ) == (1, True)
    assert done == ["first", "second"]
    assert [row(app, d.id).status for d in (first, second)] == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENDING,
    ]


def backend_waits_on_a_lock(app: Flask, pid: int) -> bool:
    with get_engine(app).connect() as db:
        return bool(
            db.scalar(
                text("SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = :pid"),
                {"pid": pid},
            )
        )


# PostgreSQL only: there the statement goes out before the work, which the server's time
# hides; SQLite writes in this process.
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_the_work_meanwhile_is_done_while_the_server_runs_the_mark(
    app: Flask, queue: Queue
) -> None:
    writes, (first, second, *_) = queue
    assert isinstance(writes, StatementWrites)
    writes.advance([], first.id)
    pid = writes.db.connection.driver_connection.info.backend_pid  # type: ignore[union-attr]
    holder = get_engine(app).connect()
    holder.execute(select(Delivery.id).where(Delivery.id == second.id).with_for_update())
    # Should the work not run while the statement waits, the statement gives up after a while.
    writes.db.execute(text("SET lock_timeout = '10s'"))
    seen_waiting: list[bool] = []

    def meanwhile() -> None:
        # The mark has reached the server and waits there for the row held above.
        pause = threading.Event()
        for _ in range(100):
            if backend_waits_on_a_lock(app, pid):
                seen_waiting.append(True)
                break
            pause.wait(0.05)
        holder.rollback()

    try:
        result = writes.advance([(first.id, "<1@example.org>")], second.id, meanwhile)
    finally:
        holder.close()
    assert seen_waiting == [True]
    assert result == (1, True)
    assert row(app, second.id).status == DeliveryStatus.SENDING


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_mark_is_prepared_once_on_a_connection_that_later_writers_reuse(
    app: Flask, database_url: str
) -> None:
    digest_id = queued_digest(app, 3)
    first, second, third = claimed(app, digest_id, 3)
    job = plain_job(app, digest_id)
    # One connection, which each worker's writes get in turn from the pool.
    engine = create_db_engine(database_url, pool_size=1, max_overflow=0)
    try:
        for sent, marking in ((None, first), (first, second), (second, third)):
            writes = message_writes(engine, job, OWNER)
            accepted = [(sent.id, f"<{sent.id}@example.org>")] if sent else []
            try:
                writes.advance(accepted, marking.id)
            finally:
                writes.close()
        with engine.connect() as db:
            prepared = db.scalar(
                text("SELECT count(*) FROM pg_prepared_statements WHERE name LIKE 'newsletter%'")
            )
    finally:
        engine.dispose()
    assert prepared == 1
    assert [row(app, d.id).status for d in (first, second, third)] == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.SENDING,
    ]


def test_an_error_in_the_work_meanwhile_leaves_the_mark_made_and_the_writes_usable(
    app: Flask, queue: Queue
) -> None:
    writes, (first, second, third, _) = queue
    writes.advance([], first.id)

    def failing() -> None:
        raise RuntimeError("composing failed")

    with pytest.raises(RuntimeError):
        writes.advance([(first.id, "<1@example.org>")], second.id, failing)
    assert writes.advance([(second.id, "<2@example.org>")], third.id) == (1, True)
    assert [row(app, d.id).status for d in (first, second, third)] == [
        DeliveryStatus.SENT,
        DeliveryStatus.SENT,
        DeliveryStatus.SENDING,
    ]


def batch_at_once(app: Flask, size: int) -> tuple[MessageWrites, list[int]]:
    """Writes for a batch sent at once, and the ids of ``size`` queued deliveries."""
    digest_id = queued_digest(app, size)
    with session_factory(app)() as session:
        ids = list(session.scalars(select(Delivery.id).where(Delivery.digest_id == digest_id)))
    return message_writes(get_engine(app), plain_job(app, digest_id), OWNER), sorted(ids)


def leave(app: Flask, delivery_id: int, **values: Any) -> None:
    """Change the subscriber of ``delivery_id``: unsubscribe them, or erase them."""
    with session_factory(app).begin() as session:
        subscriber_id = session.get_one(Delivery, delivery_id).subscriber_id
        if values.get("erased"):
            session.execute(
                update(Delivery).where(Delivery.id == delivery_id).values(subscriber_id=None)
            )
        else:
            session.execute(
                update(Subscriber)
                .where(Subscriber.id == subscriber_id)
                .values(status=SubscriberStatus.UNSUBSCRIBED)
            )


def test_a_batch_sent_at_once_is_claimed_with_its_first_marked(app: Flask) -> None:
    writes, ids = batch_at_once(app, 4)
    try:
        batch, marked = writes.claim_and_mark(10, timedelta(seconds=30), ids[:3])
    finally:
        writes.close()
    assert marked is True
    assert [d.id for d in batch] == ids[:3]
    first, *rest = (row(app, i) for i in ids)
    assert (first.status, first.attempts, first.claimed_by) == (DeliveryStatus.SENDING, 1, OWNER)
    assert [(r.status, r.attempts, r.claimed_by) for r in rest] == [
        (DeliveryStatus.QUEUED, 0, OWNER),
        (DeliveryStatus.QUEUED, 0, OWNER),
        (DeliveryStatus.QUEUED, 0, None),
    ]


def test_a_batch_whose_first_person_left_has_the_first_skipped(app: Flask) -> None:
    writes, ids = batch_at_once(app, 3)
    leave(app, ids[0])
    try:
        batch, marked = writes.claim_and_mark(10, timedelta(seconds=30), ids)
    finally:
        writes.close()
    assert (marked, [d.id for d in batch]) == (False, ids)
    assert [row(app, i).status for i in ids] == [
        DeliveryStatus.SKIPPED,
        DeliveryStatus.QUEUED,
        DeliveryStatus.QUEUED,
    ]


def test_a_batch_whose_first_person_was_erased_has_the_next_marked(app: Flask) -> None:
    writes, ids = batch_at_once(app, 3)
    leave(app, ids[0], erased=True)
    try:
        batch, marked = writes.claim_and_mark(10, timedelta(seconds=30), ids)
    finally:
        writes.close()
    assert (marked, [d.id for d in batch]) == (True, ids[1:])
    assert [(row(app, i).status, row(app, i).attempts) for i in ids] == [
        (DeliveryStatus.SKIPPED, 0),
        (DeliveryStatus.SENDING, 1),
        (DeliveryStatus.QUEUED, 0),
    ]


def test_a_batch_leaves_out_what_another_sender_holds(app: Flask) -> None:
    writes, ids = batch_at_once(app, 3)
    with session_factory(app).begin() as session:
        session.execute(
            update(Delivery)
            .where(Delivery.id == ids[0])
            .values(claimed_by="other-host:2:bbbb", claimed_until=utcnow() + timedelta(minutes=1))
        )
    try:
        batch, marked = writes.claim_and_mark(10, timedelta(seconds=30), ids)
    finally:
        writes.close()
    assert (marked, [d.id for d in batch]) == (True, ids[1:])
    assert row(app, ids[0]).claimed_by == "other-host:2:bbbb"
    assert row(app, ids[0]).status == DeliveryStatus.QUEUED


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_on_postgresql_a_batch_is_claimed_and_its_first_marked_in_one_statement(
    app: Flask,
) -> None:
    writes, ids = batch_at_once(app, 3)
    writes.claim_and_mark(10, timedelta(seconds=30), ids[:1])  # built, once for the job
    try:
        with statements(get_engine(app)) as seen:
            batch, marked = writes.claim_and_mark(10, timedelta(seconds=30), ids[1:])
    finally:
        writes.close()
    assert (marked, [d.id for d in batch]) == (True, ids[1:])
    assert len(seen) == 1


@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_the_mark_is_prepared_again_when_the_connection_lost_its_prepared_statements(
    app: Flask, queue: Queue
) -> None:
    writes, (first, second, third, _) = queue
    assert isinstance(writes, StatementWrites)
    writes.advance([], first.id)
    writes.advance([(first.id, "<1@example.org>")], second.id)
    # What psycopg does after a rollback on a connection where it prepared statements too.
    writes.db.execute(text("DEALLOCATE ALL"))
    assert writes.advance([(second.id, "<2@example.org>")], third.id) == (1, True)
    assert [(row(app, d.id).status, row(app, d.id).attempts) for d in (first, second, third)] == [
        (DeliveryStatus.SENT, 1),
        (DeliveryStatus.SENT, 1),
        (DeliveryStatus.SENDING, 1),
    ]
