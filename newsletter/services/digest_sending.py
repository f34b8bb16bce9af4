"""Sending a digest: queue it, send again the unknown on request, run the sender, finish it.

``newsletter digest send`` calls this and keeps only its output (the lines, the progress bar,
Ctrl-C); the coming ``digest auto`` and tests call the same steps. The article part is
rendered once, here, and the sender's worker threads build each message from it.

Unlike other services, each step here commits its own short transaction, as the sender does
for every message: a send to many thousands must never hold a transaction open across SMTP
I/O, and what was queued or sent must stay recorded if the process stops.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.mail.digest import prepare_digest
from newsletter.mail.wire import Outgoing
from newsletter.models import Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber
from newsletter.sending import ledger
from newsletter.sending.dry_run import DryRunReport, dry_run
from newsletter.sending.engine import RunResult, Sender, SendOptions
from newsletter.sending.jobs import ClaimedDelivery, DigestJob, Skip
from newsletter.services.digests import get_digest
from newsletter.services.mailroom import Mailroom

__all__ = [
    "NOTHING_TO_READ",
    "DigestSend",
    "DigestStatusReport",
    "Finished",
    "Queued",
    "digest_status",
]

#: Why a person gets no email of a digest: nothing in it is in their topics, and there is no
#: general news. Kept as the delivery's last error.
NOTHING_TO_READ = "nothing in their topics"


@dataclass(frozen=True)
class Queued:
    """Where a run starts from."""

    #: Deliveries queued by this run, or None when an earlier run queued the digest.
    queued_now: int | None
    #: How long queueing took, in seconds.
    seconds: float
    #: Deliveries of unknown outcome queued again (``resend_unknown``).
    requeued: int
    #: The digest's deliveries per state before sending.
    before: Counter[str]

    @property
    def open(self) -> int:
        """Deliveries still to go."""
        return self.before[DeliveryStatus.QUEUED] + self.before[DeliveryStatus.SENDING]


@dataclass(frozen=True)
class Finished:
    """What a run did and where the digest stands after it."""

    result: RunResult
    #: Whether the digest is now ``sent`` (nothing of it queued or sending).
    sent: bool
    #: The digest's deliveries per state after the run.
    after: Counter[str]
    #: Deliveries skipped during the run. People who leave mid-send are skipped by their
    #: unsubscribe (or erasure) itself, not by a worker, so this is read from the deliveries,
    #: as ``digest status`` counts them.
    skipped: int

    @property
    def still_queued(self) -> int:
        return self.after[DeliveryStatus.QUEUED] + self.after[DeliveryStatus.SENDING]

    @property
    def unknown(self) -> int:
        """Deliveries of the digest whose outcome is unknown, from this run or before."""
        return self.after[DeliveryStatus.UNKNOWN]


class DigestSend:
    """One digest's send, step by step."""

    def __init__(self, mailroom: Mailroom, digest: Digest) -> None:
        self.mailroom = mailroom
        self.sessions, self.site, self.renderer, self.transport = mailroom
        self.digest = digest

    @classmethod
    def load(cls, mailroom: Mailroom, digest_id: int) -> DigestSend:
        """The send of digest ``digest_id``; raises :class:`NotFound` when there is none."""
        with mailroom.sessions() as session:
            digest = get_digest(session, digest_id)
            session.expunge(digest)
        return cls(mailroom, digest)

    @cached_property
    def job(self) -> DigestJob:
        """The sender's job: each article rendered once, each person's message built from the
        articles of the topics they held when their delivery was claimed."""
        with self.sessions() as session:
            prepared = prepare_digest(session, self.site, self.renderer, self.digest)

        def compose(delivery: ClaimedDelivery, message_id: str) -> Outgoing | Skip:
            if prepared.version(delivery.person.topic_ids) is None:
                return Skip(NOTHING_TO_READ)
            return prepared.outgoing_for(delivery.person, message_id)

        return DigestJob(self.digest.id, self.site, compose)

    def dry_run(self) -> DryRunReport:
        """Build every message a send would build now; send nothing, change nothing."""
        draft = self.digest.status == DigestStatus.DRAFT
        return dry_run(self.sessions, self.job, draft=draft)

    def queue(self, resend_unknown: bool = False) -> Queued:
        """On the first run, queue one delivery per active subscriber; with
        ``resend_unknown``, queue again those whose outcome is unknown (reopening a sent
        digest)."""
        job = self.job
        started = time.monotonic()
        with self.sessions.begin() as session:
            queued_now = ledger.queue_digest(session, self.digest.id)
            requeued = ledger.resend_unknown(session, job) if resend_unknown else 0
            if requeued:
                ledger.reopen_digest(session, self.digest.id)
        seconds = time.monotonic() - started
        return Queued(queued_now, seconds, requeued, self.counts())

    def sender(self, options: SendOptions, notice: Callable[[str], None] | None = None) -> Sender:
        """The sender for this digest; ``run()`` it, ``interrupt()`` it from another thread."""
        return Sender(
            self.sessions,
            self.transport,
            self.site.sender_address,
            self.job,
            options,
            notice,
            return_path=self.site.return_path,
        )

    def finish(self, result: RunResult, queued: Queued) -> Finished:
        """Mark the digest ``sent`` once nothing of it is open, and count where it stands."""
        with self.sessions.begin() as session:
            sent = ledger.finish_digest(session, self.digest.id)
        after = self.counts()
        skipped = after[DeliveryStatus.SKIPPED] - queued.before[DeliveryStatus.SKIPPED]
        return Finished(result, sent, after, skipped)

    def counts(self) -> Counter[str]:
        """The digest's deliveries per state (every state present)."""
        with self.sessions() as session:
            return ledger.counts(session, Delivery.digest_id == self.digest.id)


@dataclass(frozen=True)
class DigestStatusReport:
    counts: Counter[str]
    #: The newest deliveries with an error: (address, or None once erased; state; error).
    last_errors: list[tuple[str | None, str, str | None]]


def digest_status(session: Session, digest_id: int, errors: int = 5) -> DigestStatusReport:
    """How far the sending of a digest has got: deliveries per state and the last errors."""
    counts = ledger.counts(session, Delivery.digest_id == digest_id)
    rows = session.execute(
        select(Subscriber.email, Delivery.status, Delivery.last_error)
        .join(Subscriber, Subscriber.id == Delivery.subscriber_id, isouter=True)
        .where(Delivery.digest_id == digest_id, Delivery.last_error.is_not(None))
        .order_by(Delivery.id.desc())
        .limit(errors)
    ).all()
    return DigestStatusReport(counts, [(email, state, error) for email, state, error in rows])
