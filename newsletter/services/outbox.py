"""The outbox for transactional mail (confirmations): claim, build, send, record.

Each delivery is claimed with a conditional UPDATE (so two senders never both take it), marked
``sending`` in a committed transaction before any SMTP I/O, and resolved as soon as the server
answers. No transaction is open while talking to the mail server.
"""

from __future__ import annotations

import logging
import os
import socket
from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage

from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import rowcount, utcnow
from newsletter.links import confirm_url, list_headers, unsubscribe_url
from newsletter.mail.messages import build_message, stable_message_id
from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import (
    Connection,
    ConnectionFailure,
    PermanentFailure,
    SendError,
    TemporaryFailure,
    Transport,
    UncertainDelivery,
)
from newsletter.models import Delivery, DeliveryKind, DeliveryStatus, SubscriberStatus
from newsletter.services.bounces import record_hard_bounce
from newsletter.services.subscriptions import latest_given_event
from newsletter.site import Site

__all__ = ["FlushResult", "Outbox", "compose_confirmation", "worker_name"]

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 5
FIRST_RETRY = timedelta(seconds=60)
LEASE = timedelta(seconds=30)


def worker_name() -> str:
    """Who holds a claim: host and process, so a stale claim can be traced."""
    return f"{socket.gethostname()}:{os.getpid()}"


def compose_confirmation(
    session: Session, site: Site, renderer: EmailRenderer, delivery: Delivery
) -> EmailMessage | None:
    """The confirmation email for ``delivery``, or None when it is no longer due."""
    subscriber = delivery.subscriber
    if subscriber is None or subscriber.status != SubscriberStatus.PENDING:
        return None
    consent = latest_given_event(session, subscriber)
    if consent is None:
        return None
    unsubscribe = unsubscribe_url(site, subscriber)
    context = {
        "organisation": site.organisation,
        "postal_address": site.postal_address,
        "first_name": subscriber.first_name,
        "confirm_url": confirm_url(site, subscriber, consent.id),
        "unsubscribe_url": unsubscribe,
        "subscribe_url": site.url("/subscribe"),
        "reason": f"Someone, hopefully you, signed up for news from {site.organisation} "
        "with this address.",
    }
    rendered = renderer.render("confirm", context)
    return build_message(
        site,
        to_name=f"{subscriber.first_name} {subscriber.last_name}",
        to_address=subscriber.email,
        subject=f"Please confirm your subscription to {site.organisation}",
        text=rendered.text,
        html=rendered.html,
        message_id=stable_message_id(site, "confirm", delivery.id),
        headers=list_headers(site, unsubscribe),
    )


@dataclass
class FlushResult:
    counts: Counter[str]
    last_error: str | None = None

    @property
    def waiting(self) -> int:
        return self.counts[DeliveryStatus.QUEUED]


