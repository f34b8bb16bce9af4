"""Tables: subscribers and their consent proof, articles, digests, deliveries, suppressions,
topics and what they match."""

from __future__ import annotations

import secrets
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from newsletter.categories import CATEGORY_LENGTH
from newsletter.db import Base, utcnow

__all__ = [
    "FORM_SIGNUP",
    "Article",
    "ArticleCategory",
    "BounceKind",
    "BounceReport",
    "ConsentEvent",
    "ConsentKind",
    "ConsentStatement",
    "Delivery",
    "DeliveryKind",
    "DeliveryStatus",
    "Digest",
    "DigestArticle",
    "DigestSlot",
    "DigestStatus",
    "Subscriber",
    "SubscriberStatus",
    "Suppression",
    "SubscriberTopic",
    "Topic",
    "TopicMatch",
]

EMAIL_LENGTH = 254
NAME_LENGTH = 100
# The consent method of a signup through the form (``ConsentEvent.method``): the one way back
# for a suppressed address, so the suppression rules below the services read it too.
FORM_SIGNUP = "web form"


class SubscriberStatus(StrEnum):
    PENDING = "pending"
    ACTIVE = "active"
    UNSUBSCRIBED = "unsubscribed"
    BOUNCED = "bounced"


class ConsentKind(StrEnum):
    GIVEN = "given"
    CONFIRMED = "confirmed"
    WITHDRAWN = "withdrawn"
    # The person changed their topics or name on their preferences page.
    CHANGED = "changed"
    # A withdrawal by pressing "report spam": their mail provider told us (a complaint report).
    COMPLAINT = "complaint"


class BounceKind(StrEnum):
    """What a bounce or complaint report says about a person's address."""

    HARD = "hard"
    SOFT = "soft"
    COMPLAINT = "complaint"


class DigestStatus(StrEnum):
    DRAFT = "draft"
    SENDING = "sending"
    SENT = "sent"


class DeliveryKind(StrEnum):
    CONFIRM = "confirm"
    DIGEST = "digest"
    WELCOME = "welcome"


class DeliveryStatus(StrEnum):
    QUEUED = "queued"
    SENDING = "sending"
    SENT = "sent"
    FAILED = "failed"
    SKIPPED = "skipped"
    UNKNOWN = "unknown"


FINAL_DELIVERY_STATES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNKNOWN,
)


def new_token_nonce() -> str:
    return secrets.token_hex(8)


