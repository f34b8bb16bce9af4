"""Digest emails: each article rendered once, each person's version assembled from them.

A campaign renders the digest templates with every article and inlines their CSS once, with a
unique random marker where each per-person value goes (greeting name, unsubscribe link),
where each version's own values go (its subject in the HTML title, its preheader), and around
each article's block. The result is cut at the markers into a head, one block per article,
what stands between two articles, and a tail, each encoded as quoted-printable once.

Each person gets only the articles of their topics plus general news (an article under no
topic); someone who chose no topic gets them all. A version (one set of articles) is joined
from the encoded blocks once, the first time someone needs it, and kept for the campaign;
each message is then only a join of its version's pieces with that person's escaped and
encoded values, plus its headers. The values are inserted in one pass and never read again,
so a name containing a marker or ``{{ … }}`` is just text.
"""

from __future__ import annotations

import html
import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.links import list_headers, preferences_url, unsubscribe_url
from newsletter.mail.campaign import campaign_template, digest_campaign
from newsletter.mail.dkim import Signer
from newsletter.mail.headers import one_line
from newsletter.mail.pieces import Pieces, slot_markers, wrap_text
from newsletter.mail.render import EmailRenderer
from newsletter.mail.wire import AlternativeTemplate, Outgoing
from newsletter.models import Article, ArticleCategory, Digest, DigestArticle, TopicMatch
from newsletter.people import Person
from newsletter.sanitise import shorten
from newsletter.site import Site

__all__ = [
    "ArticleView",
    "DigestVersion",
    "NothingToRead",
    "PreparedDigest",
    "SAMPLE_RECIPIENT",
    "SUBJECT_LENGTH",
    "article_view",
    "article_views",
    "digest_reason",
    "prepare_digest",
    "subject_of_titles",
    "version_subject",
    "view_url",
]

TEMPLATE = "digest"
SLOTS = ("first_name", "unsubscribe_url", "preferences_url")
#: Filled once per version (set of articles), not per person.
VERSION_SLOTS = ("subject", "preheader")
#: Where each article's block begins and ends in the rendered digest.
ARTICLE_MARKS = ("article_begin", "article_end")
#: Between the digest's subject and the title of the person's first article.
SUBJECT_SEPARATOR = " — "
#: The longest subject a digest may have.
SUBJECT_LENGTH = 300
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
    return [view for _, view in _views_by_id(session, digest_id)]


def _views_by_id(session: Session, digest_id: int) -> list[tuple[int, ArticleView]]:
    articles = session.scalars(
        select(Article)
        .join(DigestArticle, DigestArticle.article_id == Article.id)
        .where(DigestArticle.digest_id == digest_id)
        .order_by(DigestArticle.position)
    )
    return [(article.id, _view(article)) for article in articles]


def article_view(article: Article) -> ArticleView:
    """What the templates show of one article (a welcome's, say)."""
    return _view(article)


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


class NothingToRead(ValueError):
    """Nothing in the digest is in the person's topics, and it has no general news."""


@dataclass(frozen=True)
class _Entry:
    """One article of the digest as the versions need it."""

    id: int
    title: str
    summary: str
    published_at: datetime
    #: The topics whose categories the article carries; none makes it general news.
    topic_ids: frozenset[int]
    #: When it had settled and became available to automatic digests (None: not yet).
    available_at: datetime | None = None


@dataclass(frozen=True)
class _Layout:
    """One rendered part (text or HTML) cut at the article blocks."""

    head: Pieces
    blocks: tuple[Pieces, ...]
    between: Pieces
    tail: Pieces

    @classmethod
    def cut(cls, rendered: str, markers: Mapping[str, str], begin: str, end: str) -> _Layout:
        head, *chunks = rendered.split(begin)
        blocks: list[str] = []
        gaps: list[str] = []
        for chunk in chunks:
            block, gap = chunk.split(end)
            blocks.append(block)
            gaps.append(gap)
        tail = gaps.pop() if gaps else ""
        if len(set(gaps)) > 1:
            raise ValueError("the digest templates must put the same thing between articles")

        def cut(text: str) -> Pieces:
            return Pieces.cut(text, markers)

        between = gaps[0] if gaps else ""
        return cls(cut(head), tuple(cut(block) for block in blocks), cut(between), cut(tail))

    def join(self, chosen: Sequence[int], values: Mapping[str, str]) -> Pieces:
        """The part with the blocks at ``chosen`` (indexes), in that order, and the version's
        ``values`` filled in; the per-person slots stay open."""
        parts = [self.head]
        for number, index in enumerate(chosen):
            if number:
                parts.append(self.between)
            parts.append(self.blocks[index])
        parts.append(self.tail)
        return Pieces.concat(parts).bind(values)


def subject_of_titles(site: Site, titles: Sequence[str]) -> str:
    """The default subject: the organisation and the top story, with how many more follow."""
    more = f" (+{len(titles) - 1} more)" if len(titles) > 1 else ""
    room = SUBJECT_LENGTH - len(site.organisation) - len(more) - 2
    return f"{site.organisation}: {shorten(titles[0], max(room, 20))}{more}"


