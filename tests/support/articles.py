"""Articles and digests put straight into a test's database."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from sqlalchemy.orm import Session

from newsletter.feeds import FeedEntry
from newsletter.services.articles import import_entries

__all__ = ["DAY_ONE", "add_articles", "entry"]

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