class Subscriber(Base):
    __tablename__ = "subscribers"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(EMAIL_LENGTH))
    email_key: Mapped[str] = mapped_column(String(EMAIL_LENGTH), unique=True)
    first_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    last_name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    status: Mapped[str] = mapped_column(String(16), default=SubscriberStatus.PENDING, index=True)
    # Part of every token: erasing the row (or rotating this) makes old links stop working.
    token_nonce: Mapped[str] = mapped_column(String(32), default=new_token_nonce)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    confirmed_at: Mapped[datetime | None]
    unsubscribed_at: Mapped[datetime | None]
    # How often they want digests (``newsletter.schedule.Rhythm``); None: the site's default.
    rhythm: Mapped[str | None] = mapped_column(String(16))
    # Their watermark: every article that became available up to this moment has been theirs
    # to receive (in a digest or a welcome), so no later message holds it again. None: from
    # when they confirmed (or joined).
    received_through: Mapped[datetime | None]
    # The schedule slot of their last automatic digest, which their rhythm counts from.
    last_digest_slot: Mapped[datetime | None]

    consent_events: Mapped[list[ConsentEvent]] = relationship(
        back_populates="subscriber",
        order_by="ConsentEvent.id",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class ConsentStatement(Base):
    """Each distinct consent wording, stored once; its id is its version."""

    __tablename__ = "consent_statements"

    id: Mapped[int] = mapped_column(primary_key=True)
    text_hash: Mapped[str] = mapped_column(String(64), unique=True)
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentEvent(Base):
    """Append-only proof: who agreed to which wording, when and how; confirmations; withdrawals."""

    __tablename__ = "consent_events"

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    statement_id: Mapped[int | None] = mapped_column(ForeignKey("consent_statements.id"))
    at: Mapped[datetime] = mapped_column(default=utcnow)
    method: Mapped[str] = mapped_column(String(32))
    ip: Mapped[str | None] = mapped_column(String(64))
    user_agent: Mapped[str | None] = mapped_column(String(512))
    source_url: Mapped[str | None] = mapped_column(String(2048))
    note: Mapped[str | None] = mapped_column(Text)
    # Which form it was given in: our own page, or a box on the organisation's pages.
    box_style: Mapped[str | None] = mapped_column(String(16))
    # The topics the form offered and those chosen, as JSON (see services.topic_choices).
    choices: Mapped[str | None] = mapped_column(Text)

    subscriber: Mapped[Subscriber] = relationship(back_populates="consent_events")
    statement: Mapped[ConsentStatement | None] = relationship()


class Article(Base):
    __tablename__ = "articles"

    id: Mapped[int] = mapped_column(primary_key=True)
    guid: Mapped[str] = mapped_column(String(2048), unique=True)
    url: Mapped[str] = mapped_column(String(2048))
    title: Mapped[str] = mapped_column(String(500))
    summary: Mapped[str] = mapped_column(Text, default="")
    body_html: Mapped[str] = mapped_column(Text, default="")
    image_url: Mapped[str | None] = mapped_column(String(2048))
    image_alt: Mapped[str | None] = mapped_column(String(500))
    published_at: Mapped[datetime] = mapped_column(index=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # When the feed last changed what it says about the article (its content, not our reads).
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # When it had settled (unchanged long enough) and became available to automatic digests;
    # set once and never moved, so a later edit never makes it new again.
    available_at: Mapped[datetime | None] = mapped_column(index=True)


class Digest(Base):
    __tablename__ = "digests"

    id: Mapped[int] = mapped_column(primary_key=True)
    subject: Mapped[str] = mapped_column(String(300))
    status: Mapped[str] = mapped_column(String(16), default=DigestStatus.DRAFT)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    send_started_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]

    entries: Mapped[list[DigestArticle]] = relationship(
        back_populates="digest", order_by="DigestArticle.position", cascade="all, delete-orphan"
    )


class DigestArticle(Base):
    __tablename__ = "digest_articles"

    digest_id: Mapped[int] = mapped_column(
        ForeignKey("digests.id", ondelete="CASCADE"), primary_key=True
    )
    article_id: Mapped[int] = mapped_column(ForeignKey("articles.id"), primary_key=True)
    position: Mapped[int]

    digest: Mapped[Digest] = relationship(back_populates="entries")
    article: Mapped[Article] = relationship()


class Delivery(Base):
    """One message to one recipient: the outbox and the send log in one row."""

    __tablename__ = "deliveries"
    __table_args__ = (
        UniqueConstraint("digest_id", "subscriber_id", name="uq_deliveries_digest_subscriber"),
        # A sender claims the lowest ids still queued: these let it read them in id order
        # instead of sorting every queued row of a large digest on each claim.
        Index("ix_deliveries_digest_queue", "digest_id", "status", "id"),
        Index("ix_deliveries_kind_queue", "kind", "status", "id"),
        # Lease renewal and give-back look rows up by their holder; only claimed rows have one.
        Index(
            "ix_deliveries_claimed_by",
            "claimed_by",
            sqlite_where=text("claimed_by IS NOT NULL"),
            postgresql_where=text("claimed_by IS NOT NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id", ondelete="CASCADE"))
    subscriber_id: Mapped[int | None] = mapped_column(
        ForeignKey("subscribers.id", ondelete="SET NULL"), index=True
    )
    status: Mapped[str] = mapped_column(String(16), default=DeliveryStatus.QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    message_id: Mapped[str | None] = mapped_column(String(255))
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    claimed_until: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    sent_at: Mapped[datetime | None]
    # Automatic digests and welcomes: the message holds the articles (of the person's topics)
    # that became available after ``window_start`` (from the first, when None) and up to
    # ``window_end``. Fixed when queued, so a resumed send builds the same message.
    window_start: Mapped[datetime | None]
    window_end: Mapped[datetime | None]

    subscriber: Mapped[Subscriber | None] = relationship()


class DigestSlot(Base):
    """A slot of the schedule that ``digest auto`` has dealt with, and the digest it sent."""

    __tablename__ = "digest_slots"

    slot_at: Mapped[datetime] = mapped_column(primary_key=True)
    digest_id: Mapped[int | None] = mapped_column(ForeignKey("digests.id", ondelete="SET NULL"))
    handled_at: Mapped[datetime]
    # The readers whose rhythm made this slot theirs.
    readers: Mapped[int] = mapped_column(default=0)


class Suppression(Base):
    """Addresses never mailed or imported again, kept only as a hash."""

    __tablename__ = "suppressions"

    email_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    reason: Mapped[str] = mapped_column(String(32))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Hashed from the whole address case-folded, as before keys kept look-alikes apart: such
    # an entry covers every address that folds to it (see addresses.folded_suppression_hash).
    folded: Mapped[bool] = mapped_column(default=False, server_default=false())


class BounceReport(Base):
    """One bounce or complaint report about one person, as it arrived.

    ``report_id`` is the raw report's Message-ID (or the provider's event id): unique per
    person, so a report read twice, by two runs at once or a provider's retry, acts once.
    """

    __tablename__ = "bounce_reports"
    __table_args__ = (
        UniqueConstraint("report_id", "subscriber_id", name="uq_bounce_reports_report"),
        Index("ix_bounce_reports_subscriber_at", "subscriber_id", "at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    subscriber_id: Mapped[int] = mapped_column(ForeignKey("subscribers.id", ondelete="CASCADE"))
    delivery_id: Mapped[int | None] = mapped_column(
        ForeignKey("deliveries.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    # Where it came from: "mailbox", or the webhook's provider (ses, postmark, …).
    source: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    report_id: Mapped[str] = mapped_column(String(255))
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


SLUG_LENGTH = 64


class Topic(Base):
    """Something a subscriber can choose to hear about, defined by the categories it matches."""

    __tablename__ = "topics"

    id: Mapped[int] = mapped_column(primary_key=True)
    slug: Mapped[str] = mapped_column(String(SLUG_LENGTH), unique=True)
    name: Mapped[str] = mapped_column(String(NAME_LENGTH))
    description: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    matches: Mapped[list[TopicMatch]] = relationship(
        back_populates="topic",
        order_by="TopicMatch.category_key",
        cascade="all, delete-orphan",
        passive_deletes=True,
    )


class TopicMatch(Base):
    """A feed category that puts an article under a topic, compared in its folded form."""

    __tablename__ = "topic_matches"

    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed to find, from an article's categories, the topics it falls under.
    category_key: Mapped[str] = mapped_column(String(CATEGORY_LENGTH), primary_key=True, index=True)
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH))

    topic: Mapped[Topic] = relationship(back_populates="matches")


class ArticleCategory(Base):
    """A category the feed gave an article, as written and folded for matching."""

    __tablename__ = "article_categories"

    article_id: Mapped[int] = mapped_column(
        ForeignKey("articles.id", ondelete="CASCADE"), primary_key=True
    )
    category_key: Mapped[str] = mapped_column(String(CATEGORY_LENGTH), primary_key=True, index=True)
    category: Mapped[str] = mapped_column(String(CATEGORY_LENGTH))
    # The feed's order, so articles list shows categories as the site gave them.
    position: Mapped[int] = mapped_column(default=0)

    article: Mapped[Article] = relationship()


class SubscriberTopic(Base):
    """A topic a subscriber chose; a subscriber with none hears about everything."""

    __tablename__ = "subscriber_topics"

    subscriber_id: Mapped[int] = mapped_column(
        ForeignKey("subscribers.id", ondelete="CASCADE"), primary_key=True
    )
    # Indexed for counting and finding the holders of one topic.
    topic_id: Mapped[int] = mapped_column(
        ForeignKey("topics.id", ondelete="CASCADE"), primary_key=True, index=True
    )
