"""The confirmation email a pending subscriber receives, built from plain values.

It goes to an address nobody has yet proved they own, so it carries nothing typed into the
form but that address: no name in ``To:``, a greeting without one. Otherwise anyone could have
it carry their text to anyone's inbox. Which emails are due, and sending them, is
``newsletter.services.confirmations``'s work.
"""

from __future__ import annotations

import html

from newsletter.links import confirm_url, list_headers, preferences_url, unsubscribe_url
from newsletter.mail.campaign import CONFIRMATION, campaign_template
from newsletter.mail.dkim import Signer
from newsletter.mail.pieces import Pieces, slot_markers, wrap_text
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import Outgoing, stable_message_id
from newsletter.people import Person
from newsletter.site import Site

__all__ = ["ConfirmationTemplate"]

SLOTS = ("confirm_url", "unsubscribe_url", "preferences_url")


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
        self._wire = campaign_template(site, subject, CONFIRMATION, Signer.for_site(site))

    def outgoing_for(self, person: Person, consent_event_id: int, delivery_id: int) -> Outgoing:
        """The message of delivery ``delivery_id`` asking ``person`` to confirm the consent
        ``consent_event_id``; touches no database. Their name stays out of it (see above)."""
        unsubscribe = unsubscribe_url(self.site, person)
        values = {
            "confirm_url": confirm_url(self.site, person, consent_event_id),
            "unsubscribe_url": unsubscribe,
            "preferences_url": preferences_url(self.site, person),
        }
        escaped = {name: html.escape(value, quote=True) for name, value in values.items()}
        return self._wire.assemble(
            to_name="",
            to_address=person.email,
            message_id=stable_message_id(self.site, "confirm", delivery_id),
            text_qp=self._text.fill_encoded(values),
            html_qp=self._html.fill_encoded(escaped),
            headers=list_headers(self.site, unsubscribe),
        )
