"""People's topics in ``subscribers stats``, ``export``, ``import``, ``show`` and ``erase``
(SQLite and PostgreSQL)."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Subscriber, SubscriberTopic
from newsletter.services.topics import topics_of
from tests.support.people import add_subscriber, write_csv
from tests.support.topics import choose, make_topic

NOTE = "Signed the paper form at the 2024 annual meeting"


def chosen(session: Session) -> dict[str, tuple[str, ...]]:
    """Each person's address with the slugs of their topics."""
    session.expire_all()
    people = dict(session.execute(select(Subscriber.id, Subscriber.email)).all())
    return {people[id_]: slugs for id_, slugs in topics_of(session, list(people)).items()}


def test_stats_count_people_per_topic(runner: FlaskCliRunner, session: Session) -> None:
    assert "Topics:\n  none defined" in runner.invoke(args=["subscribers", "stats"]).stdout
    make_topic(session, "asylum", "Asylum")
    make_topic(session, "north-korea", "North Korea")
    make_topic(session, "prisons")
    ada = add_subscriber(session, "ada@example.org")
    bob = add_subscriber(session, "bob@example.org")
    cy = add_subscriber(session, "cy@example.org", status="unsubscribed")
    add_subscriber(session, "dee@example.org")
    choose(session, ada, ["asylum", "north-korea"])
    choose(session, bob, ["north-korea"])
    choose(session, cy, ["north-korea"])

    result = runner.invoke(args=["subscribers", "stats"])

    assert result.exit_code == 0, result.output
    assert (
        "Topics:\n"
        "  topic        name         active  people\n"
        "  asylum       Asylum            1       1\n"
        "  north-korea  North Korea       2       3\n"
        "  prisons      Prisons           0       0\n"
        "  active with no topic chosen (everything): 1 person\n"
    ) in result.stdout


def test_export_has_a_topics_column(runner: FlaskCliRunner, session: Session) -> None:
    make_topic(session, "asylum")
    make_topic(session, "north-korea")
    choose(session, add_subscriber(session, "ada@example.org"), ["north-korea", "asylum"])
    add_subscriber(session, "bob@example.org")

    result = runner.invoke(args=["subscribers", "export"])

    assert result.exit_code == 0, result.output
    rows = list(csv.DictReader(io.StringIO(result.stdout_bytes.decode(), newline="")))
    assert {row["email"]: row["topics"] for row in rows} == {
        "ada@example.org": "asylum north-korea",
        "bob@example.org": "",
    }


def test_import_reads_topics_and_rejects_a_row_with_an_unknown_one_whole(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    make_topic(session, "asylum")
    make_topic(session, "north-korea")
    path = write_csv(
        tmp_path / "people.csv",
        ("email", "first_name", "last_name", "topics"),
        [
            ("ada@example.org", "Ada", "Lovelace", "north-korea asylum"),
            ("bob@example.org", "Bob", "Baker", ""),
            ("cy@example.org", "Cy", "Young", "asylum prisons sport"),
            ("dee@example.org", "Dee", "Dee", "Asylum"),
            ("eve@example.org", "Eve", "Ever", "asylum,asylum"),
        ],
    )

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 4: rejected: topics: there is no topic prisons, sport (see `newsletter topics list`)",
        "line 5: rejected: topics: 'Asylum' is not a topic slug: use 1 to 64 lower-case "
        "letters, digits and hyphens, such as north-korea",
    ]
    assert "Imported 3 people (3 active); 0 skipped (already on the list); 2 rejected" in (
        result.stdout
    )
    # Neither rejected person is on the list, with or without topics.
    emails = set(session.scalars(select(Subscriber.email)))
    assert emails == {"ada@example.org", "bob@example.org", "eve@example.org"}
    assert chosen(session) == {
        "ada@example.org": ("asylum", "north-korea"),
        "eve@example.org": ("asylum",),
    }


def test_a_dry_run_checks_topics_and_stores_nothing(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        ("email", "first_name", "last_name", "topics"),
        [("ada@example.org", "Ada", "Lovelace", "asylum")],
    )
    result = runner.invoke(
        args=["subscribers", "import", str(path), "--consent-note", NOTE, "--dry-run"]
    )
    assert result.exit_code == 1
    assert "line 2: rejected: topics: there is no topic asylum" in result.stderr
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0


def test_export_imports_back_with_its_topics(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    make_topic(session, "asylum")
    make_topic(session, "north-korea")
    choose(session, add_subscriber(session, "ada@example.org"), ["north-korea", "asylum"])
    add_subscriber(session, "bob@example.org")
    exported = tmp_path / "export.csv"
    assert runner.invoke(args=["subscribers", "export", "--out", str(exported)]).exit_code == 0
    for email in ("ada@example.org", "bob@example.org"):
        assert runner.invoke(args=["subscribers", "erase", email, "--yes"]).exit_code == 0
    assert session.scalar(select(func.count()).select_from(SubscriberTopic)) == 0
    # Erased addresses are suppressed; a fresh address list is what a move to a new
    # instance brings, so the file is re-addressed.
    moved = tmp_path / "moved.csv"
    moved.write_text(exported.read_text().replace("@example.org", "@example.net"))

    result = runner.invoke(args=["subscribers", "import", str(moved), "--consent-note", NOTE])

    assert result.exit_code == 0, result.output
    assert chosen(session) == {"ada@example.net": ("asylum", "north-korea")}


def test_show_prints_the_persons_topics(runner: FlaskCliRunner, session: Session) -> None:
    make_topic(session, "asylum")
    make_topic(session, "north-korea")
    choose(session, add_subscriber(session, "ada@example.org"), ["north-korea", "asylum"])
    add_subscriber(session, "bob@example.org")

    ada = json.loads(runner.invoke(args=["subscribers", "show", "ada@example.org"]).stdout)
    bob = json.loads(runner.invoke(args=["subscribers", "show", "bob@example.org"]).stdout)

    assert ada["topics"] == ["asylum", "north-korea"]
    assert bob["topics"] == []
