"""Who is on the list and how it changes: the lookups behind ``subscribers list`` and ``stats``.

Every figure is computed by the database (counts grouped in SQL), so a list of a million
people costs a few queries, not a million objects.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, time, timedelta

from sqlalchemy import ColumnElement, case, distinct, func, or_, select
from sqlalchemy.orm import Session

from newsletter.addresses import email_key
from newsletter.db import utcnow
from newsletter.models import (
    ConsentEvent,
    ConsentKind,
    ConsentStatement,
    Delivery,
    DeliveryKind,
    Digest,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Topic,
)

__all__ = [
    "DigestDeliveries",
    "ListedSubscriber",
    "StatementUse",
    "Stats",
    "TopicHolders",
    "SubscriberPage",
    "WeekActivity",
    "list_subscribers",
    "stats",
]

WEEKS = 12
DIGESTS_SHOWN = 10


@dataclass(frozen=True)
class ListedSubscriber:
    id: int
    email: str
    first_name: str
    last_name: str
    status: str
    created_at: datetime


@dataclass(frozen=True)
class SubscriberPage:
    """The rows shown and how many matched in all."""

    rows: list[ListedSubscriber]
    total: int


def _filters(statuses: Sequence[str], search: str | None) -> list[ColumnElement[bool]]:
    conditions: list[ColumnElement[bool]] = []
    if statuses:
        conditions.append(Subscriber.status.in_(list(statuses)))
    text = (search or "").strip()
    if text:
        full_name = Subscriber.first_name + " " + Subscriber.last_name
        conditions.append(
            or_(
                # Matched as keys are made: ASCII letters in any case, the domain in any form.
                Subscriber.email_key.contains(email_key(text), autoescape=True),
                full_name.icontains(text, autoescape=True),
            )
        )
    return conditions


def list_subscribers(
    session: Session,
    statuses: Sequence[str] = (),
    search: str | None = None,
    limit: int = 50,
) -> SubscriberPage:
    """The newest ``limit`` subscribers matching the filters; ``search`` looks in addresses
    and names, ignoring case."""
    conditions = _filters(statuses, search)
    total = session.scalar(select(func.count()).select_from(Subscriber).where(*conditions)) or 0
    query = (
        select(
            Subscriber.id,
            Subscriber.email,
            Subscriber.first_name,
            Subscriber.last_name,
            Subscriber.status,
            Subscriber.created_at,
        )
        .where(*conditions)
        .order_by(Subscriber.id.desc())
        .limit(limit)
    )
    rows = [ListedSubscriber(*row) for row in session.execute(query)]
    return SubscriberPage(rows, total)


@dataclass(frozen=True)
class WeekActivity:
    """One ISO week (Monday to Sunday, UTC)."""

    start: date
    signups: int
    confirmations: int
    unsubscribes: int

    @property
    def label(self) -> str:
        year, week, _ = self.start.isocalendar()
        return f"{year}-W{week:02d}"


@dataclass(frozen=True)
class StatementUse:
    """A consent wording and how many people gave consent to it."""

    version: int
    text: str
    people: int


@dataclass(frozen=True)
class TopicHolders:
    """A topic and how many people chose it: active ones, and in any status."""

    slug: str
    name: str
    active: int
    people: int


@dataclass(frozen=True)
class DigestDeliveries:
    id: int
    subject: str
    status: str
    sent_at: datetime | None
    counts: dict[str, int]


@dataclass
class Stats:
    by_status: dict[str, int]
    weeks: list[WeekActivity]
    statements: list[StatementUse]
    # People whose consent came with a note rather than the form's wording (imports).
    consent_without_statement: int
    confirmation_emails: dict[str, int]
    digests: list[DigestDeliveries]
    older_digests: int
    topics: list[TopicHolders] = field(default_factory=list)
    # Active people who chose no topic, and so hear about everything.
    active_without_topics: int = 0
    total: int = field(init=False)

    def __post_init__(self) -> None:
        self.total = sum(self.by_status.values())


def stats(session: Session, now: datetime | None = None, digests: int = DIGESTS_SHOWN) -> Stats:
    """Counts by status, weekly activity, consent wordings in use, and digest deliveries."""
    return Stats(
        by_status=_counts_by_status(session),
        weeks=_weekly_activity(session, now or utcnow()),
        statements=_statements_in_use(session),
        consent_without_statement=_consent_without_statement(session),
        confirmation_emails=_confirmation_emails(session),
        digests=_digest_deliveries(session, digests),
        older_digests=max(_sent_digest_count(session) - digests, 0),
        topics=_topic_holders(session),
        active_without_topics=_active_without_topics(session),
    )


def _topic_holders(session: Session) -> list[TopicHolders]:
    active = func.count().filter(Subscriber.status == SubscriberStatus.ACTIVE)
    query = (
        select(Topic.slug, Topic.name, active, func.count(Subscriber.id))
        .outerjoin(SubscriberTopic, SubscriberTopic.topic_id == Topic.id)
        .outerjoin(Subscriber, Subscriber.id == SubscriberTopic.subscriber_id)
        .group_by(Topic.id, Topic.slug, Topic.name)
        .order_by(Topic.slug)
    )
    return [TopicHolders(*row) for row in session.execute(query)]


def _active_without_topics(session: Session) -> int:
    chosen = select(SubscriberTopic.subscriber_id).where(
        SubscriberTopic.subscriber_id == Subscriber.id
    )
    query = select(func.count()).where(
        Subscriber.status == SubscriberStatus.ACTIVE, ~chosen.exists()
    )
    return session.scalar(query) or 0


def _counts_by_status(session: Session) -> dict[str, int]:
    order = (
        SubscriberStatus.ACTIVE,
        SubscriberStatus.PENDING,
        SubscriberStatus.UNSUBSCRIBED,
        SubscriberStatus.BOUNCED,
    )
    counts = {status.value: 0 for status in order}
    query = select(Subscriber.status, func.count()).group_by(Subscriber.status)
    for status, count in session.execute(query):
        counts[status] = count
    return counts


def week_starts(now: datetime, weeks: int = WEEKS) -> list[datetime]:
    """Mondays 00:00 UTC of the last ``weeks`` ISO weeks, oldest first, this week last."""
    today = now.date()
    monday = datetime.combine(today - timedelta(days=today.weekday()), time(), now.tzinfo)
    return [monday - timedelta(weeks=back) for back in range(weeks - 1, -1, -1)]


def _weekly_activity(session: Session, now: datetime) -> list[WeekActivity]:
    starts = week_starts(now)
    ends = [*starts[1:], starts[-1] + timedelta(weeks=1)]
    week = case(*[(ConsentEvent.at < end, index) for index, end in enumerate(ends)])
    # Grouping on a subquery's column: PostgreSQL does not see two renderings of the same CASE
    # with bound parameters as one expression.
    events = (
        select(ConsentEvent.kind.label("kind"), week.label("week"))
        .where(ConsentEvent.at >= starts[0], ConsentEvent.at < ends[-1])
        .subquery()
    )
    counts: dict[tuple[str, int], int] = {}
    query = select(events.c.kind, events.c.week, func.count()).group_by(
        events.c.kind, events.c.week
    )
    for kind, index, count in session.execute(query):
        counts[(kind, index)] = count
    return [
        WeekActivity(
            start=start.date(),
            signups=counts.get((ConsentKind.GIVEN, index), 0),
            confirmations=counts.get((ConsentKind.CONFIRMED, index), 0),
            unsubscribes=counts.get((ConsentKind.WITHDRAWN, index), 0),
        )
        for index, start in enumerate(starts)
    ]


def _statements_in_use(session: Session) -> list[StatementUse]:
    people = (
        select(
            ConsentEvent.statement_id.label("statement_id"),
            func.count(distinct(ConsentEvent.subscriber_id)).label("people"),
        )
        .where(ConsentEvent.kind == ConsentKind.GIVEN, ConsentEvent.statement_id.is_not(None))
        .group_by(ConsentEvent.statement_id)
        .subquery()
    )
    query = (
        select(ConsentStatement.id, ConsentStatement.text, people.c.people)
        .join(people, people.c.statement_id == ConsentStatement.id)
        .order_by(ConsentStatement.id)
    )
    return [StatementUse(*row) for row in session.execute(query)]


def _consent_without_statement(session: Session) -> int:
    query = select(func.count(distinct(ConsentEvent.subscriber_id))).where(
        ConsentEvent.kind == ConsentKind.GIVEN, ConsentEvent.statement_id.is_(None)
    )
    return session.scalar(query) or 0


def _confirmation_emails(session: Session) -> dict[str, int]:
    query = (
        select(Delivery.status, func.count())
        .where(Delivery.kind == DeliveryKind.CONFIRM)
        .group_by(Delivery.status)
    )
    return {status: count for status, count in session.execute(query)}


def _sent_digest_count(session: Session) -> int:
    query = select(func.count()).select_from(Digest).where(Digest.status != DigestStatus.DRAFT)
    return session.scalar(query) or 0


def _digest_deliveries(session: Session, limit: int) -> list[DigestDeliveries]:
    digests = session.execute(
        select(Digest.id, Digest.subject, Digest.status, Digest.sent_at)
        .where(Digest.status != DigestStatus.DRAFT)
        .order_by(Digest.id.desc())
        .limit(limit)
    ).all()
    counts: dict[int, dict[str, int]] = {row.id: {} for row in digests}
    if counts:
        query = (
            select(Delivery.digest_id, Delivery.status, func.count())
            .where(Delivery.digest_id.in_(list(counts)))
            .group_by(Delivery.digest_id, Delivery.status)
        )
        for digest_id, status, count in session.execute(query):
            if digest_id is not None:
                counts[digest_id][status] = count
    return [
        DigestDeliveries(row.id, row.subject, row.status, row.sent_at, counts[row.id])
        for row in digests
    ]
