"""Which articles a choice of topics covers: those of the topics, plus general news.

An article whose categories match no topic at all is general news and goes to everyone; so
does every article for someone who chose no topic. The per-person digest builds on this.
"""

from __future__ import annotations

from collections.abc import Collection

from sqlalchemy import ColumnElement, or_, select
from sqlalchemy.orm import Session

from newsletter.models import Article, ArticleCategory, TopicMatch

__all__ = ["articles_for_topics", "covered_by"]


def covered_by(topic_ids: Collection[int] | None) -> ColumnElement[bool] | None:
    """A condition on :class:`Article` for "of these topics, or general news"; None when every
    article qualifies (no topics chosen)."""
    if not topic_ids:
        return None
    matching = select(ArticleCategory.article_id).join(
        TopicMatch, TopicMatch.category_key == ArticleCategory.category_key
    )
    chosen = matching.where(
        ArticleCategory.article_id == Article.id, TopicMatch.topic_id.in_(sorted(topic_ids))
    )
    under_any = matching.where(ArticleCategory.article_id == Article.id)
    return or_(chosen.exists(), ~under_any.exists())


def articles_for_topics(
    session: Session,
    topic_ids: Collection[int] | None,
    among: Collection[int] | None = None,
) -> list[Article]:
    """The articles of ``topic_ids`` plus general news, newest first; every article when
    ``topic_ids`` is None or empty. ``among`` narrows the search to these article ids (a
    digest's)."""
    query = select(Article).order_by(Article.published_at.desc(), Article.id.desc())
    condition = covered_by(topic_ids)
    if condition is not None:
        query = query.where(condition)
    if among is not None:
        query = query.where(Article.id.in_(sorted(among)))
    return list(session.scalars(query))
