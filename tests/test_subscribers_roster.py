"""``newsletter subscribers list`` and ``stats``."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

from flask.testing import FlaskCliRunner
from sqlalchemy.orm import Session

from newsletter.cli.tables import first_words, format_table, sparkline
from newsletter.db import utcnow
from newsletter.models import (
    ConsentEvent,
    ConsentKind,
    ConsentStatement,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Digest,
    DigestStatus,
)
from newsletter.services.roster import week_starts
from tests.support.people import add_subscriber

CREATED = datetime(2024, 5, 6, 7, 8, 9, tzinfo=UTC)


def test_sparkline_table_and_first_words() -> None:
    assert sparkline([0, 1, 4, 8]) == "▁▂▅█"
    assert sparkline([0, 0]) == "▁▁"
    assert sparkline([1, 100]) == "▂█"  # a small number still shows above zero
    assert format_table(("name", "people"), [("a", 5), ("bb", 1234)]) == [
        "name  people",
        "a          5",
        "bb     1,234",
    ]
    assert first_words("one two three", 2) == "one two…"
    assert first_words("one two", 2) == "one two"


def test_week_starts_are_mondays_in_utc() -> None:
    starts = week_starts(datetime(2026, 11, 27, 15, 0, tzinfo=UTC))  # a Friday
    assert starts[-1] == datetime(2026, 11, 23, tzinfo=UTC)
    assert starts[0] == datetime(2026, 9, 7, tzinfo=UTC)
    assert len(starts) == 12
    assert {start.weekday() for start in starts} == {0}


def test_list_shows_a_table_newest_first_with_filters(
    runner: FlaskCliRunner, session: Session
) -> None:
    add_subscriber(session, "ada@example.org", "Ada", "Lovelace", "active", CREATED)
    add_subscriber(session, "grace@example.org", "Grace", "Hopper", "pending", CREATED)
    add_subscriber(session, "Alan@Example.org", "Alan", "Turing", "unsubscribed", CREATED)
    add_subscriber(session, "percent@example.org", "Hundred", "Per%Cent", "active", CREATED)

    result = runner.invoke(args=["subscribers", "list"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        "id  email                name              status        created",
        " 4  percent@example.org  Hundred Per%Cent  active        2024-05-06T07:08:09Z",
        " 3  Alan@Example.org     Alan Turing       unsubscribed  2024-05-06T07:08:09Z",
        " 2  grace@example.org    Grace Hopper      pending       2024-05-06T07:08:09Z",
        " 1  ada@example.org      Ada Lovelace      active        2024-05-06T07:08:09Z",
        "4 of 4 shown.",
    ]

    def emails(*args: str) -> list[str]:
        output = runner.invoke(args=["subscribers", "list", *args]).stdout.splitlines()
        return [line.split()[1] for line in output[1:-1]]

    assert emails("--status", "active") == ["percent@example.org", "ada@example.org"]
    assert emails("--status", "pending", "--status", "unsubscribed") == [
        "Alan@Example.org",
        "grace@example.org",
    ]
    assert emails("--search", "ALAN@example") == ["Alan@Example.org"]
    assert emails("--search", "grace hop") == ["grace@example.org"]
    assert emails("--search", "love") == ["ada@example.org"]
    assert emails("--search", "%") == ["percent@example.org"]  # a literal percent sign
    limited = runner.invoke(args=["subscribers", "list", "--limit", "2"]).stdout.splitlines()
    assert limited[-1] == "2 of 4 shown (use --limit to see more, or export them)."
    assert len(limited) == 4
    nothing = runner.invoke(args=["subscribers", "list", "--search", "nobody"])
    assert nothing.stdout == "No subscribers match.\n"


def test_search_matches_addresses_the_way_their_key_does(
    runner: FlaskCliRunner, session: Session
) -> None:
    add_subscriber(session, "JÜRGEN@bücher.de", "Jürgen", "Upper")
    add_subscriber(session, "jürgen@bücher.de", "Jürgen", "Lower")

    def names(search: str) -> list[str]:
        output = runner.invoke(args=["subscribers", "list", "--search", search]).stdout
        return [line.split()[3] for line in output.splitlines()[1:-1]]

    # ASCII letters in any case, the domain in either form; other letters as written, since
    # they may be two people's mailboxes.
    assert names("JÜRGEN@") == ["Upper"]
    assert names("Jürgen@") == ["Lower"]
    assert names("@XN--BCHER-KVA.DE") == ["Lower", "Upper"]


def _event(
    session: Session, subscriber_id: int, kind: str, at: datetime, statement: int | None = None
) -> None:
    session.add(
        ConsentEvent(
            subscriber_id=subscriber_id, kind=kind, at=at, method="test", statement_id=statement
        )
    )


def test_stats_show_statuses_weeks_statements_and_digests(
    runner: FlaskCliRunner, session: Session
) -> None:
    now = utcnow()
    statuses = ["active"] * 3 + ["pending"] * 2 + ["unsubscribed", "bounced"]
    people = [
        add_subscriber(session, f"p{n}@example.org", "P", str(n), status)
        for n, status in enumerate(statuses)
    ]
    old_words = ConsentStatement(text_hash="a" * 64, text="Old wording: we send news monthly.")
    new_words = ConsentStatement(
        text_hash="b" * 64,
        text="By signing up you will receive news about our work and how to support it.",
    )
    session.add_all([old_words, new_words])
    session.flush()
    week = timedelta(weeks=1)
    # This week: 3 signups (two with the new wording), 2 confirmations, 1 unsubscribe.
    _event(session, people[0].id, ConsentKind.GIVEN, now, new_words.id)
    _event(session, people[1].id, ConsentKind.GIVEN, now, new_words.id)
    _event(session, people[2].id, ConsentKind.GIVEN, now)
    _event(session, people[0].id, ConsentKind.CONFIRMED, now)
    _event(session, people[1].id, ConsentKind.CONFIRMED, now)
    _event(session, people[5].id, ConsentKind.WITHDRAWN, now)
    # Last week one signup with the old wording; eleven weeks back one; twelve back: too old.
    _event(session, people[3].id, ConsentKind.GIVEN, now - week, old_words.id)
    _event(session, people[4].id, ConsentKind.GIVEN, now - 11 * week, old_words.id)
    _event(session, people[5].id, ConsentKind.GIVEN, now - 12 * week, old_words.id)
    digest = Digest(subject="News in May from the whole team", status=DigestStatus.SENT)
    draft = Digest(subject="Not sent yet", status=DigestStatus.DRAFT)
    session.add_all([digest, draft])
    session.flush()
    for subscriber, status in zip(people[:4], ["sent", "sent", "failed", "unknown"], strict=True):
        session.add(
            Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=digest.id,
                subscriber_id=subscriber.id,
                status=status,
            )
        )
    session.add(
        Delivery(kind=DeliveryKind.CONFIRM, subscriber_id=people[3].id, status=DeliveryStatus.SENT)
    )
    session.commit()

    result = runner.invoke(args=["subscribers", "stats"])

    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[:5] == [
        "Subscribers: 7",
        "  active             3",
        "  pending            2",
        "  unsubscribed       1",
        "  bounced            1",
    ]
    assert "  signups        ▃▁▁▁▁▁▁▁▁▁▃█  5 in all" in lines
    assert "  confirmations  ▁▁▁▁▁▁▁▁▁▁▁█  2 in all" in lines
    assert "  unsubscribes   ▁▁▁▁▁▁▁▁▁▁▁█  1 in all" in lines
    weeks = [line.split() for line in lines if re.match(r"  \d{4}-W\d\d ", line)]
    assert len(weeks) == 12
    year, number, _ = now.isocalendar()
    assert weeks[-1] == [f"{year}-W{number:02d}", "3", "2", "1"]
    assert weeks[-2][1:] == ["1", "0", "0"]
    assert weeks[0][1:] == ["1", "0", "0"]
    assert sum(int(row[1]) for row in weeks) == 5
    statements = lines.index("Consent statements in use:")
    assert lines[statements + 1 : statements + 4] == [
        "  version  people  wording",
        f"        {old_words.id}       3  Old wording: we send news monthly.",
        f"        {new_words.id}       2  By signing up you will receive news about…",
    ]
    assert lines[statements + 4] == "  with a consent note instead (imported): 1 person"
    assert "Confirmation emails: 1 sent" in lines
    digests = lines.index("Digests:")
    assert lines[digests + 1].split() == [
        "id",
        "status",
        "sent",
        "subject",
        "queued",
        "sending",
        "sent",
        "failed",
        "skipped",
        "unknown",
    ]
    row = lines[digests + 2]
    assert row.split()[:2] == [str(digest.id), "sent"]
    assert "News in May from the" in row
    assert row.split()[-6:] == ["0", "0", "2", "1", "0", "1"]
    assert len(lines) == digests + 3  # the draft is not listed


def test_stats_on_an_empty_list(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["subscribers", "stats"])

    assert result.exit_code == 0, result.output
    assert "Subscribers: 0" in result.stdout
    assert "  signups        ▁▁▁▁▁▁▁▁▁▁▁▁  0 in all" in result.stdout
    assert "Consent statements in use:\n  none yet" in result.stdout
    assert "Confirmation emails: none" in result.stdout
    assert "Digests:\n  none sent yet" in result.stdout
