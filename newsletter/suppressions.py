"""The suppression list: hashed addresses that are never mailed or imported again.

Hard bounces (the address does not exist) and erased people end up here. A fresh signup
through the form, once confirmed, is the only way an address comes off the list.

The rules live here, below the services and the sender, because both apply them: the sender
records hard bounces as the mail server answers, and the confirmation job never mails a
suppressed address. Like ``addresses``, these are plain functions on a Session and the models.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Protocol

from sqlalchemy import ColumnElement, and_, bindparam, delete, func, or_, select
from sqlalchemy.orm import Session

from newsletter.addresses import folded_suppression_hash, suppression_hash
from newsletter.models import FORM_SIGNUP, Subscriber, SubscriberStatus, Suppression

__all__ = [
    "COVERING",
    "SUPPRESSED_SINCE",
    "GivenConsent",
    "confirmation_allowed",
    "earliest_suppression",
    "lift_suppression",
    "may_send_confirmation",
    "record_hard_bounce",
    "suppress",
    "suppressed_since",
    "suppression_of",
    "suppression_params",
]


def suppress(session: Session, email: str, reason: str) -> None:
    """Add ``email``'s hash to the suppression list (once)."""
    digest = suppression_hash(email)
    if session.get(Suppression, digest) is None:
        session.add(Suppression(email_hash=digest, reason=reason))
        session.flush()


def _covering(own_hash: Any, folded_hash: Any) -> ColumnElement[bool]:
    """The ``suppressions`` rows covering an address: its own hash, or an older folded hash it
    shares with its look-alikes (they were one person when that entry was made)."""
    return or_(
        Suppression.email_hash == own_hash,
        and_(Suppression.email_hash == folded_hash, Suppression.folded),
    )


#: :func:`suppression_of` with the address's two hashes as the parameters of
#: :func:`suppression_params`, built once.
COVERING = _covering(bindparam("suppression_hash"), bindparam("folded_hash"))
#: When an address was first suppressed (NULL when it is not), as a column of a select that
#: reads more in the same statement; its parameters are :func:`suppression_params`'.
SUPPRESSED_SINCE = select(func.min(Suppression.created_at)).where(COVERING).scalar_subquery()


def suppression_params(email: str) -> dict[str, str]:
    """The parameters of :data:`COVERING` and :data:`SUPPRESSED_SINCE` for ``email``."""
    return {
        "suppression_hash": suppression_hash(email),
        "folded_hash": folded_suppression_hash(email),
    }


def suppression_of(email: str) -> ColumnElement[bool]:
    """Which ``suppressions`` rows cover ``email`` (see :func:`_covering`)."""
    return _covering(suppression_hash(email), folded_suppression_hash(email))


def earliest_suppression(session: Session, email: str) -> Suppression | None:
    """The oldest entry covering ``email`` (however typed), or None when it is not suppressed."""
    return session.scalar(
        select(Suppression).where(suppression_of(email)).order_by(Suppression.created_at).limit(1)
    )


def suppressed_since(session: Session, email: str) -> datetime | None:
    """When ``email`` (however typed) was put on the suppression list, or None."""
    entry = earliest_suppression(session, email)
    return entry.created_at if entry is not None else None


class GivenConsent(Protocol):
    """What the rule below reads of a consent event (a ``ConsentEvent``, or its columns)."""

    @property
    def method(self) -> str: ...

    @property
    def at(self) -> datetime: ...


def may_send_confirmation(session: Session, email: str, consent: GivenConsent) -> bool:
    """Whether a confirmation email answering ``consent`` may go to ``email``.

    A suppressed address gets one only when the person came back through the form after it
    was suppressed: that is the one way back, and confirming needs the email. Imports and
    older signups never reach a suppressed address.
    """
    return confirmation_allowed(suppressed_since(session, email), consent)


def confirmation_allowed(suppressed: datetime | None, consent: GivenConsent) -> bool:
    """:func:`may_send_confirmation`'s rule, knowing when the address was suppressed (None:
    it is not)."""
    return suppressed is None or (consent.method == FORM_SIGNUP and consent.at >= suppressed)


def record_hard_bounce(session: Session, subscriber: Subscriber) -> None:
    """The address does not exist: mark the subscriber bounced and suppress the address."""
    subscriber.status = SubscriberStatus.BOUNCED
    suppress(session, subscriber.email, "bounced")


def lift_suppression(session: Session, email: str) -> None:
    """A fresh, confirmed signup is the one way a suppressed address comes back."""
    session.execute(delete(Suppression).where(suppression_of(email)))
