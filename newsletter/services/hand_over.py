"""Emails queued in a transaction, handed on for sending once it commits.

Queueing writes a delivery in the caller's transaction and notes its id in the session; once
that transaction commits, the hook set up by :func:`hand_over_after_commit` hands the ids on
(the web process to its background dispatcher, an import to the outbox), and a rollback
forgets them. Confirmation and welcome emails go this way.
"""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

__all__ = ["QUEUED_KEY", "hand_over_after_commit", "note_queued"]

#: Where a session keeps the outbox deliveries its open transaction queued.
QUEUED_KEY = "newsletter.queued_confirmations"


def note_queued(session: Session, delivery_id: int) -> None:
    """Hand ``delivery_id`` on once the session's transaction commits."""
    session.info.setdefault(QUEUED_KEY, []).append(delivery_id)


def hand_over_after_commit(
    sessions: sessionmaker[Session] | Session, hand_over: Callable[[list[int]], None]
) -> None:
    """Give ``hand_over`` the confirmation deliveries each transaction of ``sessions`` queued,
    as soon as it has committed; a rollback forgets them (they were never written).

    A savepoint's end is not the transaction's: only the outermost commit hands over.
    """

    def committed(session: Session) -> None:
        if session.in_nested_transaction():
            return
        queued: list[int] = session.info.pop(QUEUED_KEY, [])
        if queued:
            hand_over(queued)

    def rolled_back(session: Session) -> None:
        if not session.in_nested_transaction():
            session.info.pop(QUEUED_KEY, None)

    event.listen(sessions, "after_commit", committed)
    event.listen(sessions, "after_rollback", rolled_back)
