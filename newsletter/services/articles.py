"""Articles: storing what a feed holds, once each, and listing them for staff."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from newsletter.categories import fold_category
from newsletter.db import utcnow
from newsletter.feeds import FeedEntry
from newsletter.models import Article, ArticleCategory, DigestArticle

__all__ = [
    "ArticleListing",
    "ImportResult",
    "categories_of",
    "content_hash",
    "import_entries",
    "list_articles",
]

# Keeps each IN (...) list well under the bound-parameter limits of SQLite and PostgreSQL.
LOOKUP_BATCH = 500


@dataclass(frozen=True)
class ImportResult:
    added: int
    updated: int
    unchanged: int


@dataclass(frozen=True)
class ArticleListing:
    id: int
    published_at: datetime
    title: str
    url: str
    digest_ids: tuple[int, ...]
    categories: tuple[str, ...] = ()


def content_hash(entry: FeedEntry) -> str:
    """A fingerprint of everything the feed says about an article, to notice edits."""
    fields: dict[str, object] = {
        "url": entry.url,
        "title": entry.title,
        "summary": entry.summary,
        "body_html": entry.body_html,
        "image_url": entry.image_url,
        "image_alt": entry.image_alt,
        "published_at": entry.published_at.isoformat() if entry.published_at else None,
    }
    # Only when there are any: articles imported before categories were stored keep their
    # fingerprint, unless their feed does give categories, which then counts as a change.
    if entry.categories:
        fields["categories"] = list(entry.categories)
    encoded = json.dumps(fields, sort_keys=True, ensure_ascii=False).encode()
    return hashlib.sha256(encoded).hexdigest()


def _existing(session: Session, guids: Sequence[str]) -> dict[str, Article]:
    found: dict[str, Article] = {}
    for start in range(0, len(guids), LOOKUP_BATCH):
        batch = guids[start : start + LOOKUP_BATCH]
        for article in session.scalars(select(Article).where(Article.guid.in_(batch))):
            found[article.guid] = article
    return found


def import_entries(
    session: Session, entries: Iterable[FeedEntry], now: datetime | None = None
) -> ImportResult:
    """Add new articles and update changed ones, matched by guid (the link when a feed has none).

    Importing the same feed again adds nothing. ``now`` is when the import happens (a
    scheduled run's own time); an article's ``updated_at`` says when its content last
    changed, which its settling counts from. The caller commits, so a feed is stored
    completely or not at all.
    """
    entries = list(entries)
    existing = _existing(session, [entry.guid for entry in entries])
    added = updated = unchanged = 0
    now = now or utcnow()
    for entry in entries:
        fingerprint = content_hash(entry)
        article = existing.get(entry.guid)
        if article is None:
            article = Article(
                guid=entry.guid, published_at=entry.published_at or now, created_at=now
            )
            session.add(article)
            existing[entry.guid] = article
            added += 1
        elif article.content_hash == fingerprint:
            unchanged += 1
            continue
        else:
            updated += 1
            # A feed that stops giving a date keeps the one first seen.
            if entry.published_at is not None:
                article.published_at = entry.published_at
        article.url = entry.url
        article.title = entry.title
        article.summary = entry.summary
        article.body_html = entry.body_html
        article.image_url = entry.image_url
        article.image_alt = entry.image_alt
        article.content_hash = fingerprint
        article.updated_at = now
        _store_categories(session, article, entry.categories)
    session.flush()
    return ImportResult(added=added, updated=updated, unchanged=unchanged)


def _store_categories(session: Session, article: Article, categories: tuple[str, ...]) -> None:
    """Give ``article`` exactly ``categories``, replacing what an earlier import stored."""
    if article.id is not None:
        session.execute(delete(ArticleCategory).where(ArticleCategory.article_id == article.id))
    for position, category in enumerate(categories):
        session.add(
            ArticleCategory(
                article=article,
                category=category,
                category_key=fold_category(category),
                position=position,
            )
        )


def categories_of(session: Session, article_ids: Sequence[int]) -> dict[int, tuple[str, ...]]:
    """The categories of each of ``article_ids`` that has any, in the feed's order."""
    found: dict[int, list[str]] = {}
    for start in range(0, len(article_ids), LOOKUP_BATCH):
        rows = session.execute(
            select(ArticleCategory.article_id, ArticleCategory.category)
            .where(ArticleCategory.article_id.in_(article_ids[start : start + LOOKUP_BATCH]))
            .order_by(ArticleCategory.article_id, ArticleCategory.position)
        )
        for article_id, category in rows:
            found.setdefault(article_id, []).append(category)
    return {article_id: tuple(names) for article_id, names in found.items()}


def list_articles(session: Session, limit: int | None = None) -> list[ArticleListing]:
    """Articles newest first, each with the digests that hold it."""
    statement = select(Article).order_by(Article.published_at.desc(), Article.id.desc())
    if limit is not None:
        statement = statement.limit(limit)
    articles = list(session.scalars(statement))
    holders: dict[int, list[int]] = {}
    ids = [article.id for article in articles]
    for start in range(0, len(ids), LOOKUP_BATCH):
        rows = session.execute(
            select(DigestArticle.article_id, DigestArticle.digest_id)
            .where(DigestArticle.article_id.in_(ids[start : start + LOOKUP_BATCH]))
            .order_by(DigestArticle.digest_id)
        )
        for article_id, digest_id in rows:
            holders.setdefault(article_id, []).append(digest_id)
    categories = categories_of(session, ids)
    return [
        ArticleListing(
            id=article.id,
            published_at=article.published_at,
            title=article.title,
            url=article.url,
            digest_ids=tuple(holders.get(article.id, ())),
            categories=categories.get(article.id, ()),
        )
        for article in articles
    ]
