"""Articles and digests put straight into a test's database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from flask import Flask
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.feeds import FeedEntry
from newsletter.runtime import get_runtime
from newsletter.services.articles import import_entries
from newsletter.services.digests import create_digest

__all__ = ["DAY_ONE", "add_articles", "draft_digest", "entry"]

DAY_ONE = datetime(2025, 3, 1, 9, 0, tzinfo=UTC)


def entry(number: int, **changes: object) -> FeedEntry:
    """Article ``number``, published ``number`` days after DAY_ONE."""
    values: dict[str, object] = {
        "guid": f"article-{number}",
        "url": f"https://example.org/news/{number}",
        "title": f"Article number {number}",
        "summary": f"Summary of article {number}.",
        "body_html": f"<p>Summary of article {number}.</p><p>More.</p>",
        "image_url": None,
        "image_alt": None,
        "published_at": DAY_ONE + timedelta(days=number),
    }
    values.update(changes)
    return FeedEntry(**values)  # type: ignore[arg-type]


def add_articles(session: Session, numbers: range | list[int], **changes: object) -> None:
    """Import articles ``numbers`` and commit."""
    import_entries(session, [entry(number, **changes) for number in numbers])
    session.commit()


def draft_digest(app: Flask, **changes: object) -> int:
    """Articles 1 and 2 imported (with ``changes``), and a draft digest of them; its id."""
    with session_factory(app)() as session:
        add_articles(session, [1, 2], **changes)
        digest = create_digest(session, get_runtime(app).site)
        session.commit()
        return digest.id
