"""The confirmation email a pending subscriber receives (data only; sending is elsewhere)."""

from __future__ import annotations

from email.message import EmailMessage

from sqlalchemy.orm import Session

from newsletter.links import confirm_url, list_headers, unsubscribe_url
from newsletter.mail.messages import build_message, stable_message_id
from newsletter.mail.render import EmailRenderer
from newsletter.models import Delivery, SubscriberStatus
from newsletter.services.bounces import may_send_confirmation
from newsletter.services.subscriptions import latest_given_event
from newsletter.site import Site

__all__ = ["compose_confirmation"]


def compose_confirmation(
    session: Session, site: Site, renderer: EmailRenderer, delivery_id: int
) -> EmailMessage | None:
    """The confirmation email for a delivery, or None when it is no longer due."""
    delivery = session.get(Delivery, delivery_id)
    subscriber = delivery.subscriber if delivery else None
    if subscriber is None or subscriber.status != SubscriberStatus.PENDING:
        return None
    consent = latest_given_event(session, subscriber)
    if consent is None or not may_send_confirmation(session, subscriber.email, consent):
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
        message_id=stable_message_id(site, "confirm", delivery_id),
        headers=list_headers(site, unsubscribe),
    )
