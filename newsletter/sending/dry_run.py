"""``--dry-run``: build every message a send would build, change nothing.

A message that cannot be built is counted, with the first reason, as a send would fail it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass

from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.models import Delivery, DeliveryStatus, Subscriber
from newsletter.people import person_in, with_person
from newsletter.sending.jobs import ClaimedDelivery, Job, Skip

__all__ = ["DryRunReport", "dry_run"]

STREAM_BATCH = 1000


@dataclass(frozen=True)
class DryRunReport:
    messages: int
    bytes: int
    seconds: float
    #: Messages that could not be built, and why the first of them could not.
    unbuilt: int = 0
    first_problem: str = ""
    #: People who would get no message (nothing in the digest is in their topics).
    skipped: int = 0


def _recipients(session: Session, job: Job, draft: bool) -> Iterator[ClaimedDelivery]:
    """Who a send would mail now: every active subscriber for a digest not yet queued,
    otherwise the deliveries still queued."""
    if draft:
        # No deliveries yet: the subscriber's id stands in for the delivery's.
        query = with_person(Subscriber.id).where(Subscriber.status.in_(job.eligible))
    else:
        query = (
            with_person(Delivery.id)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(job.scope(), Delivery.status == DeliveryStatus.QUEUED)
        )
    rows = session.execute(query.execution_options(yield_per=STREAM_BATCH))
    for row in rows:
        person = person_in(row)
        if person is not None:
            yield ClaimedDelivery(row[0], person)


def dry_run(sessions: sessionmaker[Session], job: Job, draft: bool) -> DryRunReport:
    started = time.monotonic()
    count = size = unbuilt = skipped = 0
    first_problem = ""
    with sessions() as session:
        for delivery in _recipients(session, job, draft):
            try:
                message = job.compose(delivery)
            except SQLAlchemyError:
                raise
            except Exception as error:
                unbuilt += 1
                first_problem = first_problem or str(error) or type(error).__name__
                continue
            if message is None:
                continue
            if isinstance(message, Skip):
                skipped += 1
                continue
            count += 1
            size += len(message.data)
        session.rollback()
    seconds = time.monotonic() - started
    return DryRunReport(count, size, seconds, unbuilt, first_problem, skipped)
