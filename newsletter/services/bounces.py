"""Hard bounces: the address does not exist, so it is never mailed again."""

from __future__ import annotations

from sqlalchemy.orm import Session

from newsletter.addresses import suppression_hash
from newsletter.models import Subscriber, SubscriberStatus, Suppression

__all__ = ["record_hard_bounce", "suppress"]


def suppress(session: Session, email: str, reason: str) -> None:
    """Add ``email``'s hash to the suppression list (once)."""
    digest = suppression_hash(email)
    if session.get(Suppression, digest) is None:
        session.add(Suppression(email_hash=digest, reason=reason))
        session.flush()


def record_hard_bounce(session: Session, subscriber: Subscriber) -> None:
    subscriber.status = SubscriberStatus.BOUNCED
    suppress(session, subscriber.email, "bounced")
