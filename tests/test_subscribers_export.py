"""``newsletter subscribers export``: the CSV's shape, formula neutralisation, and a round trip
through ``import`` into a fresh database."""

from __future__ import annotations

import csv
import io
import stat
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import create_engine, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from newsletter.addresses import suppression_hash
from newsletter.app_db import session_factory
from newsletter.db import create_db_engine
from newsletter.migrate import upgrade
from newsletter.models import Subscriber, Suppression
from newsletter.services.csv_export import FORMULA_STARTS, neutralise, restore
from tests.support.mailbox import read_maildir
from tests.support.people import add_subscriber

HEADER = [
    "email",
    "first_name",
    "last_name",
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    "topics",
]


def parse(output: str) -> list[list[str]]:
    return list(csv.reader(io.StringIO(output, newline="")))


def test_neutralise_and_restore() -> None:
    for start in FORMULA_STARTS:
        value = f"{start}1+1"
        assert neutralise(value) == f"'{value}"
        assert restore(neutralise(value)) == value
    for harmless in ("Ada", "O'Brien", "'quoted", "a=b", ""):
        assert neutralise(harmless) == harmless
        assert restore(harmless) == harmless


def test_export_writes_every_status_with_iso_times(
    runner: FlaskCliRunner, session: Session
) -> None:
    created = datetime(2024, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    ada = add_subscriber(session, "ada@example.org", "Ada", "Lovelace", created_at=created)
    ada.confirmed_at = datetime(2024, 5, 6, 8, 0, tzinfo=UTC)
    add_subscriber(session, "zoe@example.org", "Zoë", 'Smith, Jr "Z"', "pending", created)
    left = add_subscriber(session, "left@example.org", "Left", "Us", "unsubscribed", created)
    left.unsubscribed_at = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
    add_subscriber(session, "dead@example.org", "Bounced", "Away", "bounced", created)
    session.commit()

    result = runner.invoke(args=["subscribers", "export"])

    assert result.exit_code == 0, result.output
    # RFC 4180 line ends; click's ``stdout`` would show them as plain newlines.
    assert result.stdout_bytes.startswith((",".join(HEADER) + "\r\n").encode())
    assert parse(result.stdout_bytes.decode("utf-8")) == [
        HEADER,
        [
            "ada@example.org",
            "Ada",
            "Lovelace",
            "active",
            "2024-05-06T07:08:09Z",
            "2024-05-06T08:00:00Z",
            "",
            "",
        ],
        ["zoe@example.org", "Zoë", 'Smith, Jr "Z"', "pending", "2024-05-06T07:08:09Z", "", "", ""],
        [
            "left@example.org",
            "Left",
            "Us",
            "unsubscribed",
            "2024-05-06T07:08:09Z",
            "",
            "2024-06-01T12:00:00Z",
            "",
        ],
        ["dead@example.org", "Bounced", "Away", "bounced", "2024-05-06T07:08:09Z", "", "", ""],
    ]
    assert result.stderr == "Exported 4 subscribers.\n"

    narrowed = runner.invoke(
        args=["subscribers", "export", "--status", "active", "--status", "pending"]
    )
    assert [row[0] for row in parse(narrowed.stdout)[1:]] == ["ada@example.org", "zoe@example.org"]


def test_export_to_a_file_is_private_utf8(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    add_subscriber(session, "zoe@example.org", "Zoë", "Łukasiewicz")
    folder = tmp_path / "exports"
    folder.mkdir()
    out = folder / "list.csv"

    result = runner.invoke(args=["subscribers", "export", "--out", str(out)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"Exported 1 subscribers to {out}.\n"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    content = out.read_bytes().decode("utf-8")
    assert parse(content)[1][:3] == ["zoe@example.org", "Zoë", "Łukasiewicz"]
    assert [path.name for path in folder.iterdir()] == ["list.csv"]

    nowhere = runner.invoke(args=["subscribers", "export", "--out", str(tmp_path / "no" / "x")])
    assert nowhere.exit_code == 1
    assert nowhere.output.startswith(f"Error: cannot write {tmp_path / 'no' / 'x'}: ")
    assert len(nowhere.output.splitlines()) == 1


def test_cells_that_start_like_formulas_are_neutralised(
    runner: FlaskCliRunner, session: Session
) -> None:
    dangerous = {
        "=": ("=cmd@example.org", '=HYPERLINK("http://evil.example","x")', "=1+1"),
        "+": ("+tag@example.org", "+Plus", "+41 22 000"),
        "-": ("-dash@example.org", "-Minus", "-2+3"),
        "@": ("at@example.org", "@SUM(A1:A9)", "@Home"),
        "\t": ("tab@example.org", "\t=1+1", "\tTabbed"),
        "\r": ("cr@example.org", "\r=1+1", "\rReturned"),
    }
    for email, first, last in dangerous.values():
        # Written directly: the form and the import never let tab or CR into a name.
        add_subscriber(session, email, first, last)

    result = runner.invoke(args=["subscribers", "export"])

    assert result.exit_code == 0, result.output
    rows = {row[0]: row for row in parse(result.stdout_bytes.decode("utf-8"))[1:]}
    assert set(rows) == {
        "'=cmd@example.org",
        "'+tag@example.org",
        "'-dash@example.org",
        "at@example.org",
        "tab@example.org",
        "cr@example.org",
    }
    for start, (email, first, last) in dangerous.items():
        row = rows[neutralise(email)]
        assert row[1] == f"'{first}", start
        assert row[2] == f"'{last}", start
        assert row[3] == "active"
    assert all(not cell.startswith(FORMULA_STARTS) for row in rows.values() for cell in row)


@pytest.fixture
def fresh_database_url(
    database_url: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[str]:
    """A second, empty database of the same kind, migrated to the current schema."""
    if database_url.startswith("sqlite"):
        url = f"sqlite:///{tmp_path / 'second.db'}"
        engine = create_db_engine(url)
        upgrade(engine)
        engine.dispose()
        yield url
        return
    server: str = request.getfixturevalue("postgres_server")
    name = f"second_{uuid.uuid4().hex[:12]}"
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(server).set(database=name).render_as_string(hide_password=False)
    engine = create_db_engine(url)
    upgrade(engine)
    engine.dispose()
    try:
        yield url
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


def test_round_trip_into_a_fresh_database_keeps_every_person(
    runner: FlaskCliRunner,
    session: Session,
    make_app: Callable[..., Flask],
    fresh_database_url: str,
    tmp_path: Path,
    sent_mail: Callable[[], list[EmailMessage]],
) -> None:
    everyone = [
        ("ada@example.org", "Ada", "Lovelace", "active"),
        ("=sum@example.org", "=SUM(A1:A9)", "+Plus", "active"),
        ("-dash@example.org", "-Minus", "@At", "active"),
        ("zoe@example.org", "Zoë", 'Smith, Jr "Z"', "active"),
        ("quote@example.org", "'Quoted", "O'Brien", "active"),
        ("Mixed.Case@example.org", "Mixed", "Case", "active"),
        ("wait@example.org", "Not", "Confirmed", "pending"),
        ("left@example.org", "Left", "Us", "unsubscribed"),
        ("dead@example.org", "Bounced", "Away", "bounced"),
    ]
    for email, first, last, status in everyone:
        add_subscriber(session, email, first, last, status)
    exported = tmp_path / "export.csv"
    assert runner.invoke(args=["subscribers", "export", "--out", str(exported)]).exit_code == 0

    fresh = make_app(DATABASE_URL=fresh_database_url, MAIL_URL=f"maildir://{tmp_path / 'mail2'}")
    result = fresh.test_cli_runner().invoke(
        args=["subscribers", "import", str(exported), "--consent-note", "Moved from the old list"]
    )

    assert result.exit_code == 0, result.output
    assert result.stdout.startswith(
        "Imported 7 people (6 active, 1 pending); 0 skipped (already on the list); 0 rejected; "
        "2 added to the suppression list (by the file); 9 rows read."
    )
    with session_factory(fresh)() as second:
        kept = {
            (s.email, s.first_name, s.last_name, s.status)
            for s in second.scalars(select(Subscriber))
        }
        suppressed = dict(second.execute(select(Suppression.email_hash, Suppression.reason)).all())
    subscribed = {person for person in everyone if person[3] in ("active", "pending")}
    assert kept == subscribed
    assert suppressed == {
        suppression_hash("left@example.org"): "unsubscribed",
        suppression_hash("dead@example.org"): "bounced",
    }
    # The one who never confirmed is asked again, from the new instance.
    assert [str(m["To"]) for m in read_maildir(tmp_path / "mail2")] == ["wait@example.org"]
    assert sent_mail() == []

    again = fresh.test_cli_runner().invoke(args=["subscribers", "export"])
    original = parse(runner.invoke(args=["subscribers", "export"]).stdout)
    columns = slice(0, 4)
    assert [row[columns] for row in parse(again.stdout)] == [
        row[columns] for row in original if row[3] not in ("unsubscribed", "bounced")
    ]
