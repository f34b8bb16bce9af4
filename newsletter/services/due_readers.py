"""Who is due a digest at a slot of the schedule, and which articles are new for each of them.

"Nothing twice" is kept with two moments, not a row per person and article:

- an article's ``available_at``: when it had settled (unchanged for the settle time) and a
  run first saw it so; set once, never moved, so an edit afterwards never makes it new;
- a reader's ``received_through``: every article that became available up to it was theirs
  to receive. Queueing their digest fixes its window, (their watermark, the run's time], on
  the delivery, and moves the watermark to the run's time in the same transaction.

A reader's next message therefore starts where the last one ended, whatever their topics or
rhythm were or have become. Storage grows with the number of readers (the watermark, the
delivery) and never with readers × articles.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import (
    ColumnElement,
    and_,
    case,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

from newsletter.db import UTCDateTime, rowcount
from newsletter.mail.digest import subject_of_titles
from newsletter.models import (
    Article,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Digest,
    DigestArticle,
    DigestSlot,
    DigestStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.schedule import Rhythm, Schedule
from newsletter.site import Site

__all__ = [
    "QueuedSlot",
    "ReaderWindow",
    "ReaderWindows",
    "due_condition",
    "later_of",
    "queue_slot",
    "read_windows",
    "rhythm_of",
    "stamp_settled",
    "window_start",
]

# Deliveries read at a time when a sender asks for the window of one it has claimed: claims
# go in id order, so the next ones asked for are in the same chunk.
WINDOW_CHUNK = 500


def later_of(
    column: ColumnElement[datetime | None] | InstrumentedAttribute[datetime | None],
    moment: datetime,
) -> ColumnElement[datetime]:
    """``column`` or ``moment``, whichever is later: a watermark never moves back."""
    value = literal(moment, UTCDateTime())
    return case((column > value, column), else_=value)


def stamp_settled(session: Session, now: datetime, settle: timedelta) -> int:
    """Articles unchanged for ``settle`` become available at ``now``; returns how many."""
    return rowcount(
        session.execute(
            update(Article)
            .where(Article.available_at.is_(None), Article.updated_at <= now - settle)
            .values(available_at=now)
            .execution_options(synchronize_session=False)
        )
    )


def rhythm_of(default: str) -> ColumnElement[str]:
    """A reader's rhythm, the site's default when they never chose."""
    return func.coalesce(Subscriber.rhythm, default)


def window_start() -> ColumnElement[datetime]:
    """Where a reader's next message starts: their watermark; before their first message,
    when they confirmed (or joined)."""
    return func.coalesce(
        Subscriber.received_through, Subscriber.confirmed_at, Subscriber.created_at
    )


def due_condition(schedule: Schedule, slot: datetime, default: str) -> ColumnElement[bool]:
    """Active readers whose rhythm makes ``slot`` theirs: every slot for ``each``, the first
    slot of each week or month for ``weekly`` and ``monthly``."""
    rhythm = rhythm_of(default)
    last = Subscriber.last_digest_slot
    periodic = [Rhythm.WEEKLY.value, Rhythm.MONTHLY.value]
    parts: list[ColumnElement[bool]] = [rhythm.not_in(periodic)]
    for each in (Rhythm.WEEKLY, Rhythm.MONTHLY):
        began = schedule.period_start(each, slot)
        assert began is not None
        parts.append(and_(rhythm == each.value, or_(last.is_(None), last < began)))
    return and_(
        Subscriber.status == SubscriberStatus.ACTIVE,
        or_(last.is_(None), last < slot),
        or_(*parts),
    )


def _manual_digests() -> ColumnElement[bool]:
    """Articles staff put in a digest of their own (``digest create``): never mailed again by
    the automation."""
    automatic = select(DigestSlot.digest_id).where(DigestSlot.digest_id.is_not(None))
    return exists().where(
        DigestArticle.article_id == Article.id, DigestArticle.digest_id.not_in(automatic)
    )


@dataclass(frozen=True)
class QueuedSlot:
    """What queueing a slot did."""

    slot: datetime
    #: Readers whose rhythm made the slot theirs.
    readers: int
    #: The digest sent to them, or None when nothing had become available for anyone.
    digest_id: int | None
    articles: int


def queue_slot(
    session: Session, site: Site, schedule: Schedule, slot: datetime, now: datetime
) -> QueuedSlot | None:
    """Deal with ``slot``: compose the digest of every article that became available in a
    due reader's window, queue one delivery per due reader with their window, move their
    watermark to ``now`` and record the slot. None when the slot was dealt with before.

    One transaction (the caller's): after a crash either all of it happened or none did.
    """
    if session.get(DigestSlot, slot) is not None:
        return None
    due = due_condition(schedule, slot, site.default_rhythm)
    earliest, readers = session.execute(
        select(func.min(window_start()), func.count()).where(due)
    ).one()
    articles: list[Article] = []
    if readers:
        query = select(Article).where(
            Article.available_at.is_not(None), Article.available_at <= now, ~_manual_digests()
        )
        if earliest is not None:
            query = query.where(Article.available_at > earliest)
        articles = list(
            session.scalars(query.order_by(Article.published_at.desc(), Article.id.desc()))
        )
    digest_id = None
    if articles:
        digest = Digest(
            subject=subject_of_titles(site, [article.title for article in articles]),
            status=DigestStatus.SENDING,
            created_at=now,
            send_started_at=now,
        )
        for position, article in enumerate(articles):
            digest.entries.append(DigestArticle(article=article, position=position))
        session.add(digest)
        session.flush()
        digest_id = digest.id
        session.execute(
            insert(Delivery).from_select(
                [
                    "kind",
                    "digest_id",
                    "subscriber_id",
                    "status",
                    "attempts",
                    "created_at",
                    "window_start",
                    "window_end",
                ],
                select(
                    literal(DeliveryKind.DIGEST.value),
                    literal(digest_id),
                    Subscriber.id,
                    literal(DeliveryStatus.QUEUED.value),
                    literal(0),
                    literal(now, UTCDateTime()),
                    window_start(),
                    literal(now, UTCDateTime()),
                ).where(due),
            )
        )
        reached: ColumnElement[bool] = Subscriber.id.in_(
            select(Delivery.subscriber_id).where(Delivery.digest_id == digest_id)
        )
    else:
        reached = due
    if readers:
        session.execute(
            update(Subscriber)
            .where(reached)
            .values(
                received_through=later_of(Subscriber.received_through, now),
                last_digest_slot=slot,
            )
            .execution_options(synchronize_session=False)
        )
    session.add(DigestSlot(slot_at=slot, digest_id=digest_id, handled_at=now, readers=readers))
    session.flush()
    return QueuedSlot(slot, readers, digest_id, len(articles))


@dataclass(frozen=True)
class ReaderWindow:
    """A delivery's window: the articles that became available after ``start`` (from the
    first, when None) and up to ``end``."""

    start: datetime | None
    end: datetime | None

    def holds(self, available_at: datetime) -> bool:
        return (self.start is None or available_at > self.start) and (
            self.end is None or available_at <= self.end
        )


class ReaderWindows:
    """Each delivery's window, read in chunks as senders ask.

    A send asks once per message; claims go in id order, so reading the next
    ``WINDOW_CHUNK`` deliveries at a time keeps that to one query per chunk. The worker
    threads share it; deliveries long behind are forgotten, so memory stays bounded.
    """

    def __init__(self, sessions: sessionmaker[Session], digest_id: int) -> None:
        self._sessions = sessions
        self.digest_id = digest_id
        self._known: dict[int, ReaderWindow] = {}
        self._lock = threading.Lock()

    def of(self, delivery_id: int) -> ReaderWindow:
        with self._lock:
            window = self._known.get(delivery_id)
            if window is not None:
                return window
            with self._sessions() as session:
                found = read_windows(session, self.digest_id, delivery_id)
            if len(self._known) > 4 * WINDOW_CHUNK:
                self._known = {
                    key: value
                    for key, value in self._known.items()
                    if key >= delivery_id - WINDOW_CHUNK
                }
            self._known.update(found)
            if delivery_id not in found:
                # Never guess a window: an empty one could not hold too much, but a missing
                # one read as "everything" could repeat articles.
                raise LookupError(f"delivery {delivery_id} is not part of digest {self.digest_id}")
            return found[delivery_id]


def read_windows(
    session: Session, digest_id: int, from_id: int = 0, limit: int | None = WINDOW_CHUNK
) -> dict[int, ReaderWindow]:
    """The windows of the digest's deliveries from ``from_id`` on, ``limit`` of them (all,
    for None)."""
    query = (
        select(Delivery.id, Delivery.window_start, Delivery.window_end)
        .where(Delivery.digest_id == digest_id, Delivery.id >= from_id)
        .order_by(Delivery.id)
    )
    rows = session.execute(query if limit is None else query.limit(limit)).all()
    return {delivery_id: ReaderWindow(start, end) for delivery_id, start, end in rows}
