"""Articles' categories: stored on import in the feed's order, replaced on re-import, shown by
``articles list`` (SQLite and PostgreSQL)."""

from __future__ import annotations

from pathlib import Path

from flask.testing import FlaskCliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from newsletter.models import Article, ArticleCategory
from newsletter.services.articles import categories_of, import_entries
from tests.support.articles import DAY_ONE, entry
from tests.support.feeds import Item, atom, json_feed, rss


def stored(session: Session) -> dict[str, list[tuple[str, str]]]:
    """Each article's guid with its (category, folded) pairs in order."""
    session.expire_all()
    rows = session.execute(
        select(Article.guid, ArticleCategory.category, ArticleCategory.category_key)
        .join(ArticleCategory, ArticleCategory.article_id == Article.id)
        .order_by(Article.guid, ArticleCategory.position)
    )
    found: dict[str, list[tuple[str, str]]] = {}
    for guid, category, key in rows:
        found.setdefault(guid, []).append((category, key))
    return found


def test_import_stores_categories_and_reimport_replaces_them(session: Session) -> None:
    first = import_entries(
        session,
        [
            entry(1, categories=("North Korea", "Asylum")),
            entry(2),
            entry(3, categories=("Asylum",)),
        ],
    )
    session.commit()
    assert (first.added, first.updated, first.unchanged) == (3, 0, 0)
    assert stored(session) == {
        "article-1": [("North Korea", "north korea"), ("Asylum", "asylum")],
        "article-3": [("Asylum", "asylum")],
    }

    same = import_entries(
        session,
        [
            entry(1, categories=("North Korea", "Asylum")),
            entry(2),
            entry(3, categories=("Asylum",)),
        ],
    )
    session.commit()
    assert (same.added, same.updated, same.unchanged) == (0, 0, 3)

    # Re-tagged, newly tagged and untagged: each counts as an update and is stored as given.
    changed = import_entries(
        session,
        [entry(1, categories=("Prisons",)), entry(2, categories=("Asylum",)), entry(3)],
    )
    session.commit()
    assert (changed.added, changed.updated, changed.unchanged) == (0, 3, 0)
    assert stored(session) == {
        "article-1": [("Prisons", "prisons")],
        "article-2": [("Asylum", "asylum")],
    }


def test_a_respelled_category_is_updated_to_the_new_spelling(session: Session) -> None:
    import_entries(session, [entry(1, categories=("north korea",))])
    session.commit()
    import_entries(session, [entry(1, categories=("North Korea",))])
    session.commit()
    assert stored(session) == {"article-1": [("North Korea", "north korea")]}
    article_id = session.scalars(select(Article.id)).one()
    assert categories_of(session, [article_id]) == {article_id: ("North Korea",)}


def test_feeds_of_each_format_import_their_categories(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    feeds = {
        "feed.xml": rss([Item("rss-1", "From RSS", DAY_ONE, categories=["North Korea"])]),
        "feed.atom": atom([Item("atom-1", "From Atom", DAY_ONE, categories=["Asylum"])]),
        "feed.json": json_feed(
            [{"id": "json-1", "url": "https://example.org/j", "tags": ["Prisons", "Asylum"]}]
        ),
    }
    for name, data in feeds.items():
        path = tmp_path / name
        path.write_bytes(data)
        result = runner.invoke(args=["articles", "import", str(path)])
        assert result.exit_code == 0, result.output
    assert stored(session) == {
        "atom-1": [("Asylum", "asylum")],
        "json-1": [("Prisons", "prisons"), ("Asylum", "asylum")],
        "rss-1": [("North Korea", "north korea")],
    }


def test_list_shows_categories(runner: FlaskCliRunner, session: Session) -> None:
    import_entries(session, [entry(1, categories=("North Korea", "Asylum")), entry(2)])
    session.commit()
    result = runner.invoke(args=["articles", "list"])
    assert result.exit_code == 0, result.output
    assert result.output.splitlines() == [
        "ID  DATE        DIGEST  TITLE",
        " 2  2025-03-03  -       Article number 2",
        " 1  2025-03-02  -       Article number 1  [North Korea, Asylum]",
    ]
