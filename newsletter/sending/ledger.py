"""The deliveries table as the sender sees it: queue, claim, mark, resolve, take back.

Every function here is one short transaction's worth of work; none is ever called with a
transaction open across SMTP I/O. State changes are conditional on the claim (``claimed_by``)
so a sender that lost its lease can never overwrite another sender's outcome.
"""

from __future__ import annotations

import os
import random
import socket
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import (
    BindParameter,
    ColumnElement,
    Select,
    String,
    Update,
    and_,
    bindparam,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.engine import Connection
from sqlalchemy.orm import Session

from newsletter.db import UTCDateTime, rowcount, utcnow
from newsletter.models import (
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.people import person_in, with_person
from newsletter.sending.jobs import ClaimedDelivery, Job

__all__ = [
    "MARK_SENDING",
    "marking",
    "RECORD_SENT",
    "SKIP",
    "Backoff",
    "claim_and_mark_at_once",
    "claim_batch",
    "counts",
    "expire_dead_claims",
    "finish_digest",
    "mark_sending",
    "queue_digest",
    "record_accepted",
    "record_sent",
    "release",
    "reopen_digest",
    "renew",
    "resend_unknown",
    "resolve",
    "sender_id",
    "skip",
    "take_back_expired",
    "waiting_summary",
]

#: Every function here runs its statements on whatever it is given: a Core connection on the
#: sender's hot path (much cheaper per statement), or a Session elsewhere.
SessionOrConnection = Connection | Session

OPEN_STATES = (DeliveryStatus.QUEUED, DeliveryStatus.SENDING)


def sender_id() -> str:
    """Names a sending process: host, pid and a random part (pids are reused)."""
    return f"{socket.gethostname()}:{os.getpid()}:{os.urandom(4).hex()}"


def queue_digest(db: SessionOrConnection, digest_id: int) -> int | None:
    """On a digest's first send, queue one delivery per active subscriber in one statement.

    Returns how many were queued, or None when the digest was already queued earlier (people
    who joined since are not part of it).
    """
    now = utcnow()
    started = rowcount(
        db.execute(
            update(Digest)
            .where(Digest.id == digest_id, Digest.status == DigestStatus.DRAFT)
            .values(status=DigestStatus.SENDING, send_started_at=now)
        )
    )
    if started != 1:
        return None
    recipients = select(
        literal(DeliveryKind.DIGEST.value),
        literal(digest_id),
        Subscriber.id,
        literal(DeliveryStatus.QUEUED.value),
        literal(0),
        literal(now, UTCDateTime()),
    ).where(Subscriber.status == SubscriberStatus.ACTIVE)
    db.execute(
        insert(Delivery).from_select(
            ["kind", "digest_id", "subscriber_id", "status", "attempts", "created_at"],
            recipients,
        )
    )
    # Counted rather than read from rowcount, which not every driver reports for INSERT…SELECT.
    queued = db.scalar(select(func.count()).where(Delivery.digest_id == digest_id))
    return queued or 0


def resend_unknown(db: SessionOrConnection, job: Job) -> int:
    """Staff's explicit choice: deliveries whose outcome is unknown are sent again."""
    return rowcount(
        db.execute(
            update(Delivery)
            .where(job.scope(), Delivery.status == DeliveryStatus.UNKNOWN)
            .values(status=DeliveryStatus.QUEUED, claimed_by=None, claimed_until=None)
        )
    )


def expire_dead_claims(db: SessionOrConnection, job: Job, now: datetime) -> int:
    """Claims held by a process on this host that no longer exists end now, not at lease end."""
    holders = db.scalars(
        select(Delivery.claimed_by)
        .where(job.scope(), Delivery.status.in_(OPEN_STATES), Delivery.claimed_until >= now)
        .distinct()
    ).all()
    host = socket.gethostname()
    dead = [holder for holder in holders if holder and _is_dead_local(holder, host)]
    if not dead:
        return 0
    return rowcount(
        db.execute(
            update(Delivery)
            .where(job.scope(), Delivery.claimed_by.in_(dead))
            .values(claimed_until=now - timedelta(seconds=1))
        )
    )


def _is_dead_local(holder: str, host: str) -> bool:
    name, _, rest = holder.partition(":")
    pid_text = rest.partition(":")[0]
    if name != host or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def take_back_expired(db: SessionOrConnection, job: Job, now: datetime) -> int:
    """After a crash: ``sending`` rows whose lease ran out may have gone out, so they become
    ``unknown``; expired ``queued`` claims simply become claimable again."""
    return rowcount(
        db.execute(
            update(Delivery)
            .where(
                job.scope(),
                Delivery.status == DeliveryStatus.SENDING,
                Delivery.claimed_until < now,
            )
            .values(
                status=DeliveryStatus.UNKNOWN,
                claimed_by=None,
                claimed_until=None,
                last_error="the sender stopped during the SMTP transaction; outcome unknown",
            )
        )
    )


def _claimable(job: Job, now: datetime | BindParameter[datetime]) -> list[ColumnElement[bool]]:
    return [
        job.scope(),
        Delivery.status == DeliveryStatus.QUEUED,
        or_(Delivery.next_attempt_at.is_(None), Delivery.next_attempt_at <= now),
        or_(Delivery.claimed_until.is_(None), Delivery.claimed_until < now),
    ]


def claim_batch(
    db: SessionOrConnection,
    job: Job,
    owner: str,
    size: int,
    lease: timedelta,
    only: list[int] | None = None,
) -> list[ClaimedDelivery]:
    """Lease up to ``size`` queued deliveries (of ``only``, if given) to ``owner``.

    On PostgreSQL ``FOR UPDATE SKIP LOCKED`` lets several senders claim side by side, and the
    claim is one statement, so it is atomic even on an autocommit connection. On SQLite the
    transaction holds the write lock from BEGIN, which serialises claims.
    """
    now = utcnow()
    conditions = _claimable(job, now)
    if only is not None:
        conditions.append(Delivery.id.in_(only))
    picked = (
        select(Delivery.id)
        .where(*conditions)
        .order_by(Delivery.id)
        .limit(size)
        .with_for_update(skip_locked=True)
    )
    claim = update(Delivery).values(claimed_by=owner, claimed_until=now + lease)
    if _dialect(db) == "postgresql":
        claimed = (
            claim.where(Delivery.id.in_(picked.scalar_subquery()))
            .returning(Delivery.id, Delivery.subscriber_id)
            .cte("claimed")
        )
        rows = db.execute(
            _addressed(claimed.c.id, claimed.c.subscriber_id).order_by(claimed.c.id)
        ).all()
    else:
        ids = db.scalars(picked).all()
        if not ids:
            return []
        db.execute(claim.where(Delivery.id.in_(ids)))
        rows = db.execute(
            _addressed(Delivery.id.expression, Delivery.subscriber_id.expression)
            .where(Delivery.id.in_(ids))
            .order_by(Delivery.id)
        ).all()
    return _with_people(db, owner, rows)


def _with_people(db: SessionOrConnection, owner: str, rows: Sequence[Any]) -> list[ClaimedDelivery]:
    """The claimed deliveries of ``rows`` (delivery id first, the person last), each with
    its person; one whose subscriber was erased after being queued is skipped (nothing to
    send, nobody to send to)."""
    claimed = []
    for row in rows:
        person = person_in(row)
        if person is None:
            skip(db, owner, row[0])
            continue
        claimed.append(ClaimedDelivery(row[0], person))
    return claimed


def claim_and_mark_at_once(
    db: Connection, job: Job, owner: str, size: int, lease: timedelta, only: list[int]
) -> tuple[list[ClaimedDelivery], bool]:
    """PostgreSQL: lease up to ``size`` queued deliveries of ``only`` to ``owner`` and mark
    the first of them ``sending`` (if its subscriber is still ``job.eligible``) in one
    statement, which a batch sent at once (a confirmation email) starts with. Returns them
    and whether the first may be sent; if not, it is already ``skipped``. The statement is
    built once per job."""
    statement = _CLAIMS_AND_MARKS.get(job)
    if statement is None:
        statement = _CLAIMS_AND_MARKS[job] = _claim_and_mark_statement(job)
    now = utcnow()
    rows = db.execute(
        statement,
        {"b_now": now, "b_until": now + lease, "b_owner": owner, "b_size": size, "b_only": only},
    ).all()
    batch = _with_people(db, owner, rows)
    if not batch:
        return [], False
    if batch[0].id == rows[0][0]:
        if rows[0][1] == DeliveryStatus.SENDING:
            return batch, True
        skip(db, owner, batch[0].id)
        return batch, False
    # The delivery marked first went to someone erased: the next is marked on its own.
    return batch, mark_sending(db, job, owner, batch[0].id)


def _claim_and_mark_statement(job: Job) -> Select[Any]:
    picked = (
        select(Delivery.id)
        .where(
            *_claimable(job, bindparam("b_now", type_=UTCDateTime())),
            Delivery.id.in_(bindparam("b_only", expanding=True)),
        )
        .order_by(Delivery.id)
        .limit(bindparam("b_size"))
        .with_for_update(skip_locked=True)
        .cte("picked")
    )
    # Read twice (the lowest id, the join): PostgreSQL runs the locking select once.
    first = and_(
        Delivery.id == select(func.min(picked.c.id)).scalar_subquery(),
        _may_receive([literal(state.value, String()) for state in job.eligible]),
    )
    claimed = (
        update(Delivery)
        .where(Delivery.id == picked.c.id)
        .values(
            claimed_by=bindparam("b_owner"),
            claimed_until=bindparam("b_until", type_=UTCDateTime()),
            status=case((first, literal(DeliveryStatus.SENDING.value)), else_=Delivery.status),
            attempts=case((first, Delivery.attempts + 1), else_=Delivery.attempts),
        )
        .returning(Delivery.id, Delivery.subscriber_id, Delivery.status)
        .cte("claimed")
    )
    return (
        with_person(claimed.c.id, claimed.c.status)
        .join(Subscriber, Subscriber.id == claimed.c.subscriber_id, isouter=True)
        .order_by(claimed.c.id)
    )


_CLAIMS_AND_MARKS: WeakKeyDictionary[Job, Select[Any]] = WeakKeyDictionary()


def _addressed(
    delivery_id: ColumnElement[int], subscriber_id: ColumnElement[int | None]
) -> Select[Any]:
    """Claimed deliveries and the person each goes to (nobody once erased)."""
    return with_person(delivery_id).join(Subscriber, Subscriber.id == subscriber_id, isouter=True)


def _dialect(db: SessionOrConnection) -> str:
    bind = db.get_bind() if isinstance(db, Session) else db
    return bind.dialect.name


def _may_receive(
    eligible: BindParameter[Any] | Sequence[ColumnElement[str]],
) -> ColumnElement[bool]:
    """The delivery's subscriber is still in one of the ``eligible`` states."""
    return exists().where(Subscriber.id == Delivery.subscriber_id, Subscriber.status.in_(eligible))


# The two statements every message runs, built once: their compiled form is cached, and
# they run as Core statements, without the ORM's per-statement work.
def marking(eligible: BindParameter[Any] | Sequence[ColumnElement[str]]) -> Update:
    """Mark a claimed, still queued delivery ``sending`` if its subscriber is ``eligible``."""
    return (
        update(Delivery)
        .where(
            Delivery.id == bindparam("b_id"),
            Delivery.claimed_by == bindparam("b_owner"),
            Delivery.status == DeliveryStatus.QUEUED,
            _may_receive(eligible),
        )
        .values(status=DeliveryStatus.SENDING, attempts=Delivery.attempts + 1)
    )


MARK_SENDING = marking(bindparam("b_eligible", expanding=True))
RECORD_SENT = (
    update(Delivery)
    .where(Delivery.id == bindparam("b_sent_id"), Delivery.claimed_by == bindparam("b_owner"))
    .values(
        status=DeliveryStatus.SENT,
        sent_at=bindparam("b_at"),
        message_id=bindparam("b_message_id"),
        last_error=None,
        claimed_by=None,
        claimed_until=None,
    )
)


def mark_sending(db: SessionOrConnection, job: Job, owner: str, delivery_id: int) -> bool:
    """Just before the SMTP transaction: ``sending``, if the claim is still ours and the
    subscriber may still receive it. Otherwise a still-claimed row is ``skipped``."""
    params = {"b_id": delivery_id, "b_owner": owner, "b_eligible": list(job.eligible)}
    if rowcount(db.execute(MARK_SENDING, params)):
        return True
    skip(db, owner, delivery_id)
    return False


def record_sent(db: SessionOrConnection, owner: str, delivery_id: int, message_id: str) -> bool:
    """The server accepted the message."""
    params = {
        "b_sent_id": delivery_id,
        "b_owner": owner,
        "b_at": utcnow(),
        "b_message_id": message_id,
    }
    return rowcount(db.execute(RECORD_SENT, params)) == 1


def record_accepted(db: SessionOrConnection, owner: str, accepted: list[tuple[int, str]]) -> int:
    """Record each (delivery id, Message-ID) the server accepted, empty ``accepted`` and
    return how many there were."""
    for delivery_id, message_id in accepted:
        record_sent(db, owner, delivery_id, message_id)
    recorded = len(accepted)
    accepted.clear()
    return recorded


SKIP = (
    update(Delivery)
    .where(
        Delivery.id == bindparam("b_id"),
        Delivery.claimed_by == bindparam("b_owner"),
        # One parameter per state, not an expanding list: a driver's cursor can run the
        # statement as compiled (``newsletter.sending.message_writes``).
        Delivery.status.in_([literal(state.value, String()) for state in OPEN_STATES]),
    )
    .values(status=DeliveryStatus.SKIPPED, claimed_by=None, claimed_until=None)
)


def skip(db: SessionOrConnection, owner: str, delivery_id: int, reason: str | None = None) -> None:
    """A claimed delivery that will not be sent; ``reason``, when given, is kept as its last
    error."""
    statement = SKIP if reason is None else SKIP.values(last_error=reason)
    db.execute(statement, {"b_id": delivery_id, "b_owner": owner})


@dataclass(frozen=True)
class Backoff:
    """Exponential back-off with jitter for 4xx answers."""

    first: float = 1.0
    attempts: int = 5

    def delay(self, attempt: int) -> timedelta:
        base = self.first * 2 ** max(attempt - 1, 0)
        return timedelta(seconds=base * random.uniform(0.75, 1.25))


def resolve(
    db: SessionOrConnection,
    owner: str,
    delivery_id: int,
    status: DeliveryStatus,
    *,
    message_id: str | None = None,
    error: str | None = None,
    retry_at: datetime | None = None,
    uncount_attempt: bool = False,
) -> bool:
    """Record an outcome, if the claim is still ours. ``retry_at`` puts it back in the queue."""
    values: dict[str, object] = {"last_error": error[:1000] if error else None}
    if status == DeliveryStatus.SENT:
        values.update(sent_at=utcnow(), message_id=message_id)
    if retry_at is not None:
        values["next_attempt_at"] = retry_at
    if uncount_attempt:
        values["attempts"] = Delivery.attempts - 1
    values.update(status=status, claimed_by=None, claimed_until=None)
    return (
        rowcount(
            db.execute(
                update(Delivery)
                .where(Delivery.id == delivery_id, Delivery.claimed_by == owner)
                .values(**values)
            )
        )
        == 1
    )


def release(db: SessionOrConnection, owner: str, delivery_ids: list[int]) -> None:
    """Give back claimed rows that were never attempted (on stop), so others take them now."""
    if not delivery_ids:
        return
    db.execute(
        update(Delivery)
        .where(
            Delivery.id.in_(delivery_ids),
            Delivery.claimed_by == owner,
            Delivery.status == DeliveryStatus.QUEUED,
        )
        .values(claimed_by=None, claimed_until=None)
    )


def renew(db: SessionOrConnection, owner: str, lease: timedelta) -> None:
    """Keep this sender's claims alive while it runs.

    Rows a worker is updating at this moment are skipped, not waited for: a worker's
    per-message statement locks two rows in no fixed order, and waiting on it from a statement
    that locks many could deadlock. A skipped row keeps most of its lease and is renewed
    next time."""
    mine = (
        select(Delivery.id)
        .where(Delivery.claimed_by == owner, Delivery.status.in_(OPEN_STATES))
        .with_for_update(skip_locked=True)
    )
    db.execute(
        update(Delivery)
        .where(Delivery.id.in_(mine.scalar_subquery()))
        .values(claimed_until=utcnow() + lease)
    )


def counts(db: SessionOrConnection, scope: ColumnElement[bool]) -> Counter[str]:
    """Deliveries in ``scope`` per state (every state present, zero or not)."""
    result: Counter[str] = Counter({state.value: 0 for state in DeliveryStatus})
    for status, number in db.execute(
        select(Delivery.status, func.count()).where(scope).group_by(Delivery.status)
    ):
        result[status] = number
    return result


@dataclass(frozen=True)
class Waiting:
    """Why open deliveries cannot be claimed right now."""

    open: int
    held_by_others: int
    held_by_me: int
    next_claimable_at: datetime | None


def waiting_summary(db: SessionOrConnection, job: Job, owner: str) -> Waiting:
    now = utcnow()
    open_count = db.scalar(
        select(func.count()).where(job.scope(), Delivery.status.in_(OPEN_STATES))
    )
    mine, others = db.execute(
        select(
            func.count().filter(Delivery.claimed_by == owner),
            func.count().filter(Delivery.claimed_by != owner),
        ).where(
            job.scope(),
            Delivery.status.in_(OPEN_STATES),
            Delivery.claimed_until >= now,
        )
    ).one()
    lease_ends = db.scalar(
        select(func.min(Delivery.claimed_until)).where(
            job.scope(), Delivery.status.in_(OPEN_STATES), Delivery.claimed_until >= now
        )
    )
    retry_due = db.scalar(
        select(func.min(Delivery.next_attempt_at)).where(
            job.scope(), Delivery.status == DeliveryStatus.QUEUED, Delivery.next_attempt_at > now
        )
    )
    moments = [moment for moment in (lease_ends, retry_due) if moment is not None]
    next_at = min(moments) if moments else None
    return Waiting(open_count or 0, others or 0, mine or 0, next_at)


def reopen_digest(db: SessionOrConnection, digest_id: int) -> None:
    """A sent digest with deliveries queued again (``--resend-unknown``) is sending again."""
    db.execute(
        update(Digest)
        .where(Digest.id == digest_id, Digest.status == DigestStatus.SENT)
        .values(status=DigestStatus.SENDING, sent_at=None)
    )


def finish_digest(db: SessionOrConnection, digest_id: int) -> bool:
    """The digest is ``sent`` once nothing of it is queued or sending."""
    still_open = exists().where(Delivery.digest_id == digest_id, Delivery.status.in_(OPEN_STATES))
    return (
        rowcount(
            db.execute(
                update(Digest)
                .where(Digest.id == digest_id, Digest.status == DigestStatus.SENDING, ~still_open)
                .values(status=DigestStatus.SENT, sent_at=utcnow())
            )
        )
        == 1
    )
