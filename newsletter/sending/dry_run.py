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
from newsletter.people import Person, with_person
from newsletter.sending.jobs import ClaimedDelivery, Job

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
    for delivery_id, *person in rows:
        yield ClaimedDelivery(delivery_id, Person(*person))


def dry_run(sessions: sessionmaker[Session], job: Job, draft: bool) -> DryRunReport:
    started = time.monotonic()
    count = size = unbuilt = 0
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
            count += 1
            size += len(message.data)
        session.rollback()
    return DryRunReport(count, size, time.monotonic() - started, unbuilt, first_problem)
