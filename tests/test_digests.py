"""Composing digests: which articles, in which order, never twice; the create command."""

from __future__ import annotations

import re
import threading
from datetime import timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.models import Digest, DigestArticle, DigestStatus
from newsletter.runtime import get_runtime
from newsletter.services.digests import (
    InvalidSubject,
    NothingNew,
    create_digest,
    get_digest,
    get_published_digest,
)
from newsletter.services.errors import NotFound
from newsletter.site import Site
from tests.support.articles import DAY_ONE, add_articles


@pytest.fixture
def site(app: Flask) -> Site:
    return get_runtime(app).site


def guids(digest: Digest) -> list[str]:
    return [entry.article.guid for entry in digest.entries]


def test_first_digest_takes_the_newest_ten(session: Session, site: Site) -> None:
    add_articles(session, range(1, 13))
    digest = create_digest(session, site)
    session.commit()
    assert digest.status == DigestStatus.DRAFT
    assert guids(digest) == [f"article-{n}" for n in range(12, 2, -1)]
    assert [entry.position for entry in digest.entries] == list(range(10))
    assert digest.subject == "Open Rights Watch: Article number 12 (+9 more)"


def test_second_digest_never_repeats_an_article(session: Session, site: Site) -> None:
    add_articles(session, [1, 2, 3])
    first = create_digest(session, site)
    session.commit()
    add_articles(session, [4, 5])
    second = create_digest(session, site)
    session.commit()
    assert guids(first) == ["article-3", "article-2", "article-1"]
    assert guids(second) == ["article-5", "article-4"]
    with pytest.raises(NothingNew):
        create_digest(session, site)
    session.rollback()
    # Even a --since reaching back before both digests finds nothing they already hold.
    with pytest.raises(NothingNew):
        create_digest(session, site, since=DAY_ONE - timedelta(days=30))
    session.rollback()
    held = session.execute(
        select(DigestArticle.article_id, func.count())
        .group_by(DigestArticle.article_id)
        .having(func.count() > 1)
    ).all()
    assert held == []


def test_articles_older_than_the_last_digest_wait_for_since(session: Session, site: Site) -> None:
    add_articles(session, [5, 6])
    create_digest(session, site)
    session.commit()
    # Published before the newest article of the last digest, but imported later.
    add_articles(session, [2, 7])
    second = create_digest(session, site)
    session.commit()
    assert guids(second) == ["article-7"]
    third = create_digest(session, site, since=DAY_ONE)
    session.commit()
    assert guids(third) == ["article-2"]


def test_since_and_max(session: Session, site: Site) -> None:
    add_articles(session, range(1, 8))
    digest = create_digest(session, site, since=DAY_ONE + timedelta(days=3), limit=2)
    session.commit()
    assert guids(digest) == ["article-7", "article-6"]
    rest = create_digest(session, site, since=DAY_ONE + timedelta(days=3))
    session.commit()
    # --since counts from the date itself: article 3 was published exactly then.
    assert guids(rest) == ["article-5", "article-4", "article-3"]


def test_subject(session: Session, site: Site) -> None:
    add_articles(session, [1])
    digest = create_digest(session, site, subject="  Spring   news ")
    session.commit()
    assert digest.subject == "Spring news"
    add_articles(session, [2], title="A" * 400)
    long = create_digest(session, site)
    assert len(long.subject) <= 300
    assert long.subject.startswith("Open Rights Watch: AAAA")
    assert long.subject.endswith("…")
    session.rollback()
    for bad, message in [
        ("two\nlines", "one line"),
        ("   ", "must not be empty"),
        ("x" * 301, "at most 300"),
    ]:
        with pytest.raises(InvalidSubject, match=message):
            create_digest(session, site, subject=bad)