class Outbox:
    """Sends queued confirmation emails, one claimed delivery at a time."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        site: Site,
        renderer: EmailRenderer,
        transport: Transport,
        lease: timedelta = LEASE,
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.renderer = renderer
        self.transport = transport
        self.lease = lease
        self.worker = worker_name()

    def send_one(self, delivery_id: int, connection: Connection | None = None) -> str | None:
        """Send one delivery if it can be claimed; returns its new status, or None if taken."""
        own = connection is None
        if connection is None:
            try:
                connection = self.transport.connect()
            except ConnectionFailure as error:
                log.warning("confirmation email %s not sent: %s", delivery_id, error)
                return DeliveryStatus.QUEUED
        try:
            return self._send(delivery_id, connection)[0]
        finally:
            if own:
                connection.close()

    def flush(self) -> FlushResult:
        """Send every waiting confirmation once; expired claims are resolved first.

        When the mail server cannot be reached the run stops there: the rest stay queued.
        """
        self._expire_stale_claims()
        with self.sessions() as session:
            ids = session.scalars(
                select(Delivery.id)
                .where(
                    Delivery.kind == DeliveryKind.CONFIRM,
                    Delivery.status == DeliveryStatus.QUEUED,
                )
                .order_by(Delivery.id)
            ).all()
        result = FlushResult(Counter())
        try:
            connection = self.transport.connect()
        except ConnectionFailure as unreachable:
            result.counts[DeliveryStatus.QUEUED] = len(ids)
            result.last_error = str(unreachable)
            return result
        try:
            for position, delivery_id in enumerate(ids, start=1):
                status, error = self._send(delivery_id, connection)
                if status is not None:
                    result.counts[status] += 1
                if error is not None:
                    result.last_error = str(error)
                if isinstance(error, ConnectionFailure):
                    result.counts[DeliveryStatus.QUEUED] += len(ids) - position
                    break
        finally:
            connection.close()
        return result

    def _expire_stale_claims(self) -> None:
        """A claim whose lease ran out while ``sending`` may have gone out: mark it unknown."""
        with self.sessions.begin() as session:
            session.execute(
                update(Delivery)
                .where(
                    Delivery.kind == DeliveryKind.CONFIRM,
                    Delivery.status == DeliveryStatus.SENDING,
                    Delivery.claimed_until < utcnow(),
                )
                .values(status=DeliveryStatus.UNKNOWN, last_error="claim expired mid-send")
            )

    def _claim(self, session: Session, delivery_id: int, now: datetime) -> bool:
        result = session.execute(
            update(Delivery)
            .where(Delivery.id == delivery_id, Delivery.status == DeliveryStatus.QUEUED)
            .values(
                status=DeliveryStatus.SENDING,
                attempts=Delivery.attempts + 1,
                claimed_by=self.worker,
                claimed_until=now + self.lease,
            )
            .execution_options(synchronize_session=False)
        )
        return rowcount(result) == 1

    def _send(
        self, delivery_id: int, connection: Connection
    ) -> tuple[str | None, SendError | None]:
        """The delivery's new status (None if someone else claimed it) and what went wrong."""
        now = utcnow()
        with self.sessions.begin() as session:
            if not self._claim(session, delivery_id, now):
                return None, None
            delivery = session.get_one(Delivery, delivery_id)
            message = compose_confirmation(session, self.site, self.renderer, delivery)
            if message is None:
                delivery.status = DeliveryStatus.SKIPPED
                delivery.claimed_until = None
                return DeliveryStatus.SKIPPED, None
            recipient = delivery.subscriber.email if delivery.subscriber else ""
            delivery.message_id = message["Message-ID"]
        try:
            connection.send(message, self.site.sender_address, [recipient])
        except SendError as error:
            return self._record_failure(delivery_id, error), error
        with self.sessions.begin() as session:
            delivery = session.get_one(Delivery, delivery_id)
            delivery.status = DeliveryStatus.SENT
            delivery.sent_at = utcnow()
            delivery.claimed_until = None
            delivery.last_error = None
        log.info("confirmation email %s sent", delivery_id)
        return DeliveryStatus.SENT, None

    def _record_failure(self, delivery_id: int, error: SendError) -> str:
        with self.sessions.begin() as session:
            delivery = session.get_one(Delivery, delivery_id)
            delivery.last_error = str(error)[:1000]
            delivery.claimed_until = None
            if isinstance(error, UncertainDelivery):
                delivery.status = DeliveryStatus.UNKNOWN
            elif isinstance(error, PermanentFailure):
                delivery.status = DeliveryStatus.FAILED
                if error.hard_bounce and delivery.subscriber is not None:
                    record_hard_bounce(session, delivery.subscriber)
            elif isinstance(error, ConnectionFailure | TemporaryFailure):
                if isinstance(error, ConnectionFailure):
                    # Nothing reached the server, so this try does not count against the message.
                    delivery.attempts -= 1
                if delivery.attempts >= MAX_ATTEMPTS:
                    delivery.status = DeliveryStatus.FAILED
                else:
                    delivery.status = DeliveryStatus.QUEUED
                    delivery.next_attempt_at = utcnow() + FIRST_RETRY * 2 ** max(
                        delivery.attempts - 1, 0
                    )
            status = delivery.status
        log.warning("confirmation email %s not sent: %s", delivery_id, error)
        return status
