"""Confirmation emails, from queueing to the mail server: the one place they are handled.

Queueing writes a ``confirm`` delivery in the caller's transaction and notes its id in the
session; once that transaction commits, the hook set up by :func:`hand_over_after_commit`
hands the ids on (the web process to its background dispatcher, an import to the outbox),
and a rollback forgets them. Whatever is not sent then waits for :meth:`Outbox.flush`.

Reading what an email needs and building it are two steps, so that the sender can end its
database transaction in between: on SQLite every transaction of the service holds the write
lock, and rendering a message while holding it would keep signups waiting.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cached_property

from sqlalchemy import ColumnElement, bindparam, func, insert, select
from sqlalchemy.orm import Session, aliased, sessionmaker

from newsletter.db import readers, utcnow
from newsletter.mail.confirmation import ConfirmationTemplate
from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import Connection
from newsletter.mail.welcome import welcome_message
from newsletter.mail.wire import Outgoing
from newsletter.models import (
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.people import Person, person_in, with_person
from newsletter.sending import ledger
from newsletter.sending.engine import Outcome, Sender, SendOptions
from newsletter.sending.jobs import ClaimedDelivery
from newsletter.services.bulk import table_of
from newsletter.services.hand_over import hand_over_after_commit, note_queued
from newsletter.services.mailroom import Mailroom
from newsletter.services.welcome import read_welcome
from newsletter.site import Site
from newsletter.suppressions import (
    SUPPRESSED_SINCE,
    confirmation_allowed,
    suppressed_since,
    suppression_params,
)

__all__ = [
    "ConfirmationJob",
    "DueConfirmation",
    "FlushResult",
    "Outbox",
    "hand_over_after_commit",
    "queue_confirmation",
    "read_confirmation",
]

# Confirmations are few; one connection is plenty, and a dead server should stop us quickly.
FLUSH_OPTIONS = SendOptions(workers=1, batch=50, max_errors=3)


# Built once: a statement object keeps its compiled form's cache key, so each signup skips
# building and keying it again.
_SENT_TODAY = (
    select(func.count())
    .select_from(Delivery)
    .where(
        Delivery.subscriber_id == bindparam("subscriber_id"),
        Delivery.kind == DeliveryKind.CONFIRM,
        Delivery.created_at >= bindparam("since", type_=Delivery.created_at.type),
    )
)
_QUEUE = insert(table_of(Delivery)).returning(table_of(Delivery).c.id)


def queue_confirmation(
    session: Session, site: Site, subscriber_id: int, *, new: bool = False
) -> int | None:
    """Queue a confirmation email unless this address already had its share today; the
    delivery's id, or None. ``new``: the person was added in this transaction, so none has
    been sent to them yet.

    The delivery is handed over for sending once the caller's transaction commits (see
    :func:`hand_over_after_commit`); until then nobody can see it, let alone send it.
    """
    if not new:
        since = utcnow() - timedelta(days=1)
        sent_today = session.scalar(_SENT_TODAY, {"subscriber_id": subscriber_id, "since": since})
        if (sent_today or 0) >= site.confirmations_per_day:
            return None
    values = {
        "kind": DeliveryKind.CONFIRM.value,
        "subscriber_id": subscriber_id,
        "status": DeliveryStatus.QUEUED.value,
    }
    delivery_id: int = session.execute(_QUEUE, values).scalar_one()
    note_queued(session, delivery_id)
    return delivery_id


@dataclass(frozen=True)
class DueConfirmation:
    """A confirmation email still due: the delivery, its person, the consent it confirms."""

    delivery_id: int
    person: Person
    consent_event_id: int


# What a confirmation email needs, in one select: the delivery's kind, whether its person is
# still pending, the person, and the consent they gave last (the one the link confirms).
_GIVEN = aliased(ConsentEvent)
_LATEST_GIVEN = (
    select(func.max(_GIVEN.id))
    .where(_GIVEN.subscriber_id == Subscriber.id, _GIVEN.kind == ConsentKind.GIVEN)
    .correlate(Subscriber)
    .scalar_subquery()
)
_DUE = (
    with_person(
        Delivery.kind,
        Subscriber.status,
        ConsentEvent.id,
        ConsentEvent.method,
        ConsentEvent.at,
        SUPPRESSED_SINCE,
    )
    .join(Delivery, Delivery.subscriber_id == Subscriber.id)
    .outerjoin(ConsentEvent, ConsentEvent.id == _LATEST_GIVEN)
    .where(Delivery.id == bindparam("delivery_id"))
)


def read_confirmation(session: Session, delivery_id: int, email: str) -> DueConfirmation | None:
    """What the confirmation email of a delivery to ``email`` needs, or None when it is no
    longer due: the person is no longer pending, or the address is suppressed (see
    :func:`newsletter.suppressions.may_send_confirmation`)."""
    return _due(session, delivery_id, email)[1]


def _due(
    session: Session, delivery_id: int, email: str
) -> tuple[str | None, DueConfirmation | None]:
    """The delivery's kind, and its confirmation email's needs if it is one still due.

    ``email`` is the address the sender claimed the delivery for: whether it is suppressed
    comes in the same select."""
    parameters = {"delivery_id": delivery_id, **suppression_params(email)}
    row = session.execute(_DUE, parameters).one_or_none()
    if row is None:
        return None, None
    kind, status, consent, suppressed = row[0], row[1], _Given(*row[2:5]), row[5]
    person = person_in(row)
    if kind != DeliveryKind.CONFIRM or status != SubscriberStatus.PENDING or person is None:
        return kind, None
    if person.email != email:
        # Not the address the suppression was read for (addresses are never changed).
        suppressed = suppressed_since(session, person.email)
    if consent.id is None or not confirmation_allowed(suppressed, consent):
        return kind, None
    return kind, DueConfirmation(delivery_id, person, consent.id)


@dataclass(frozen=True)
class _Given:
    """The consent a confirmation answers (all None when the person has given none)."""

    id: int | None
    method: str
    at: datetime


class ConfirmationJob:
    """Confirmation and welcome emails waiting in the outbox, as the sender's job.

    A confirmation goes to a person still pending, a welcome to one now active; each
    message checks its own (``read_confirmation``, ``read_welcome``)."""

    name = "confirmation emails"
    kind: str = DeliveryKind.CONFIRM
    eligible: tuple[SubscriberStatus, ...] = (SubscriberStatus.PENDING, SubscriberStatus.ACTIVE)

    def __init__(
        self, sessions: sessionmaker[Session], site: Site, renderer: EmailRenderer
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.renderer = renderer
        self._readers = readers(sessions)

    def scope(self) -> ColumnElement[bool]:
        return Delivery.kind.in_([DeliveryKind.CONFIRM, DeliveryKind.WELCOME])

    def compose(self, delivery: ClaimedDelivery) -> Outgoing | None:
        with self._readers() as session:
            kind, due = _due(session, delivery.id, delivery.person.email)
            if kind == DeliveryKind.WELCOME:
                welcome = read_welcome(session, delivery.id)
        # Built after the transaction ends: on SQLite it holds the write lock signups wait for.
        if kind == DeliveryKind.WELCOME:
            if welcome is None:
                return None
            return welcome_message(
                self.site, self.renderer, welcome.person, welcome.articles, delivery.id
            )
        if due is None:
            return None
        return self._template.outgoing_for(due.person, due.consent_event_id, due.delivery_id)

    @cached_property
    def _template(self) -> ConfirmationTemplate:
        return ConfirmationTemplate(self.site, self.renderer)


@dataclass
class FlushResult:
    counts: Counter[str]
    outcome: Outcome
    message: str

    @property
    def waiting(self) -> int:
        return self.counts[DeliveryStatus.QUEUED]


class Outbox:
    """Sends queued confirmation emails: right after they are queued, or all at once (flush).

    It runs its own transactions, one per step of each message, like any send (see
    ``newsletter.sending.engine``): its callers hold none open while it talks to the server.
    """

    def __init__(self, mailroom: Mailroom) -> None:
        self.sessions, self.site, renderer, self.transport = mailroom
        self.job = ConfirmationJob(self.sessions, self.site, renderer)

    def _sender(self) -> Sender:
        return Sender(
            self.sessions,
            self.transport,
            self.site.sender_address,
            self.job,
            FLUSH_OPTIONS,
            return_path=self.site.return_path,
        )

    def send_one(self, delivery_id: int) -> Counter[str]:
        """Send one queued confirmation now; a failure leaves it queued for ``flush``."""
        return self.send_many([delivery_id])

    def send_many(
        self, delivery_ids: list[int], connection: Connection | None = None
    ) -> Counter[str]:
        """Send these queued confirmations now over one connection (``connection``, kept open
        by the caller, or a new one). The result counts each outcome; those the mail server
        could not take stay queued (counted as ``queued``)."""
        counts = Counter(self._sender().send_now(delivery_ids, connection))
        counts[DeliveryStatus.QUEUED] = len(delivery_ids) - sum(counts.values())
        return counts

    def flush(self) -> FlushResult:
        """Send every waiting confirmation; stops early if the mail server is unreachable."""
        sender = self._sender()
        result = sender.run()
        with self.sessions() as session:
            remaining = ledger.counts(session, self.job.scope())
        totals = Counter(result.counts)
        totals[DeliveryStatus.QUEUED] = remaining[DeliveryStatus.QUEUED]
        return FlushResult(totals, result.outcome, result.message)
