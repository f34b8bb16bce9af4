"""Digest emails: the article part rendered once, the per-person parts filled per message.

A campaign renders the digest templates and inlines their CSS once, with a unique random
marker where each per-person value goes (greeting name, unsubscribe link), cuts the result at
the markers and encodes the pieces as quoted-printable. Each message is then only a join of
the pieces with that person's escaped and encoded values, plus its headers. The values are
inserted in one pass and never read again, so a name containing a marker or ``{{ … }}`` is
just text.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.links import list_headers, preferences_url, unsubscribe_url
from newsletter.mail.campaign import campaign_template, digest_campaign
from newsletter.mail.dkim import Signer
from newsletter.mail.headers import one_line
from newsletter.mail.pieces import Pieces, slot_markers, wrap_text
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import Outgoing
from newsletter.models import Article, Digest, DigestArticle
from newsletter.people import Person
from newsletter.site import Site

__all__ = [
    "ArticleView",
    "PreparedDigest",
    "SAMPLE_RECIPIENT",
    "article_views",
    "digest_reason",
    "prepare_digest",
    "view_url",
]

TEMPLATE = "digest"
SLOTS = ("first_name", "unsubscribe_url", "preferences_url")
# Only for a person without a first name (none comes in through the form or the import).
FALLBACK_NAME = "there"


# Previews go to staff, never to a subscriber: id 0 signs an unsubscribe link that matches no
# one, so clicking it in a test message changes nothing.
SAMPLE_RECIPIENT = Person(
    id=0, token_nonce="preview", email="reader@example.org", first_name="Alex", last_name="Sample"
)


@dataclass(frozen=True)
class ArticleView:
    """What the templates may show of an article: plain values, never a database row."""

    title: str
    url: str
    date: str
    iso_date: str
    summary: str
    image_url: str | None
    image_alt: str


def article_views(session: Session, digest_id: int) -> list[ArticleView]:
    """The digest's articles in order, as template data."""
    articles = session.scalars(
        select(Article)
        .join(DigestArticle, DigestArticle.article_id == Article.id)
        .where(DigestArticle.digest_id == digest_id)
        .order_by(DigestArticle.position)
    )
    return [_view(article) for article in articles]


def _view(article: Article) -> ArticleView:
    published = article.published_at
    return ArticleView(
        title=article.title,
        url=article.url,
        date=f"{published.day} {published:%B %Y}",
        iso_date=published.date().isoformat(),
        summary=article.summary,
        image_url=article.image_url,
        # The title is right beside the picture: without a description from the feed the
        # picture is decorative (empty alt), rather than the title read out twice.
        image_alt=article.image_alt or "",
    )


def view_url(site: Site, digest_id: int) -> str:
    """The digest's public web version ("view in browser")."""
    return site.url(f"/digests/{digest_id}")


def digest_reason(site: Site) -> str:
    """Why a person receives a digest, for the footer."""
    return (
        f"You receive this email because you subscribed to news from {site.organisation}. "
        "You can unsubscribe at any time with one click."
    )


class PreparedDigest:
    """A digest rendered and inlined once, ready to become one message per recipient."""

    def __init__(
        self, site: Site, digest_id: int, subject: str, text: Pieces, html_part: Pieces
    ) -> None:
        self.site = site
        self.digest_id = digest_id
        self.subject = subject
        self._text = text
        self._html = html_part
        self._signer = Signer.for_site(site)
        self._wire = campaign_template(site, subject, digest_campaign(digest_id), self._signer)
        for part, name in ((text, "digest.txt"), (html_part, "digest.html")):
            if "unsubscribe_url" not in part.slots:
                # A digest without a way out must never be sent.
                raise ValueError(f"the {name} template has no unsubscribe link")

    def _values(self, recipient: Person) -> tuple[dict[str, str], dict[str, str], str]:
        name = one_line(recipient.first_name) or FALLBACK_NAME
        link = unsubscribe_url(self.site, recipient)
        text_values = {
            "first_name": name,
            "unsubscribe_url": link,
            "preferences_url": preferences_url(self.site, recipient),
        }
        html_values = {slot: html.escape(value, quote=True) for slot, value in text_values.items()}
        return text_values, html_values, link

    def text_for(self, recipient: Person) -> str:
        """The plain-text part as ``recipient`` gets it."""
        return self._text.fill(self._values(recipient)[0])

    def html_for(self, recipient: Person) -> str:
        """The HTML part as ``recipient`` gets it."""
        return self._html.fill(self._values(recipient)[1])

    def outgoing_for(
        self, recipient: Person, message_id: str, subject: str | None = None
    ) -> Outgoing:
        """The finished message for one recipient. ``subject`` replaces the digest's (staff's
        test sends); everything else is what a send to subscribers builds."""
        text_values, html_values, link = self._values(recipient)
        wire = self._wire
        if subject is not None:
            wire = campaign_template(
                self.site, subject, digest_campaign(self.digest_id), self._signer
            )
        return wire.assemble(
            to_name=f"{recipient.first_name} {recipient.last_name}",
            to_address=recipient.email,
            message_id=message_id,
            text_qp=self._text.fill_encoded(text_values),
            html_qp=self._html.fill_encoded(html_values),
            headers=list_headers(self.site, link),
        )


def prepare_digest(
    session: Session, site: Site, renderer: EmailRenderer, digest: Digest
) -> PreparedDigest:
    """Render and inline the article part once per digest."""
    markers = slot_markers(SLOTS)
    articles = article_views(session, digest.id)
    context: dict[str, Any] = {
        "subject": digest.subject,
        "organisation": site.organisation,
        "postal_address": site.postal_address,
        "reason": digest_reason(site),
        "view_url": view_url(site, digest.id),
        "articles": articles,
        "preheader": articles[0].summary if articles else "",
        **markers,
    }
    rendered = renderer.render(TEMPLATE, context)
    # Wrapped once, here: the per-person values sit in short lines of their own (the
    # greeting, the unsubscribe link), so messages need no wrapping of their own.
    text = Pieces.cut(wrap_text(rendered.text), markers)
    html_part = Pieces.cut(rendered.html, markers)
    return PreparedDigest(site, digest.id, digest.subject, text, html_part)
