"""``digest auto``'s work: import the feeds, let articles settle, and when the schedule says a
digest is due, compose it for the readers whose rhythm makes the slot theirs and send it.

The command keeps only its output; tests and other callers use the same steps. Each step is a
transaction of its own (a feed, the settling, the queueing of a slot, every message of the
send), so a run stopped anywhere leaves what it finished recorded and the next run carries on:
an unfinished automatic digest is sent on before anything new is composed.

Every step takes the run's time, ``now``, as given (``--at``), never the clock: which slot is
due, which articles have settled and where watermarks move all follow from it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.feeds import FeedError, load_feed
from newsletter.mail.digest import PreparedDigest, prepare_digest
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import Outgoing
from newsletter.models import (
    Article,
    Delivery,
    Digest,
    DigestArticle,
    DigestSlot,
    DigestStatus,
    Subscriber,
)
from newsletter.people import person_in, with_person
from newsletter.schedule import Schedule
from newsletter.sending.jobs import ClaimedDelivery, DigestJob, Skip
from newsletter.services.articles import ImportResult, import_entries
from newsletter.services.digest_sending import DigestSend
from newsletter.services.due_readers import (
    QueuedSlot,
    ReaderWindows,
    queue_slot,
    read_windows,
    rhythm_of,
    stamp_settled,
)
from newsletter.services.mailroom import Mailroom
from newsletter.site import Site

__all__ = [
    "AutoDigestSend",
    "AutoSettings",
    "Automation",
    "FeedImport",
    "Plan",
    "PlannedReader",
    "AutoStatus",
    "SlotRecord",
    "NOTHING_NEW",
    "automation_status",
    "load_send",
    "windowed_job",
]


@dataclass(frozen=True)
class AutoSettings:
    schedule: Schedule
    feeds: tuple[str, ...]
    settle: timedelta


@dataclass(frozen=True)
class FeedImport:
    """One feed of a run: what it gave, or why it could not be read."""

    source: str
    result: ImportResult | None = None
    title: str = ""
    problem: str | None = None


#: Why a due reader's delivery is skipped: nothing in their topics became available in
#: their window.
NOTHING_NEW = "nothing new in their topics since their last digest"


def windowed_job(
    sessions: sessionmaker[Session], site: Site, prepared: PreparedDigest
) -> DigestJob:
    """An automatic digest's job: each reader gets the articles of their topics that became
    available in their delivery's window; each distinct set is assembled once (the digest's
    versions), and a reader with nothing in it is skipped."""
    windows = ReaderWindows(sessions, prepared.digest_id)

    def compose(delivery: ClaimedDelivery, message_id: str) -> Outgoing | Skip:
        window = windows.of(delivery.id)
        version = prepared.version_within(delivery.person.topic_ids, window.holds)
        if version is None:
            return Skip(NOTHING_NEW)
        return prepared.outgoing_for(delivery.person, message_id, version=version)

    return DigestJob(prepared.digest_id, site, compose)


class AutoDigestSend(DigestSend):
    """The send of an automatic digest: as any digest's, with each reader's own window."""

    @cached_property
    def job(self) -> DigestJob:
        with self.sessions() as session:
            prepared = prepare_digest(session, self.site, self.renderer, self.digest)
        return windowed_job(self.sessions, self.site, prepared)


def load_send(mailroom: Mailroom, digest_id: int) -> DigestSend:
    """The send of digest ``digest_id``: an automatic digest's gives each reader their own
    window (``digest send`` continuing one, ``--resend-unknown`` included), any other the
    whole digest. Raises :class:`NotFound` when there is none."""
    plain = DigestSend.load(mailroom, digest_id)
    with mailroom.sessions() as session:
        automatic = session.scalar(
            select(DigestSlot.slot_at).where(DigestSlot.digest_id == digest_id)
        )
    if automatic is None:
        return plain
    return AutoDigestSend(mailroom, plain.digest)


@dataclass(frozen=True)
class PlannedReader:
    email: str
    rhythm: str
    titles: tuple[str, ...]


@dataclass(frozen=True)
class Plan:
    """What a run at ``now`` would do (``--dry-run``)."""

    now: datetime
    feeds: list[FeedImport]
    settled: int
    unfinished: list[int]
    slot: datetime | None
    queued: QueuedSlot | None
    readers: list[PlannedReader]


class Automation:
    """The steps of one ``digest auto`` run."""

    def __init__(self, mailroom: Mailroom, settings: AutoSettings) -> None:
        self.mailroom = mailroom
        self.sessions, self.site, self.renderer, self.transport = mailroom
        self.settings = settings

    # -- the steps -----------------------------------------------------------------------

    def import_feeds(self, now: datetime) -> Iterator[FeedImport]:
        """Import each feed in its own transaction; a feed that fails does not stop the rest."""
        for source in self.settings.feeds:
            with self.sessions.begin() as session:
                yield self._import(session, source, now)

    def _import(self, session: Session, source: str, now: datetime) -> FeedImport:
        try:
            feed = load_feed(source)
        except FeedError as error:
            return FeedImport(source, problem=str(error))
        return FeedImport(source, import_entries(session, feed.entries, now), feed.title)

    def settle(self, now: datetime) -> int:
        """Articles unchanged for the settle time become available now."""
        with self.sessions.begin() as session:
            return stamp_settled(session, now, self.settings.settle)

    def unfinished(self) -> list[int]:
        """Automatic digests whose send has not finished (a crash, a stop): sent on first."""
        with self.sessions() as session:
            return _unfinished(session)

    def digest_send(self, digest_id: int) -> AutoDigestSend:
        with self.sessions() as session:
            digest = session.get_one(Digest, digest_id)
            session.expunge(digest)
        return AutoDigestSend(self.mailroom, digest)

    def due_slot(self, now: datetime) -> datetime | None:
        """The latest slot at or before ``now``, unless a run dealt with it already."""
        slot = self.settings.schedule.latest_slot(now)
        with self.sessions() as session:
            return None if session.get(DigestSlot, slot) is not None else slot

    def queue(self, slot: datetime, now: datetime) -> QueuedSlot | None:
        """Compose and queue ``slot``'s digest (None when another run dealt with it)."""
        with self.sessions.begin() as session:
            return queue_slot(session, self.site, self.settings.schedule, slot, now)

    def next_slot(self, now: datetime) -> datetime:
        return self.settings.schedule.next_slot(now)

    # -- the dry run ---------------------------------------------------------------------

    def plan(self, now: datetime) -> Plan:
        """Every step of a run at ``now`` in one transaction that is rolled back: who would
        get which articles; nothing is sent or kept."""
        with self.sessions() as session:
            try:
                feeds = [self._import(session, source, now) for source in self.settings.feeds]
                settled = stamp_settled(session, now, self.settings.settle)
                unfinished = _unfinished(session)
                slot = self.settings.schedule.latest_slot(now)
                queued = queue_slot(session, self.site, self.settings.schedule, slot, now)
                readers = []
                if queued is not None and queued.digest_id is not None:
                    readers = _planned_readers(session, self.site, self.renderer, queued.digest_id)
                return Plan(
                    now, feeds, settled, unfinished, slot if queued else None, queued, readers
                )
            finally:
                session.rollback()


