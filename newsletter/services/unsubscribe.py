"""Leaving: a signed link takes a subscriber off the list, once, however often it is used.

Mail providers send the RFC 8058 one-click POST, people press the button, scanners and
retries repeat both: the state changes with one conditional UPDATE, so only the request that
wins records the withdrawal, and every other one finds the work done.
"""

from __future__ import annotations

from sqlalchemy import ColumnElement, select, update
from sqlalchemy.orm import Session

from newsletter.db import rowcount, utcnow
from newsletter.models import (
    ConsentKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.services.consent import Evidence, latest_given_event, record_event
from newsletter.services.errors import LinkNoLongerValid
from newsletter.tokens import TokenData

__all__ = ["SKIPPED_REASON", "unsubscribe", "withdraw"]

# Kept on each delivery the withdrawal cancels, so staff can tell why it never went out.
SKIPPED_REASON = "subscriber unsubscribed"


def unsubscribe(session: Session, data: TokenData, evidence: Evidence) -> Subscriber:
    """Unsubscribe the person an unsubscribe token names; repeating it changes nothing.

    The first call sets the status to ``unsubscribed``, records a ``withdrawn`` consent event
    and marks every delivery still ``queued`` for them (digests, confirmation emails) as
    ``skipped``. A pending person who did not ask for the subscription leaves the same way.
    Raises :class:`~newsletter.services.errors.LinkNoLongerValid` when the subscriber is gone
    or the token's nonce is not theirs; nothing is changed then.
    """
    subscriber, _ = withdraw(
        session,
        (Subscriber.id == data.subscriber_id, Subscriber.token_nonce == data.nonce),
        ConsentKind.WITHDRAWN,
        evidence,
    )
    if subscriber is None:
        raise LinkNoLongerValid("this link is no longer valid")
    return subscriber


def withdraw(
    session: Session,
    who: tuple[ColumnElement[bool], ...],
    kind: ConsentKind,
    evidence: Evidence,
) -> tuple[Subscriber | None, bool]:
    """Take the subscriber ``who`` selects off the list, once: the subscriber (None when
    nobody matches) and whether this call did it.

    The call that changes the status records a withdrawal event of ``kind`` (``withdrawn``
    for a link, ``complaint`` for a spam report) and skips every delivery still queued.
    """
    now = utcnow()
    # The UPDATE is the transaction's first statement on purpose. On SQLite a transaction that
    # writes before reading waits for the write lock (busy timeout); one that read first holds
    # a snapshot a racing writer makes stale, and SQLite fails it at once. On PostgreSQL the
    # row lock makes racing requests wait, re-check the status and match nothing.
    changed = rowcount(
        session.execute(
            update(Subscriber)
            .where(*who, Subscriber.status != SubscriberStatus.UNSUBSCRIBED)
            .values(status=SubscriberStatus.UNSUBSCRIBED, unsubscribed_at=now, updated_at=now)
            .execution_options(synchronize_session=False)
        )
    )
    subscriber = session.scalar(select(Subscriber).where(*who))
    if subscriber is None:
        return None, False
    session.refresh(subscriber)
    if changed != 1:
        return subscriber, False
    given = latest_given_event(session, subscriber)
    record_event(
        session,
        subscriber.id,
        kind,
        evidence,
        given.statement_id if given is not None else None,
        at=now,
    )
    session.execute(
        update(Delivery)
        .where(Delivery.subscriber_id == subscriber.id, Delivery.status == DeliveryStatus.QUEUED)
        .values(status=DeliveryStatus.SKIPPED, last_error=SKIPPED_REASON)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return subscriber, True