def version_subject(
    site: Site, subject: str, titles: Sequence[str], all_titles: Sequence[str]
) -> str:
    """The subject of a version whose articles are ``titles`` (the digest's: ``all_titles``).

    The default subject (as ``digest create`` makes it) is made again from the version's own
    articles. Staff's own subject stays, followed by `` — `` and the title of the person's
    first article when that is not the digest's top article (nor named in it already)."""
    if subject == subject_of_titles(site, all_titles):
        return subject_of_titles(site, titles)
    title = one_line(titles[0])
    if not title or title == one_line(all_titles[0]) or title in subject:
        return subject
    return f"{subject}{SUBJECT_SEPARATOR}{title}"


@dataclass(frozen=True)
class DigestVersion:
    """The digest as the people of one set of articles get it: assembled once per campaign.

    Only the encoded pieces are kept (what messages are joined from): a send may keep
    hundreds of versions, and the plain text of each is made again only for a preview."""

    article_ids: tuple[int, ...]
    #: The articles' places among the digest's blocks, in the version's order.
    indexes: tuple[int, ...]
    subject: str
    #: The version's own values (subject, preheader), plain and escaped for HTML.
    values: Mapping[str, str]
    html_values: Mapping[str, str]
    text: Pieces
    html: Pieces
    wire: AlternativeTemplate


class PreparedDigest:
    """A digest rendered and inlined once, ready to become one message per recipient.

    Shared by the sender's worker threads: the versions are built under a lock, the first
    time one is needed, and never change afterwards.
    """

    def __init__(
        self,
        site: Site,
        digest_id: int,
        subject: str,
        entries: Sequence[_Entry],
        text: _Layout,
        html_part: _Layout,
    ) -> None:
        self.site = site
        self.digest_id = digest_id
        self.subject = subject
        self._entries = tuple(entries)
        self._text = text
        self._html = html_part
        self._signer = Signer.for_site(site)
        self._index = {entry.id: index for index, entry in enumerate(self._entries)}
        # When each article became available to automatic digests (those that have).
        self._available = {
            entry.id: entry.available_at for entry in self._entries if entry.available_at
        }
        self._lock = threading.Lock()
        # Topic choices seen, and the articles each gets (a plain dict: a race only computes
        # the same tuple twice); the versions by their articles, built under the lock.
        self._by_topics: dict[tuple[int, ...], tuple[int, ...]] = {}
        self._by_articles: dict[tuple[int, ...], DigestVersion] = {}
        for part, name in ((text, "digest.txt"), (html_part, "digest.html")):
            if "unsubscribe_url" not in part.tail.slots + part.head.slots:
                # A digest without a way out must never be sent.
                raise ValueError(f"the {name} template has no unsubscribe link")

    @property
    def article_count(self) -> int:
        return len(self._entries)

    def _chosen_ids(self, topic_ids: tuple[int, ...]) -> tuple[int, ...]:
        """The digest's articles (ids, newest first) for someone who chose ``topic_ids``:
        those of the topics plus general news; all of them for someone who chose none."""
        if not topic_ids:
            return tuple(entry.id for entry in self._entries)
        chosen = frozenset(topic_ids)
        return tuple(
            entry.id
            for entry in self._entries
            if not entry.topic_ids or not entry.topic_ids.isdisjoint(chosen)
        )

    def version(self, topic_ids: tuple[int, ...] = ()) -> DigestVersion | None:
        """The version for someone who chose ``topic_ids``; None when nothing in the digest
        is theirs (they get no email). Built once per distinct set of articles."""
        return self._versioned(self._for_topics(topic_ids))

    def _for_topics(self, topic_ids: tuple[int, ...]) -> tuple[int, ...]:
        article_ids = self._by_topics.get(topic_ids)
        if article_ids is None:
            article_ids = self._chosen_ids(topic_ids)
            self._by_topics[topic_ids] = article_ids
        return article_ids

    def version_within(
        self, topic_ids: tuple[int, ...], within: Callable[[datetime], bool]
    ) -> DigestVersion | None:
        """The version for someone who chose ``topic_ids`` and gets only the articles whose
        moment of becoming available passes ``within`` (an automatic digest's window); None
        when nothing is left. Built once per distinct set of articles, like :meth:`version`."""
        available = self._available
        return self._versioned(
            tuple(
                article_id
                for article_id in self._for_topics(topic_ids)
                if article_id in available and within(available[article_id])
            )
        )

    def _versioned(self, article_ids: tuple[int, ...]) -> DigestVersion | None:
        if not article_ids:
            return None
        found = self._by_articles.get(article_ids)
        if found is None:
            with self._lock:
                found = self._by_articles.get(article_ids)
                if found is None:
                    found = self._assemble(article_ids)
                    self._by_articles[article_ids] = found
        return found

    def _assemble(self, article_ids: tuple[int, ...]) -> DigestVersion:
        indexes = tuple(self._index[article_id] for article_id in article_ids)
        first = self._entries[indexes[0]]
        subject = version_subject(
            self.site,
            self.subject,
            [self._entries[index].title for index in indexes],
            [entry.title for entry in self._entries],
        )
        values = {"subject": subject, "preheader": first.summary}
        html_values = {name: html.escape(value, quote=True) for name, value in values.items()}
        return DigestVersion(
            article_ids=article_ids,
            indexes=indexes,
            subject=subject,
            values=values,
            html_values=html_values,
            text=self._text.join(indexes, values).encoded_only(),
            html=self._html.join(indexes, html_values).encoded_only(),
            wire=campaign_template(
                self.site, subject, digest_campaign(self.digest_id), self._signer
            ),
        )

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

    def _version_of(self, recipient: Person) -> DigestVersion:
        version = self.version(recipient.topic_ids)
        if version is None:
            raise NothingToRead(
                f"nothing in digest {self.digest_id} is in {recipient.email}'s topics"
            )
        return version

    def text_for(self, recipient: Person) -> str:
        """The plain-text part as ``recipient`` gets it; raises :class:`NothingToRead` when
        they get no email."""
        version = self._version_of(recipient)
        text = self._text.join(version.indexes, version.values)
        return text.fill(self._values(recipient)[0])

    def html_for(self, recipient: Person) -> str:
        """The HTML part as ``recipient`` gets it; raises :class:`NothingToRead` when they
        get no email."""
        version = self._version_of(recipient)
        html_part = self._html.join(version.indexes, version.html_values)
        return html_part.fill(self._values(recipient)[1])

    def subject_for(self, recipient: Person) -> str:
        """The subject ``recipient`` gets; raises :class:`NothingToRead` when they get no
        email."""
        return self._version_of(recipient).subject

    def outgoing_for(
        self,
        recipient: Person,
        message_id: str,
        subject: str | None = None,
        version: DigestVersion | None = None,
    ) -> Outgoing:
        """The finished message for one recipient; raises :class:`NothingToRead` when nothing
        in the digest is theirs (see :meth:`version`). ``subject`` replaces their version's
        (staff's test sends); ``version`` is one chosen by the caller (an automatic digest's
        window); everything else is what a send to subscribers builds."""
        version = version or self._version_of(recipient)
        text_values, html_values, link = self._values(recipient)
        wire = version.wire
        if subject is not None:
            wire = campaign_template(
                self.site, subject, digest_campaign(self.digest_id), self._signer
            )
        return wire.assemble(
            to_name=f"{recipient.first_name} {recipient.last_name}",
            to_address=recipient.email,
            message_id=message_id,
            text_qp=version.text.fill_wire(text_values),
            html_qp=version.html.fill_wire(html_values),
            headers=list_headers(self.site, link),
        )