def _unfinished(session: Session) -> list[int]:
    return list(
        session.scalars(
            select(Digest.id)
            .join(DigestSlot, DigestSlot.digest_id == Digest.id)
            .where(Digest.status == DigestStatus.SENDING)
            .order_by(Digest.id)
        )
    )


def _planned_readers(
    session: Session, site: Site, renderer: EmailRenderer, digest_id: int
) -> list[PlannedReader]:
    digest = session.get_one(Digest, digest_id)
    prepared = prepare_digest(session, site, renderer, digest)
    titles = {
        article_id: title
        for article_id, title in session.execute(
            select(Article.id, Article.title)
            .join(DigestArticle, DigestArticle.article_id == Article.id)
            .where(DigestArticle.digest_id == digest_id)
        )
    }
    readers: list[PlannedReader] = []
    from_id = 0
    while True:
        windows = read_windows(session, digest_id, from_id)
        if not windows:
            return readers
        people = {
            row[0]: (person_in(row), row[1])
            for row in session.execute(
                with_person(Delivery.id, rhythm_of(site.default_rhythm))
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.id.in_(sorted(windows)))
            )
        }
        for delivery_id, window in sorted(windows.items()):
            person, rhythm = people[delivery_id]
            if person is None:
                continue
            version = prepared.version_within(person.topic_ids, window.holds)
            chosen = version.article_ids if version is not None else ()
            readers.append(
                PlannedReader(person.email, rhythm, tuple(titles[each] for each in chosen))
            )
        from_id = max(windows) + 1


@dataclass(frozen=True)
class SlotRecord:
    """A slot a run dealt with: when, how many readers it was for, the digest it sent."""

    slot_at: datetime
    handled_at: datetime
    readers: int
    digest_id: int | None
    digest_status: str | None


@dataclass(frozen=True)
class AutoStatus:
    #: Articles imported but not yet settled.
    settling: int
    #: The latest slots dealt with, newest first.
    slots: list[SlotRecord]


def automation_status(session: Session, slots: int = 5) -> AutoStatus:
    """What the automation did lately and what waits (``digest status`` without an id)."""
    settling = session.scalar(select(func.count()).where(Article.available_at.is_(None)))
    rows = session.execute(
        select(
            DigestSlot.slot_at,
            DigestSlot.handled_at,
            DigestSlot.readers,
            DigestSlot.digest_id,
            Digest.status,
        )
        .join(Digest, Digest.id == DigestSlot.digest_id, isouter=True)
        .order_by(DigestSlot.slot_at.desc())
        .limit(slots)
    ).all()
    return AutoStatus(settling or 0, [SlotRecord(*row) for row in rows])
