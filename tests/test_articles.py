"""Importing and listing articles: idempotence, updates, one transaction, the commands."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.models import Article
from newsletter.runtime import get_runtime
from newsletter.services.articles import import_entries, list_articles
from newsletter.services.digests import create_digest
from tests.support.articles import DAY_ONE, add_articles, entry
from tests.support.feeds import Item, feed_server, rss
from tests.support.smtp import free_port

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "feed.xml"


def article_count(session: Session) -> int:
    session.expire_all()
    return session.scalar(select(func.count()).select_from(Article)) or 0


def test_import_is_idempotent_and_updates_changed_articles(session: Session) -> None:
    first = import_entries(session, [entry(1), entry(2), entry(3)])
    session.commit()
    assert (first.added, first.updated, first.unchanged) == (3, 0, 0)

    again = import_entries(session, [entry(1), entry(2), entry(3)])
    session.commit()
    assert (again.added, again.updated, again.unchanged) == (0, 0, 3)
    assert article_count(session) == 3

    changed = import_entries(session, [entry(1), entry(2, title="Corrected title"), entry(4)])
    session.commit()
    assert (changed.added, changed.updated, changed.unchanged) == (1, 1, 1)
    assert article_count(session) == 4
    article = session.scalars(select(Article).where(Article.guid == "article-2")).one()
    assert article.title == "Corrected title"
    assert article.published_at == entry(2).published_at


def test_undated_article_keeps_its_first_date(session: Session) -> None:
    import_entries(session, [entry(1, published_at=None)])
    session.commit()
    stored = session.scalars(select(Article)).one().published_at
    import_entries(session, [entry(1, published_at=None, summary="Edited.")])
    session.commit()
    session.expire_all()
    article = session.scalars(select(Article)).one()
    assert article.summary == "Edited."
    assert article.published_at == stored


def test_a_failed_import_stores_nothing(session: Session) -> None:
    # The third entry breaks a NOT NULL column: the two before it must not stay behind.
    with pytest.raises(IntegrityError):
        import_entries(session, [entry(1), entry(2), entry(3, title=None)])
    session.rollback()
    assert article_count(session) == 0


def test_list_is_newest_first_and_shows_digests(app: Flask, session: Session) -> None:
    add_articles(session, [1, 3, 2])
    create_digest(session, get_runtime(app).site, limit=1)
    session.commit()
    listing = list_articles(session)
    assert [row.title for row in listing] == [
        "Article number 3",
        "Article number 2",
        "Article number 1",
    ]
    assert [row.digest_ids for row in listing] == [(1,), (), ()]
    assert [row.title for row in list_articles(session, limit=2)] == [
        "Article number 3",
        "Article number 2",
    ]


def test_import_command_prints_counts(runner: FlaskCliRunner, session: Session) -> None:
    result = runner.invoke(args=["articles", "import", str(EXAMPLE)])
    assert result.exit_code == 0, result.output
    assert result.output == (
        "Read 6 articles from 'Harbourside Rights Trust – News': 6 added, 0 updated, 0 unchanged.\n"
    )
    again = runner.invoke(args=["articles", "import", str(EXAMPLE)])
    assert again.exit_code == 0
    assert "0 added, 0 updated, 6 unchanged." in again.output
    assert article_count(session) == 6


def test_import_command_updates_changed_articles(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "feed.xml"
    items = [Item("a", "First", DAY_ONE), Item("b", "Second", DAY_ONE)]
    path.write_bytes(rss(items))
    assert "2 added" in runner.invoke(args=["articles", "import", str(path)]).output
    items[1].title = "Second, corrected"
    items.append(Item("c", "Third", DAY_ONE))
    path.write_bytes(rss(items))
    result = runner.invoke(args=["articles", "import", str(path)])
    assert "1 added, 1 updated, 1 unchanged." in result.output
    titles = set(session.scalars(select(Article.title)))
    assert titles == {"First", "Second, corrected", "Third"}


def test_import_command_from_a_url(runner: FlaskCliRunner, session: Session) -> None:
    with feed_server() as server:
        url = server.serve("/feed.xml", EXAMPLE.read_bytes())
        result = runner.invoke(args=["articles", "import", url, *THIS_SERVER])
    assert result.exit_code == 0, result.output
    assert "6 added" in result.output
    assert article_count(session) == 6


# The test servers listen on 127.0.0.1, which a real import refuses.
THIS_SERVER = ["--allow-network", "127.0.0.1"]


def one_line_error(output: str) -> str:
    lines = output.splitlines()
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: ")
    return lines[0]


def test_bad_sources_print_one_line_and_store_nothing(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    broken = tmp_path / "broken.xml"
    broken.write_bytes(rss([Item("a", "A", DAY_ONE)])[:-30])
    bad_link = tmp_path / "bad-link.xml"
    bad_link.write_bytes(
        rss([Item("a", "Good", DAY_ONE), Item("b", "Bad", DAY_ONE, link="javascript:x()")])
    )
    deep = tmp_path / "deep.json"
    deep.write_bytes(b'{"version": "https://jsonfeed.org/version/1.1", "items": ' + b"[" * 5000)
    cases = {
        str(broken): "not a well-formed RSS or Atom feed",
        str(deep): "the JSON is nested too deeply to read",
        str(bad_link): "article 2 ('Bad') has no http(s) link",
        str(tmp_path / "missing.xml"): "no such file",
        f"http://127.0.0.1:{free_port()}/feed.xml": "127.0.0.1 is a loopback address",
        "ftp://example.org/feed.xml": "only http:// and https:// addresses",
    }
    for source, problem in cases.items():
        result = runner.invoke(args=["articles", "import", source])
        assert result.exit_code == 1
        line = one_line_error(result.output)
        assert line.startswith(f"Error: cannot import {source}: ")
        assert problem in line
    assert article_count(session) == 0


def test_only_public_addresses_unless_a_network_is_allowed(
    runner: FlaskCliRunner, session: Session
) -> None:
    with feed_server() as public, feed_server("127.0.0.2") as private:
        private.serve("/feed.xml", EXAMPLE.read_bytes())
        unreachable = f"http://127.0.0.1:{free_port()}/feed.xml"
        for args, problem in [
            ([public.serve("/feed.xml", EXAMPLE.read_bytes())], "127.0.0.1 is a loopback address"),
            (
                [public.redirect("/moved.xml", private.url("/feed.xml")), *THIS_SERVER],
                f"the server redirected to '{private.url('/feed.xml')}', and 127.0.0.2 is a "
                "loopback address; feeds are downloaded from public addresses only "
                "(--allow-network lets in a network of your own)",
            ),
            ([unreachable, *THIS_SERVER], "cannot reach the server"),
            ([unreachable, "--allow-network", "not-a-network"], "Invalid value"),
        ]:
            result = runner.invoke(args=["articles", "import", *args])
            assert result.exit_code in (1, 2), result.output
            assert problem in result.output.splitlines()[-1]
            if result.exit_code == 1:
                one_line_error(result.output)
        assert public.requests == ["/moved.xml"]
        assert private.requests == []
        assert article_count(session) == 0
        allowed = ["--allow-network", "127.0.0.0/8"]
        result = runner.invoke(args=["articles", "import", public.url("/moved.xml"), *allowed])
        assert result.exit_code == 0, result.output
        assert "6 added" in result.output
        assert private.requests == ["/feed.xml"]


def test_slow_and_huge_urls_fail_cleanly(runner: FlaskCliRunner, session: Session) -> None:
    with feed_server() as server:
        slow = server.trickle("/slow.xml", seconds=30)
        huge = server.endless("/huge.xml", total=20_000_000)
        result = runner.invoke(args=["articles", "import", slow, "--timeout", "1", *THIS_SERVER])
        assert result.exit_code == 1
        assert "no complete answer within 1 seconds" in one_line_error(result.output)
        result = runner.invoke(
            args=["articles", "import", huge, "--max-bytes", "100000", *THIS_SERVER]
        )
        assert result.exit_code == 1
        assert "larger than the limit of 100,000 bytes" in one_line_error(result.output)
    assert article_count(session) == 0


def test_list_command(runner: FlaskCliRunner, app: Flask, session: Session) -> None:
    empty = runner.invoke(args=["articles", "list"])
    assert empty.exit_code == 0
    assert "No articles yet" in empty.output
    add_articles(session, [1, 2, 3])
    create_digest(session, get_runtime(app).site, limit=2)
    session.commit()
    result = runner.invoke(args=["articles", "list"])
    assert result.exit_code == 0
    assert result.output.splitlines() == [
        "ID  DATE        DIGEST  TITLE",
        " 3  2025-03-04  1       Article number 3",
        " 2  2025-03-03  1       Article number 2",
        " 1  2025-03-02  -       Article number 1",
    ]


def test_commands_name_the_missing_schema(make_app: Callable[..., Flask], tmp_path: Path) -> None:
    app = make_app(DATABASE_URL=f"sqlite:///{tmp_path / 'empty.db'}")
    result = app.test_cli_runner().invoke(args=["articles", "import", str(EXAMPLE)])
    assert result.exit_code == 1
    assert "run `newsletter db upgrade` first" in one_line_error(result.output)
