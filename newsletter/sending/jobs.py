"""What is being sent: the deliveries a job covers and how one message is built.

The engine is the same for a digest and for confirmation emails; a job says which deliveries
are its own, which subscriber states may still receive them, and composes each message. The
confirmation emails' job is ``newsletter.services.confirmations.ConfirmationJob``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from sqlalchemy import ColumnElement

from newsletter.mail.wire import Outgoing, stable_message_id
from newsletter.models import Delivery, DeliveryKind, SubscriberStatus
from newsletter.people import Person
from newsletter.site import Site

__all__ = ["ClaimedDelivery", "DigestJob", "Job", "Skip"]


@dataclass(frozen=True)
class ClaimedDelivery:
    """A delivery taken by a worker, and the person it goes to."""

    id: int
    person: Person


@dataclass(frozen=True)
class Skip:
    """A delivery with nothing to send (nothing in a digest is in the person's topics): it
    becomes ``skipped``, with ``reason`` as its last error."""

    reason: str


class Job(Protocol):
    """A set of deliveries sent by the engine."""

    name: str
    kind: str
    #: Subscriber states that may still receive this mail when their turn comes.
    eligible: tuple[SubscriberStatus, ...]

    def scope(self) -> ColumnElement[bool]:
        """The deliveries that belong to this job."""

    def compose(self, delivery: ClaimedDelivery) -> Outgoing | Skip | None:
        """The message for ``delivery``, or None when it is no longer due, or a :class:`Skip`
        saying why there is nothing to send (either way it is skipped).

        Called with no transaction open, once per delivery a worker takes: just before the
        delivery is marked ``sending`` when it is the next of the batch (its message is
        composed while the one before it is sent, ``sending.composer``), else just after. The
        message goes out only once the delivery is marked."""


class DigestJob:
    """One digest to its queued recipients, each with the articles of their topics; each
    article is rendered once."""

    kind: str = DeliveryKind.DIGEST
    eligible: tuple[SubscriberStatus, ...] = (SubscriberStatus.ACTIVE,)

    def __init__(
        self,
        digest_id: int,
        site: Site,
        compose: Callable[[ClaimedDelivery, str], Outgoing | Skip],
    ) -> None:
        self.digest_id = digest_id
        self.name = f"digest {digest_id}"
        self.site = site
        self._compose = compose

    def scope(self) -> ColumnElement[bool]:
        return Delivery.digest_id == self.digest_id

    def compose(self, delivery: ClaimedDelivery) -> Outgoing | Skip | None:
        message_id = stable_message_id(self.site, f"digest{self.digest_id}", delivery.id)
        return self._compose(delivery, message_id)
