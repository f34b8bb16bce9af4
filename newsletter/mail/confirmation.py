"""The confirmation email a pending subscriber receives (data only; sending is elsewhere).

It goes to an address nobody has yet proved they own, so it carries nothing typed into the
form but that address: no name in ``To:``, a greeting without one. Otherwise anyone could have
it carry their text to anyone's inbox.

Reading what the email needs and building it are two steps, so that the caller can end its
database transaction in between: on SQLite every transaction of the service holds the write
lock, and rendering a message while holding it would keep signups waiting.
"""

from __future__ import annotations

import html
from dataclasses import dataclass

from sqlalchemy.orm import Session

from newsletter.links import confirm_url, list_headers, unsubscribe_url
from newsletter.mail.pieces import Pieces, slot_markers, wrap_text
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import AlternativeTemplate, Outgoing, stable_message_id
from newsletter.models import Delivery, Subscriber, SubscriberStatus
from newsletter.people import Person, person_in, with_person
from newsletter.services.subscriptions import latest_given_event
from newsletter.site import Site
from newsletter.suppressions import may_send_confirmation

__all__ = ["ConfirmationTemplate", "DueConfirmation", "read_confirmation"]

SLOTS = ("confirm_url", "unsubscribe_url")


@dataclass(frozen=True)
class DueConfirmation:
    """A confirmation email still due: the delivery, its person, the consent it confirms."""

    delivery_id: int
    person: Person
    consent_event_id: int


def read_confirmation(session: Session, delivery_id: int) -> DueConfirmation | None:
    """What the confirmation email of a delivery needs, or None when it is no longer due."""
    row = session.execute(
        with_person()
        .join(Delivery, Delivery.subscriber_id == Subscriber.id)
        .where(Delivery.id == delivery_id, Subscriber.status == SubscriberStatus.PENDING)
    ).one_or_none()
    person = person_in(row) if row is not None else None
    if person is None:
        return None
    consent = latest_given_event(session, person)
    if consent is None or not may_send_confirmation(session, person.email, consent):
        return None
    return DueConfirmation(delivery_id, person, consent.id)


class ConfirmationTemplate:
    """The confirmation email rendered and CSS-inlined once; each message only fills in the
    person's links."""

    def __init__(self, site: Site, renderer: EmailRenderer) -> None:
        self.site = site
        markers = slot_markers(SLOTS)
        context = {
            "organisation": site.organisation,
            "postal_address": site.postal_address,
            "subscribe_url": site.url("/subscribe"),
            "reason": f"Someone, hopefully you, signed up for news from {site.organisation} "
            "with this address.",
            **markers,
        }
        rendered = renderer.render("confirm", context)
        self._text = Pieces.cut(wrap_text(rendered.text), markers)
        self._html = Pieces.cut(rendered.html, markers)
        subject = f"Please confirm your subscription to {site.organisation}"
        self._wire = AlternativeTemplate(site.sender, subject)

    def outgoing_for(self, due: DueConfirmation) -> Outgoing:
        """The finished message for one pending subscriber; touches no database. Their name
        stays out of it (see above)."""
        person = due.person
        unsubscribe = unsubscribe_url(self.site, person)
        values = {
            "confirm_url": confirm_url(self.site, person, due.consent_event_id),
            "unsubscribe_url": unsubscribe,
        }
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        return self._wire.assemble(
            to_name="",
            to_address=person.email,
            message_id=stable_message_id(self.site, "confirm", due.delivery_id),
            text_qp=self._text.fill_encoded(values),
            html_qp=self._html.fill_encoded(escaped),
            headers=list_headers(self.site, unsubscribe),
        )
