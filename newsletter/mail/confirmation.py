"""The confirmation email a pending subscriber receives (data only; sending is elsewhere).

Reading what the email needs and building it are two steps, so that the caller can end its
database transaction in between: on SQLite every transaction of the service holds the write
lock, and rendering a message while holding it would keep signups waiting.
"""

from __future__ import annotations

from dataclasses import dataclass
from email.message import EmailMessage

from sqlalchemy.orm import Session

from newsletter.links import confirm_url, list_headers, unsubscribe_url
from newsletter.mail.messages import build_message, stable_message_id
from newsletter.mail.render import EmailRenderer
from newsletter.models import Delivery, SubscriberStatus
from newsletter.services.bounces import may_send_confirmation
from newsletter.services.subscriptions import latest_given_event
from newsletter.site import Site

__all__ = ["ConfirmationDraft", "build_confirmation", "compose_confirmation", "read_confirmation"]


@dataclass(frozen=True)
class ConfirmationDraft:
    """Everything a confirmation email needs from the database, as plain values.

    ``id`` and ``token_nonce`` are the subscriber's: they sign the links.
    """

    delivery_id: int
    id: int
    token_nonce: str
    email: str
    first_name: str
    last_name: str
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
        first_name=subscriber.first_name,
        last_name=subscriber.last_name,
        consent_event_id=consent.id,
    )


def build_confirmation(
    site: Site, renderer: EmailRenderer, draft: ConfirmationDraft
) -> EmailMessage:
    """The confirmation email itself; touches no database."""
    unsubscribe = unsubscribe_url(site, draft)
    context = {
        "organisation": site.organisation,
        "postal_address": site.postal_address,
        "first_name": draft.first_name,
        "confirm_url": confirm_url(site, draft, draft.consent_event_id),
        "unsubscribe_url": unsubscribe,
        "subscribe_url": site.url("/subscribe"),
        "reason": f"Someone, hopefully you, signed up for news from {site.organisation} "
        "with this address.",
    }
    rendered = renderer.render("confirm", context)
    return build_message(
        site,
        to_name=f"{draft.first_name} {draft.last_name}",
        to_address=draft.email,
        subject=f"Please confirm your subscription to {site.organisation}",
        text=rendered.text,
        html=rendered.html,
        message_id=stable_message_id(site, "confirm", draft.delivery_id),
        headers=list_headers(site, unsubscribe),
    )


def compose_confirmation(
    session: Session, site: Site, renderer: EmailRenderer, delivery_id: int
) -> EmailMessage | None:
    """The confirmation email for a delivery, or None when it is no longer due."""
    draft = read_confirmation(session, delivery_id)
    return build_confirmation(site, renderer, draft) if draft is not None else None