def _entries(session: Session, digest_id: int) -> list[_Entry]:
    """The digest's articles, newest first, each with the topics it falls under."""
    articles = session.execute(
        select(
            Article.id, Article.title, Article.summary, Article.published_at, Article.available_at
        )
        .join(DigestArticle, DigestArticle.article_id == Article.id)
        .where(DigestArticle.digest_id == digest_id)
        .order_by(Article.published_at.desc(), Article.id.desc())
    ).all()
    topics: dict[int, set[int]] = {}
    for article_id, topic_id in session.execute(
        select(ArticleCategory.article_id, TopicMatch.topic_id)
        .join(TopicMatch, TopicMatch.category_key == ArticleCategory.category_key)
        .join(DigestArticle, DigestArticle.article_id == ArticleCategory.article_id)
        .where(DigestArticle.digest_id == digest_id)
    ):
        topics.setdefault(article_id, set()).add(topic_id)
    return [
        _Entry(id, title, summary, published, frozenset(topics.get(id, ())), available)
        for id, title, summary, published, available in articles
    ]


def prepare_digest(
    session: Session, site: Site, renderer: EmailRenderer, digest: Digest
) -> PreparedDigest:
    """Render and inline every article's block once per digest."""
    markers = slot_markers(SLOTS + VERSION_SLOTS)
    marks = slot_markers(ARTICLE_MARKS)
    entries = _entries(session, digest.id)
    views = {view_id: view for view_id, view in _views_by_id(session, digest.id)}
    context: dict[str, Any] = {
        "organisation": site.organisation,
        "postal_address": site.postal_address,
        "reason": digest_reason(site),
        "view_url": view_url(site, digest.id),
        "articles": [views[entry.id] for entry in entries],
        **markers,
        **marks,
    }
    rendered = renderer.render(TEMPLATE, context)
    begin, end = marks["article_begin"], marks["article_end"]
    # Wrapped once, here: the per-person values sit in short lines of their own (the
    # greeting, the unsubscribe link), so messages need no wrapping of their own.
    text = _Layout.cut(wrap_text(rendered.text), markers, begin, end)
    html_part = _Layout.cut(rendered.html, markers, begin, end)
    return PreparedDigest(site, digest.id, digest.subject, entries, text, html_part)
