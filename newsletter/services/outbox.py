"""The outbox for transactional mail (confirmations), sent by the same engine as digests."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass

from sqlalchemy.orm import Session, sessionmaker

from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import Transport
from newsletter.models import DeliveryStatus
from newsletter.sending import ledger
from newsletter.sending.engine import Outcome, Sender, SendOptions
from newsletter.sending.jobs import ConfirmationJob
from newsletter.site import Site

__all__ = ["FlushResult", "Outbox"]

# Confirmations are few; one connection is plenty, and a dead server should stop us quickly.
FLUSH_OPTIONS = SendOptions(workers=1, batch=50, max_errors=3)


@dataclass
class FlushResult:
    counts: Counter[str]
    outcome: Outcome
    message: str

    @property
    def waiting(self) -> int:
        return self.counts[DeliveryStatus.QUEUED]


class Outbox:
    """Sends queued confirmation emails: right after a signup, or all at once (flush)."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        site: Site,
        renderer: EmailRenderer,
        transport: Transport,
    ) -> None:
        self.sessions = sessions
        self.site = site
        self.job = ConfirmationJob(site, renderer)
        self.transport = transport

    def _sender(self) -> Sender:
        return Sender(
            self.sessions, self.transport, self.site.sender_address, self.job, FLUSH_OPTIONS
        )

    def send_one(self, delivery_id: int) -> Counter[str]:
        """Send one queued confirmation now; a failure leaves it queued for ``flush``."""
        return self._sender().send_now([delivery_id])

    def flush(self) -> FlushResult:
        """Send every waiting confirmation; stops early if the mail server is unreachable."""
        sender = self._sender()
        result = sender.run()
        with self.sessions() as session:
            remaining = ledger.counts(session, self.job.scope())
        totals = Counter(result.counts)
        totals[DeliveryStatus.QUEUED] = remaining[DeliveryStatus.QUEUED]
        return FlushResult(totals, result.outcome, result.message)
