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
from newsletter.mail.messages import stable_message_id, wrap_text
from newsletter.mail.pieces import Pieces, slot_markers
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import AlternativeTemplate, Outgoing
from newsletter.models import Delivery, SubscriberStatus
from newsletter.services.subscriptions import latest_given_event
from newsletter.site import Site
from newsletter.suppressions import may_send_confirmation

__all__ = ["ConfirmationDraft", "ConfirmationTemplate", "read_confirmation"]

SLOTS = ("confirm_url", "unsubscribe_url")


@dataclass(frozen=True)
class ConfirmationDraft:
    """Everything a confirmation email needs from the database, as plain values.

    ``id`` and ``token_nonce`` are the subscriber's: they sign the links. The name is left out
    on purpose (see above).
    """

    delivery_id: int
    id: int
    token_nonce: str
    email: str
    consent_event_id: int


def read_confirmation(session: Session, delivery_id: int) -> ConfirmationDraft | None:
    """What the confirmation email of a delivery needs, or None when it is no longer due."""
    delivery = session.get(Delivery, delivery_id)
    subscriber = delivery.subscriber if delivery else None
    if subscriber is None or subscriber.status != SubscriberStatus.PENDING:
        return None
    consent = latest_given_event(session, subscriber)
    if consent is None or not may_send_confirmation(session, subscriber.email, consent):
        return None
    return ConfirmationDraft(
        delivery_id=delivery_id,
        id=subscriber.id,
        token_nonce=subscriber.token_nonce,
        email=subscriber.email,
        consent_event_id=consent.id,
    )


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

    def outgoing_for(self, draft: ConfirmationDraft) -> Outgoing:
        """The finished message for one pending subscriber; touches no database."""
        unsubscribe = unsubscribe_url(self.site, draft)
        values = {
            "confirm_url": confirm_url(self.site, draft, draft.consent_event_id),
            "unsubscribe_url": unsubscribe,
        }
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        return self._wire.assemble(
            to_name="",
            to_address=draft.email,
            message_id=stable_message_id(self.site, "confirm", draft.delivery_id),
            text_qp=self._text.fill_encoded(values),
            html_qp=self._html.fill_encoded(escaped),
            headers=list_headers(self.site, unsubscribe),
        )
