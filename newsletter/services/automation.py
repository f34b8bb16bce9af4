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

import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from newsletter.feeds import FeedError, load_feed
from newsletter.mail.digest import PreparedDigest, prepare_articles
from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import Transport
from newsletter.mail.wire import Outgoing, stable_message_id
from newsletter.models import Article, Delivery, Digest, DigestSlot, DigestStatus, Subscriber
from newsletter.schedule import Schedule
from newsletter.sending.jobs import ClaimedDelivery, DigestJob
from newsletter.services.articles import ImportResult, import_entries
from newsletter.services.digest_sending import DigestSend
from newsletter.services.due_readers import (
    DigestArticles,
    DigestEntry,
    QueuedSlot,
    ReaderWindows,
    queue_slot,
    read_windows,
    rhythm_of,
    stamp_settled,
)
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
    "WindowedDigestJob",
    "automation_status",
    "load_send",
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


class WindowedDigestJob(DigestJob):
    """An automatic digest: each reader gets the articles of their window and topics.

    Each distinct set of articles is rendered once and shared by every reader who gets it;
    a reader with nothing in their window is skipped.
    """

    def __init__(
        self,
        sessions: sessionmaker[Session],
        site: Site,
        renderer: EmailRenderer,
        digest_id: int,
        articles: DigestArticles,
    ) -> None:
        super().__init__(digest_id, site, self._whole)
        self.renderer = renderer
        self.articles = articles
        self.windows = ReaderWindows(sessions, digest_id)
        self._prepared: dict[tuple[int, ...], PreparedDigest] = {}
        self._render_lock = threading.Lock()

    def _whole(self, delivery: ClaimedDelivery, message_id: str) -> Outgoing:
        raise AssertionError("an automatic digest is composed per window")  # pragma: no cover

    def entries_for(self, delivery_id: int) -> tuple[DigestEntry, ...]:
        window = self.windows.of(delivery_id)
        return self.articles.chosen(window.start, window.end, window.topics)

    def prepared(self, entries: tuple[DigestEntry, ...]) -> PreparedDigest:
        key = tuple(entry.article_id for entry in entries)
        with self._render_lock:
            found = self._prepared.get(key)
            if found is None:
                found = prepare_articles(
                    self.site,
                    self.renderer,
                    self.digest_id,
                    self.articles.subject(self.site, entries),
                    [entry.view for entry in entries],
                )
                self._prepared[key] = found
            return found

    def compose(self, delivery: ClaimedDelivery) -> Outgoing | None:
        entries = self.entries_for(delivery.id)
        if not entries:
            return None
        message_id = stable_message_id(self.site, f"digest{self.digest_id}", delivery.id)
        return self.prepared(entries).outgoing_for(delivery.person, message_id)


class AutoDigestSend(DigestSend):
    """The send of an automatic digest: as any digest's, with each reader's own articles."""

    @cached_property
    def job(self) -> WindowedDigestJob:
        with self.sessions() as session:
            articles = DigestArticles.load(session, self.digest.id)
        return WindowedDigestJob(self.sessions, self.site, self.renderer, self.digest.id, articles)


def load_send(
    sessions: sessionmaker[Session],
    site: Site,
    renderer: EmailRenderer,
    transport: Transport,
    digest_id: int,
) -> DigestSend:
    """The send of digest ``digest_id``: an automatic digest's gives each reader their own
    window (``digest send`` continuing one, ``--resend-unknown`` included), any other the
    whole digest. Raises :class:`NotFound` when there is none."""
    plain = DigestSend.load(sessions, site, renderer, transport, digest_id)
    with sessions() as session:
        automatic = session.scalar(
            select(DigestSlot.slot_at).where(DigestSlot.digest_id == digest_id)
        )
    if automatic is None:
        return plain
    return AutoDigestSend(sessions, site, renderer, transport, plain.digest)


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

    def __init__(
        self,
        sessions: sessionmaker[Session],
        site: Site,
        renderer: EmailRenderer,
        transport: Transport,
        settings: AutoSettings,
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.renderer = renderer
        self.transport = transport
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
        return AutoDigestSend(self.sessions, self.site, self.renderer, self.transport, digest)

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
                    readers = _planned_readers(session, self.site, queued.digest_id)
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


def _planned_readers(session: Session, site: Site, digest_id: int) -> list[PlannedReader]:
    articles = DigestArticles.load(session, digest_id)
    readers: list[PlannedReader] = []
    from_id = 0
    while True:
        windows = read_windows(session, digest_id, from_id)
        if not windows:
            return readers
        people = {
            delivery_id: (email, rhythm)
            for delivery_id, email, rhythm in session.execute(
                select(Delivery.id, Subscriber.email, rhythm_of(site.default_rhythm))
                .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
                .where(Delivery.id.in_(sorted(windows)))
            )
        }
        for delivery_id, window in sorted(windows.items()):
            email, rhythm = people[delivery_id]
            entries = articles.chosen(window.start, window.end, window.topics)
            readers.append(PlannedReader(email, rhythm, tuple(e.view.title for e in entries)))
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