def test_lookups(session: Session, site: Site) -> None:
    add_articles(session, [1])
    digest = create_digest(session, site)
    session.commit()
    assert get_digest(session, digest.id) is digest
    with pytest.raises(NotFound, match="there is no digest 99"):
        get_digest(session, 99)
    with pytest.raises(NotFound):
        get_published_digest(session, digest.id)
    digest.status = DigestStatus.SENDING
    assert get_published_digest(session, digest.id) is digest
    # Ids no row can have are not found, not a database error.
    for number in (0, -1, 2**31, 2**63, 10**40):
        with pytest.raises(NotFound):
            get_digest(session, number)
        with pytest.raises(NotFound):
            get_published_digest(session, number)


def test_concurrent_compositions_never_share_an_article(app: Flask, site: Site) -> None:
    sessions = session_factory(app)
    with sessions() as setup:
        add_articles(setup, [1, 2, 3])
    outcomes: list[str] = []
    first = sessions()
    create_digest(first, site)  # holds the composition lock until it commits

    def compose() -> None:
        with sessions() as other:
            try:
                create_digest(other, site)
                other.commit()
                outcomes.append("created")
            except NothingNew:
                outcomes.append("nothing new")
            except OperationalError:
                outcomes.append("busy")

    thread = threading.Thread(target=compose)
    thread.start()
    thread.join(timeout=1)
    assert thread.is_alive(), "the second composition must wait for the first"
    first.commit()
    first.close()
    thread.join(timeout=60)
    assert outcomes == ["nothing new"]
    with sessions() as check:
        assert check.scalar(select(func.count()).select_from(Digest)) == 1


def test_create_command(runner: FlaskCliRunner, session: Session) -> None:
    add_articles(session, [1, 2])
    result = runner.invoke(args=["digest", "create"])
    assert result.exit_code == 0, result.output
    first_number = re.search(r"\d+", result.output)
    assert first_number is not None
    digest = session.get(Digest, int(first_number.group()))
    assert digest is not None
    assert result.output.splitlines() == [
        f"Created digest {digest.id} (draft) with 2 articles.",
        "Subject: Open Rights Watch: Article number 2 (+1 more)",
        "  2025-03-03  Article number 2",
        "  2025-03-02  Article number 1",
        f"Preview it with `newsletter digest preview {digest.id} --out digest.html`.",
    ]


def test_create_command_options(runner: FlaskCliRunner, session: Session) -> None:
    add_articles(session, range(1, 6))
    result = runner.invoke(
        args=["digest", "create", "--since", "2025-03-04", "--max", "1", "--subject", "Hello"]
    )
    assert result.exit_code == 0, result.output
    assert result.output.startswith("Created digest 1 (draft) with 1 article.\nSubject: Hello\n")
    assert "Article number 5" in result.output
    result = runner.invoke(args=["digest", "create", "--since", "2025-03-04T12:00"])
    assert result.exit_code == 0, result.output
    assert "Created digest 2 (draft) with 1 article." in result.output
    assert "Article number 4" in result.output


def test_create_command_with_nothing_new(runner: FlaskCliRunner, session: Session) -> None:
    result = runner.invoke(args=["digest", "create"])
    assert result.exit_code == 1
    assert result.output == (
        "Error: nothing new: no article published since the last digest is waiting for a digest\n"
    )
    add_articles(session, [1])
    assert runner.invoke(args=["digest", "create"]).exit_code == 0
    result = runner.invoke(args=["digest", "create", "--since", "2025-01-01"])
    assert result.exit_code == 1
    assert "on or after 2025-01-01T00:00:00+00:00" in result.output
    assert session.scalar(select(func.count()).select_from(Digest)) == 1


def test_create_command_rejects_bad_values(runner: FlaskCliRunner, session: Session) -> None:
    add_articles(session, [1])
    result = runner.invoke(args=["digest", "create", "--subject", "a\r\nBcc: x@example.org"])
    assert result.exit_code == 1
    assert result.output == "Error: the subject must be one line\n"
    assert runner.invoke(args=["digest", "create", "--max", "0"]).exit_code == 2
    assert runner.invoke(args=["digest", "create", "--since", "yesterday"]).exit_code == 2
    assert session.scalar(select(func.count()).select_from(Digest)) == 0
