"""What a bounce or complaint report does, however it arrived (mailbox or webhook).

- A hard bounce: the person is ``bounced``, the address suppressed (never mailed again, not
  even by an import), and the reason kept on the delivery.
- A soft bounce counts, at most once a day. When a person's count within 30 days reaches
  ``NEWSLETTER_SOFT_BOUNCE_LIMIT`` they are ``bounced`` (not suppressed: a full mailbox may
  empty). A delivery that went out after the counted bounces and did not bounce resets the
  count; it is worked out when a report arrives, so sending pays nothing for it.
- A complaint: the person is unsubscribed and suppressed, with a withdrawal event of kind
  ``complaint`` in their consent record.

Every report is stored, once: a report id already stored for the person (the same message
read by two runs at once, a provider's retry) is recorded as a repeat and changes nothing.
A report about nobody we know is ignored, and says so only to the caller.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum

from sqlalchemy import exists, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.addresses import email_key
from newsletter.controls import replace_controls
from newsletter.db import MAX_ID, utcnow
from newsletter.isotime import iso_utc
from newsletter.mail.bounce_reports import Report
from newsletter.models import (
    BounceKind,
    BounceReport,
    ConsentKind,
    Delivery,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.services.consent import Evidence
from newsletter.services.unsubscribe import withdraw
from newsletter.suppressions import record_hard_bounce, suppress

__all__ = [
    "COMPLAINT_REASON",
    "Outcome",
    "ReportRow",
    "list_reports",
    "record_report",
    "reports_of",
]

SOFT_BOUNCE_WINDOW = timedelta(days=30)
SOFT_BOUNCE_SPACING = timedelta(days=1)
COMPLAINT_REASON = "complaint"
REPORT_ID_LENGTH = 255
LAST_ERROR_LENGTH = 500


class Outcome(StrEnum):
    APPLIED = "applied"
    REPEAT = "repeat"
    UNKNOWN = "unknown"


@dataclass(frozen=True)
class ReportRow:
    """A stored report as ``bounces list`` and ``subscribers show`` show it."""

    at: datetime
    email: str
    kind: str
    source: str
    reason: str
    report_id: str
    delivery_id: int | None

    def as_dict(self) -> dict[str, object]:
        return {
            "at": iso_utc(self.at),
            "kind": self.kind,
            "source": self.source,
            "reason": self.reason,
            "report_id": self.report_id,
            "delivery": self.delivery_id,
        }


def record_report(
    session: Session, report: Report, source: str, soft_limit: int, at: datetime | None = None
) -> Outcome:
    """Store ``report`` and do what it says, once; the caller commits."""
    now = at or utcnow()
    found = _subject(session, report)
    if found is None:
        return Outcome.UNKNOWN
    subscriber, delivery = found
    stored = BounceReport(
        subscriber_id=subscriber.id,
        delivery_id=delivery.id if delivery is not None else None,
        kind=report.kind.value,
        source=source,
        # Reports are written by strangers: PostgreSQL refuses NUL in text, and the rest
        # of the control characters mean nothing in a reason.
        reason=replace_controls(report.reason),
        report_id=replace_controls(report.report_id)[:REPORT_ID_LENGTH],
        at=now,
    )
    try:
        # The unique (report id, person) key decides which of two readers acts.
        with session.begin_nested():
            session.add(stored)
    except IntegrityError:
        return Outcome.REPEAT
    if report.kind is BounceKind.HARD:
        record_hard_bounce(session, subscriber)
        if delivery is not None:
            delivery.last_error = f"bounced: {stored.reason}"[:LAST_ERROR_LENGTH]
    elif report.kind is BounceKind.SOFT:
        sent = delivery.sent_at if delivery is not None and delivery.sent_at else now
        if (
            subscriber.status == SubscriberStatus.ACTIVE
            and _soft_bounces(session, subscriber.id, sent, now) >= soft_limit
        ):
            subscriber.status = SubscriberStatus.BOUNCED
    else:
        evidence = Evidence(method=f"complaint report ({source})", note=stored.reason or None)
        withdraw(session, (Subscriber.id == subscriber.id,), ConsentKind.COMPLAINT, evidence)
        suppress(session, subscriber.email, COMPLAINT_REASON)
    session.flush()
    return Outcome.APPLIED


def _subject(session: Session, report: Report) -> tuple[Subscriber, Delivery | None] | None:
    """Whom the report is about and which delivery: by VERP, then the quoted Message-ID,
    then the address (with that person's last sent message as the delivery)."""
    delivery: Delivery | None = None
    # A number past the largest id names no row (and would fail inside the driver).
    if report.delivery_id is not None and 0 < report.delivery_id <= MAX_ID:
        delivery = session.get(Delivery, report.delivery_id)
    if delivery is None and report.message_id:
        message_id = replace_controls(report.message_id).strip()
        delivery = session.scalar(
            select(Delivery).where(Delivery.message_id == message_id).limit(1)
        )
    if delivery is not None:
        if delivery.subscriber_id is None:
            return None  # the person was erased
        subscriber = session.get(Subscriber, delivery.subscriber_id)
        return (subscriber, delivery) if subscriber is not None else None
    if not report.email:
        return None
    key = email_key(replace_controls(report.email))
    subscriber = session.scalar(select(Subscriber).where(Subscriber.email_key == key))
    if subscriber is None:
        return None
    last = session.scalar(
        select(Delivery)
        .where(
            Delivery.subscriber_id == subscriber.id,
            Delivery.status == DeliveryStatus.SENT,
            ~exists().where(BounceReport.delivery_id == Delivery.id),
        )
        .order_by(Delivery.sent_at.desc())
        .limit(1)
    )
    return subscriber, last


def _soft_bounces(session: Session, subscriber_id: int, sent: datetime, now: datetime) -> int:
    """Soft bounces counted for a person: within the window, at most one a day, and only
    those after the last message before ``sent`` that went out and did not bounce."""
    delivered = session.scalar(
        select(func.max(Delivery.sent_at)).where(
            Delivery.subscriber_id == subscriber_id,
            Delivery.status == DeliveryStatus.SENT,
            Delivery.sent_at < sent,
            ~exists().where(BounceReport.delivery_id == Delivery.id),
        )
    )
    since = now - SOFT_BOUNCE_WINDOW
    if delivered is not None and delivered > since:
        since = delivered
    times = session.scalars(
        select(BounceReport.at)
        .where(
            BounceReport.subscriber_id == subscriber_id,
            BounceReport.kind == BounceKind.SOFT,
            BounceReport.at > since,
        )
        .order_by(BounceReport.at)
    )
    counted = 0
    last: datetime | None = None
    for at in times:
        if last is None or at - last >= SOFT_BOUNCE_SPACING:
            counted += 1
            last = at
    return counted


def _rows(session: Session, *conditions: object) -> list[ReportRow]:
    query = (
        select(BounceReport, Subscriber.email)
        .join(Subscriber, Subscriber.id == BounceReport.subscriber_id)
        .where(*conditions)  # type: ignore[arg-type]
        .order_by(BounceReport.at, BounceReport.id)
    )
    return [
        ReportRow(
            at=report.at,
            email=email,
            kind=report.kind,
            source=report.source,
            reason=report.reason,
            report_id=report.report_id,
            delivery_id=report.delivery_id,
        )
        for report, email in session.execute(query)
    ]


def list_reports(session: Session, since: datetime | None = None) -> list[ReportRow]:
    """Every stored report, oldest first; from ``since`` on when given."""
    return _rows(session, *([BounceReport.at >= since] if since is not None else []))


def reports_of(session: Session, subscriber_id: int) -> list[ReportRow]:
    """One person's reports, oldest first."""
    return _rows(session, BounceReport.subscriber_id == subscriber_id)
