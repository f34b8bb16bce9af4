"""The welcome email a person receives on confirming: the greeting, their preferences link
and the latest articles of their topics, built like a digest from plain values."""

from __future__ import annotations

from newsletter.mail.digest import ArticleView, PreparedDigest, prepare_articles
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import Outgoing, stable_message_id
from newsletter.people import Person
from newsletter.site import Site

__all__ = ["welcome_message"]

TEMPLATE = "welcome"
# A welcome has no web version of its own: the number only fills the digest's slot for one.
NO_DIGEST = 0


def welcome_message(
    site: Site,
    renderer: EmailRenderer,
    person: Person,
    articles: list[ArticleView],
    delivery_id: int,
) -> Outgoing:
    """The welcome of delivery ``delivery_id`` to ``person``; touches no database."""
    subject = f"Welcome to the news from {site.organisation}"
    prepared: PreparedDigest = prepare_articles(
        site, renderer, NO_DIGEST, subject, articles, template=TEMPLATE
    )
    return prepared.outgoing_for(person, stable_message_id(site, "welcome", delivery_id))
