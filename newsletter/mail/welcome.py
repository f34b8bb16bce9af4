"""The welcome email a person receives on confirming: the greeting, their preferences link
and the latest articles of their topics, built from plain values.

Each welcome holds its own articles and goes to one person, so it is rendered whole for its
message; its per-person values go in through the same markers as a digest's, escaped and
encoded once, never as template code.
"""

from __future__ import annotations

import html
from typing import Any

from newsletter.links import list_headers, preferences_url, unsubscribe_url
from newsletter.mail.campaign import campaign_template
from newsletter.mail.digest import FALLBACK_NAME, ArticleView, digest_reason
from newsletter.mail.dkim import Signer
from newsletter.mail.headers import one_line
from newsletter.mail.pieces import Pieces, slot_markers, wrap_text
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import Outgoing, stable_message_id
from newsletter.people import Person
from newsletter.site import Site

__all__ = ["WELCOME", "welcome_message"]

TEMPLATE = "welcome"
#: The campaign of welcome emails (``Feedback-ID``).
WELCOME = "welcome"
SLOTS = ("first_name", "unsubscribe_url", "preferences_url")


def welcome_message(
    site: Site,
    renderer: EmailRenderer,
    person: Person,
    articles: list[ArticleView],
    delivery_id: int,
) -> Outgoing:
    """The welcome of delivery ``delivery_id`` to ``person``; touches no database."""
    subject = f"Welcome to the news from {site.organisation}"
    markers = slot_markers(SLOTS)
    context: dict[str, Any] = {
        "subject": subject,
        "preheader": f"Thank you for subscribing to news from {site.organisation}.",
        "organisation": site.organisation,
        "postal_address": site.postal_address,
        "reason": digest_reason(site),
        # A welcome has no web version, and its articles need no marks of their own.
        "view_url": "",
        "article_begin": "",
        "article_end": "",
        "articles": articles,
        **markers,
    }
    rendered = renderer.render(TEMPLATE, context)
    text = Pieces.cut(wrap_text(rendered.text), markers)
    html_part = Pieces.cut(rendered.html, markers)
    link = unsubscribe_url(site, person)
    values = {
        "first_name": one_line(person.first_name) or FALLBACK_NAME,
        "unsubscribe_url": link,
        "preferences_url": preferences_url(site, person),
    }
    escaped = {slot: html.escape(value, quote=True) for slot, value in values.items()}
    wire = campaign_template(site, subject, WELCOME, Signer.for_site(site))
    return wire.assemble(
        to_name=f"{person.first_name} {person.last_name}",
        to_address=person.email,
        message_id=stable_message_id(site, "welcome", delivery_id),
        text_qp=text.fill_encoded(values),
        html_qp=html_part.fill_encoded(escaped),
        headers=list_headers(site, link),
    )
