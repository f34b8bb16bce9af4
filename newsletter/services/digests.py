"""Composing digests: which articles go into the next one, and finding digests again."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import exists, func, select, text
from sqlalchemy.orm import Session

from newsletter.db import MAX_ID
from newsletter.mail.digest import SUBJECT_LENGTH, subject_of_titles
from newsletter.models import Article, Digest, DigestArticle, DigestStatus
from newsletter.services.errors import NotFound, ServiceError
from newsletter.site import Site

__all__ = [
    "DEFAULT_MAX_ARTICLES",
    "InvalidSubject",
    "NothingNew",
    "create_digest",
    "default_subject",
    "get_digest",
    "get_published_digest",
    "pick_articles",
]

DEFAULT_MAX_ARTICLES = 10
PUBLISHED = (DigestStatus.SENDING, DigestStatus.SENT)
# Any fixed number shared by every process composing digests on one PostgreSQL database.
COMPOSE_LOCK_KEY = 7_311_842


class NothingNew(ServiceError, LookupError):
    """No article is waiting to go into a digest."""


class InvalidSubject(ServiceError, ValueError):
    """A subject given by staff cannot be used; the message says why."""


def _lock_composition(session: Session) -> None:
    """Let one composition at a time choose articles, so two digests never share one.

    PostgreSQL: a transaction-scoped advisory lock. SQLite: take the database's write lock
    before reading (an UPDATE that matches no row is enough), so the reads see the other
    composition's committed digest.
    """
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": COMPOSE_LOCK_KEY})
    else:
        session.execute(text("UPDATE digests SET id = id WHERE 1 = 0"))


def _previous_cutoff(session: Session) -> datetime | None:
    """When the newest article of the latest digest was published (None before the first)."""
    latest = session.scalar(select(func.max(Digest.id)))
    if latest is None:
        return None
    return session.scalar(
        select(func.max(Article.published_at))
        .join(DigestArticle, DigestArticle.article_id == Article.id)
        .where(DigestArticle.digest_id == latest)
    )


def pick_articles(
    session: Session, since: datetime | None = None, limit: int = DEFAULT_MAX_ARTICLES
) -> list[Article]:
    """The articles for the next digest, newest first.

    Those published after the newest article of the previous digest (or at or after
    ``since``) that no digest holds yet.
    """
    held = exists().where(DigestArticle.article_id == Article.id)
    statement = select(Article).where(~held)
    if since is not None:
        statement = statement.where(Article.published_at >= since)
    else:
        cutoff = _previous_cutoff(session)
        if cutoff is not None:
            statement = statement.where(Article.published_at > cutoff)
    statement = statement.order_by(Article.published_at.desc(), Article.id.desc()).limit(limit)
    return list(session.scalars(statement))


def default_subject(site: Site, articles: list[Article]) -> str:
    """The organisation and the top story, with how many more follow."""
    return subject_of_titles(site, [article.title for article in articles])


def _checked_subject(subject: str) -> str:
    if "\r" in subject or "\n" in subject:
        raise InvalidSubject("the subject must be one line")
    cleaned = " ".join(subject.split())
    if not cleaned:
        raise InvalidSubject("the subject must not be empty")
    if len(cleaned) > SUBJECT_LENGTH:
        raise InvalidSubject(f"the subject must be at most {SUBJECT_LENGTH} characters")
    return cleaned


def create_digest(
    session: Session,
    site: Site,
    *,
    since: datetime | None = None,
    subject: str | None = None,
    limit: int = DEFAULT_MAX_ARTICLES,
) -> Digest:
    """A draft digest of the articles waiting since the last digest (or ``since``).

    Raises :class:`NothingNew` when no article qualifies; the caller commits.
    """
    if limit < 1:
        raise ValueError("a digest holds at least one article")
    chosen_subject = _checked_subject(subject) if subject is not None else None
    _lock_composition(session)
    articles = pick_articles(session, since, limit)
    if not articles:
        raise NothingNew("no new articles since the last digest")
    digest = Digest(
        subject=chosen_subject or default_subject(site, articles), status=DigestStatus.DRAFT
    )
    for position, article in enumerate(articles):
        digest.entries.append(DigestArticle(article=article, position=position))
    session.add(digest)
    session.flush()
    return digest


def _find(session: Session, digest_id: int) -> Digest | None:
    # An id past what the column holds names no digest; asking the database would fail.
    if not 1 <= digest_id <= MAX_ID:
        return None
    return session.get(Digest, digest_id)


def get_digest(session: Session, digest_id: int) -> Digest:
    """The digest with this id; raises :class:`NotFound`."""
    digest = _find(session, digest_id)
    if digest is None:
        raise NotFound(f"there is no digest {digest_id}")
    return digest


def get_published_digest(session: Session, digest_id: int) -> Digest:
    """A digest that is being sent or was sent; drafts are :class:`NotFound` like missing ones."""
    digest = _find(session, digest_id)
    if digest is None or digest.status not in PUBLISHED:
        raise NotFound(f"there is no published digest {digest_id}")
    return digest
