"""``newsletter subscribers import``: good rows, each kind of bad row, duplicates, suppressed
addresses, pending imports sending confirmations, dry runs, batches and the progress bar."""

from __future__ import annotations

import os
import pty
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from newsletter.addresses import suppression_hash
from newsletter.app_db import get_engine
from newsletter.models import (
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscriber,
    Suppression,
)
from newsletter.runtime import get_runtime
from newsletter.services.csv_import import ImportStatus, SubscriberImport
from newsletter.services.csv_rows import PeopleCSV, Problem
from newsletter.suppressions import suppress
from tests.conftest import csrf_token
from tests.support.mailbox import find_link
from tests.support.people import add_subscriber, write_csv
from tests.support.smtp import SMTPServer

HEADER = ("email", "first_name", "last_name")
NOTE = "Signed the paper form at the 2024 annual meeting"


def people(session: Session) -> dict[str, Subscriber]:
    session.rollback()
    return {row.email: row for row in session.scalars(select(Subscriber))}


def table_counts(session: Session) -> dict[str, int]:
    session.rollback()
    return {
        model.__tablename__: session.scalar(select(func.count()).select_from(model)) or 0
        for model in (Subscriber, ConsentEvent, Delivery, Suppression)
    }


def test_import_active_records_consent_for_each_person(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        (*HEADER, "consented_at", "source"),
        [
            ("ada@example.org", "Ada", "Lovelace", "2024-03-01T09:30:00Z", "paper form, AGM"),
            ("Grace@Example.ORG", "Grace", "Hopper", "2024-03-02", ""),
            ("zoe@example.org", "Zoë", "Łukasiewicz", "", "https://example.org/petition"),
        ],
    )
    before = datetime.now(UTC)

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 0, result.output
    assert "Imported 3 people (3 active)" in result.stdout
    assert result.stderr == ""
    found = people(session)
    assert set(found) == {"ada@example.org", "Grace@example.org", "zoe@example.org"}
    assert found["zoe@example.org"].first_name == "Zoë"
    assert found["zoe@example.org"].last_name == "Łukasiewicz"
    assert found["Grace@example.org"].email_key == "grace@example.org"
    for subscriber in found.values():
        assert subscriber.status == "active"
        [event] = subscriber.consent_events
        assert event.kind == ConsentKind.GIVEN
        assert event.method == "import"
        assert event.note == NOTE
        assert event.statement_id is None
    ada, grace, zoe = (found[key].consent_events[0] for key in sorted(found, key=str.lower))
    assert ada.at == datetime(2024, 3, 1, 9, 30, tzinfo=UTC)
    assert ada.source_url == "paper form, AGM"
    assert grace.at == datetime(2024, 3, 2, tzinfo=UTC)
    assert grace.source_url is None
    assert zoe.at >= before.replace(microsecond=0)
    assert zoe.source_url == "https://example.org/petition"


def test_each_kind_of_bad_row_is_reported_and_the_good_ones_imported(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    rows = [
        ("good@example.org", "Good", "Row", ""),  # line 2
        ("", "No", "Address", ""),  # 3
        ("missing-first@example.org", "", "Person", ""),  # 4
        ("missing-last@example.org", "Person", "   ", ""),  # 5
        ("not-an-address", "Bad", "Email", ""),  # 6
        ("bell@example.org", "Ada\x07", "Bell", ""),  # 7
        ("break@example.org", "Line\nBreak", "Person", ""),  # 8 and 9: a quoted line break
        ("long@example.org", "A" * 101, "Long", ""),  # 10
        ("x" * 250 + "@example.org", "Long", "Address", ""),  # 11
        ("when@example.org", "Bad", "Date", "last Tuesday"),  # 12
        ("future@example.org", "Future", "Date", "2999-01-01"),  # 13
        ("also-good@example.org", "Also", "Good", ""),  # 14
    ]
    path = write_csv(tmp_path / "people.csv", (*HEADER, "consented_at"), rows)
    with path.open("a", encoding="utf-8") as handle:
        handle.write("extra@example.org,Too,Many,,values\n")  # line 15

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 1
    problems = result.stderr.splitlines()
    assert problems == [
        "line 3: rejected: email: Email address is required.",
        "line 4: rejected: first_name: First name is required.",
        "line 5: rejected: last_name: Last name is required.",
        "line 6: rejected: email: An email address must have an @-sign.",
        "line 7: rejected: first_name: This contains characters that are not allowed "
        "(such as line breaks).",
        "line 8: rejected: first_name: This contains characters that are not allowed "
        "(such as line breaks).",
        "line 10: rejected: first_name: First name must be at most 100 characters.",
        "line 11: rejected: email: Email address must be at most 254 characters.",
        "line 12: rejected: consented_at: 'last Tuesday' is not an ISO 8601 date or time "
        "(such as 2024-03-01T09:30:00Z).",
        "line 13: rejected: consented_at: is in the future.",
        "line 15: rejected: has 5 values but the header names 4 columns "
        "(a comma in a value that is not in quotes?)",
    ]
    assert "Imported 2 people (2 active); 0 skipped (already on the list); 11 rejected" in (
        result.stdout
    )
    assert set(people(session)) == {"good@example.org", "also-good@example.org"}
    assert table_counts(session)["consent_events"] == 2


def test_names_with_web_addresses_or_markup_are_rejected_and_real_names_kept(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    rows = [
        ("link@example.org", "Visit", "http://evil.example/x"),  # line 2
        ("tag@example.org", "<script>alert(1)</script>", "Tag"),  # 3
        ("word@example.org", "=?utf-8?q?a=0D=0ABcc:x?=", "Encoded"),  # 4
        ("domain@example.org", "Cheap", "PILLS.COM"),  # 5
        ("sean@example.org", "Seán", "O'Brien"),  # 6
        ("jr@example.org", "J. R.", "St.John-Smythe"),  # 7
        ("wang@example.org", "小明", "王"),  # 8
    ]
    path = write_csv(tmp_path / "people.csv", HEADER, rows)

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.stderr.splitlines() == [
        "line 2: rejected: last_name: Last name cannot contain a web address.",
        "line 3: rejected: first_name: First name cannot contain markup (<, > or =?).",
        "line 4: rejected: first_name: First name cannot contain markup (<, > or =?).",
        "line 5: rejected: last_name: Last name cannot contain a web address.",
    ]
    assert {row.email: (row.first_name, row.last_name) for row in people(session).values()} == {
        "sean@example.org": ("Seán", "O'Brien"),
        "jr@example.org": ("J. R.", "St.John-Smythe"),
        "wang@example.org": ("小明", "王"),
    }


def test_duplicates_in_the_file_and_on_the_list(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    add_subscriber(session, "Ada@Example.org", "Ada", "Lovelace", status="unsubscribed")
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        [
            ("ada@example.org", "Someone", "Else"),  # 2: already on the list
            ("bob@example.org", "Bob", "Brown"),  # 3
            ("BOB@example.org", "Robert", "Brown"),  # 4: same as line 3
            ("carol@example.org", "Carol", "Cole"),  # 5
            (" Bob@Example.org ", "Bobby", "Brown"),  # 6: same as line 3
        ],
    )

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 2: skipped: already on the list (unsubscribed)",
        "line 4: rejected: the same address as line 3",
        "line 6: rejected: the same address as line 3",
    ]
    found = people(session)
    assert set(found) == {"Ada@Example.org", "bob@example.org", "carol@example.org"}
    # The person already on the list is left exactly as they were: no new consent, no change.
    ada = found["Ada@Example.org"]
    assert (ada.first_name, ada.status, ada.consent_events) == ("Ada", "unsubscribed", [])
    assert found["bob@example.org"].first_name == "Bob"


def test_existing_people_only_make_a_clean_run_that_exits_zero(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    add_subscriber(session, "ada@example.org")
    path = write_csv(tmp_path / "people.csv", HEADER, [("ADA@example.org", "Ada", "L")])

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 0
    assert "Imported 0 people; 1 skipped (already on the list); 0 rejected" in result.stdout


def test_repeats_are_found_across_batches(app: Flask, session: Session, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        [
            ("a@example.org", "A", "One"),
            ("b@example.org", "B", "Two"),
            ("c@example.org", "C", "Three"),
            ("A@example.org", "A", "Again"),
            ("d@example.org", "D", "Four"),
            ("b@EXAMPLE.org", "B", "Again"),
        ],
    )
    problems: list[Problem] = []
    batches: list[int] = []
    importer = SubscriberImport(
        get_engine(app),
        get_runtime(app).site,
        status=ImportStatus.ACTIVE,
        consent_note=NOTE,
        batch_size=2,
    )
    with path.open(encoding="utf-8", newline="") as handle:
        counts = importer.run(PeopleCSV(handle), problems.append, lambda: batches.append(1))

    assert [(problem.line, problem.reason) for problem in problems] == [
        (5, "the same address as line 2"),
        (7, "the same address as line 3"),
    ]
    assert len(batches) == 3
    assert counts.imported["active"] == 4
    assert set(people(session)) == {f"{letter}@example.org" for letter in "abcd"}


def test_suppressed_addresses_are_refused(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    suppress(session, "strasse@example.org", "bounced")
    session.commit()
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        [
            ("STRASSE@example.org", "Gone", "Away"),
            ("here@example.org", "Here", "Now"),
            # A look-alike is another mailbox: the suppression does not cover it.
            ("straße@example.org", "Max", "Sharp"),
        ],
    )

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 2: rejected: the address is on the suppression list (bounced); only a signup "
        "through the form can bring it back"
    ]
    assert set(people(session)) == {"here@example.org", "straße@example.org"}


def test_look_alikes_of_people_on_the_list_are_other_people(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    add_subscriber(session, "\ufb01ona@example.org", "Mallory", "Ligature")
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        [
            ("fiona@example.org", "Fiona", "Real"),  # 2
            ("FIONA@example.org", "Fiona", "Again"),  # 3: the same as line 2
            ("straße@example.org", "Max", "Sharp"),  # 4
            ("strasse@example.org", "Max", "Double"),  # 5
            ("\ufb01ona@example.org", "Eve", "Stranger"),  # 6: already on the list
        ],
    )

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.stderr.splitlines() == [
        "line 3: rejected: the same address as line 2",
        "line 6: skipped: already on the list (active)",
    ]
    found = people(session)
    assert {email: (row.first_name, row.last_name) for email, row in found.items()} == {
        "\ufb01ona@example.org": ("Mallory", "Ligature"),
        "fiona@example.org": ("Fiona", "Real"),
        "straße@example.org": ("Max", "Sharp"),
        "strasse@example.org": ("Max", "Double"),
    }


def test_a_suppression_from_before_the_new_keys_covers_every_look_alike(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    # Hashed from "strasse@example.org", the key both addresses had before: one person then.
    session.add(
        Suppression(
            email_hash=suppression_hash("strasse@example.org"), reason="erased", folded=True
        )
    )
    session.commit()
    path = write_csv(
        tmp_path / "people.csv",
        (*HEADER, "status"),
        [
            ("straße@example.org", "Max", "Sharp", ""),
            ("STRASSE@example.org", "Max", "Double", ""),
            ("here@example.org", "Here", "Now", ""),
            ("stra\u017f\u017fe@example.org", "Max", "Left", "unsubscribed"),
        ],
    )

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    reason = (
        "the address is on the suppression list (erased); only a signup through the form can "
        "bring it back"
    )
    assert result.stderr.splitlines() == [
        f"line 2: rejected: {reason}",
        f"line 3: rejected: {reason}",
    ]
    assert set(people(session)) == {"here@example.org"}
    # Already covered: no second entry is made for the look-alike that left.
    assert table_counts(session)["suppressions"] == 1


def test_pending_import_sends_confirmations_that_work(
    make_app: Callable[..., Flask],
    smtp_server: SMTPServer,
    session: Session,
    tmp_path: Path,
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        [("ada@example.org", "Ada", "Lovelace"), ("grace@example.org", "Grace", "Hopper")],
    )

    result = app.test_cli_runner().invoke(
        args=["subscribers", "import", str(path), "--status", "pending"]
    )

    assert result.exit_code == 0, result.output
    assert "Imported 2 people (2 pending)" in result.stdout
    assert "Confirmation emails: 2 sent." in result.stdout
    received = smtp_server.received
    assert sorted(message.recipients[0] for message in received) == [
        "ada@example.org",
        "grace@example.org",
    ]
    found = people(session)
    assert {subscriber.status for subscriber in found.values()} == {"pending"}
    deliveries = session.scalars(select(Delivery)).all()
    assert [(d.kind, d.status) for d in deliveries] == [
        (DeliveryKind.CONFIRM, DeliveryStatus.SENT)
    ] * 2
    for subscriber in found.values():
        [event] = subscriber.consent_events
        assert (event.kind, event.method, event.note) == ("given", "import", None)

    # The emailed link confirms the person like any signup.
    ada_mail = next(r.message for r in received if r.recipients == ["ada@example.org"])
    path_only = urlsplit(find_link(ada_mail, "/confirm/")).path
    client = app.test_client()
    page = client.get(path_only)
    assert client.post(path_only, data={"csrf_token": csrf_token(page)}).status_code == 200
    assert people(session)["ada@example.org"].status == "active"
    assert people(session)["grace@example.org"].status == "pending"


def test_pending_import_keeps_emails_waiting_when_the_mail_server_is_down(
    make_app: Callable[..., Flask],
    smtp_server: SMTPServer,
    session: Session,
    tmp_path: Path,
) -> None:
    smtp_server.stop()
    app = make_app(MAIL_URL=smtp_server.url)
    rows = [(f"p{n}@example.org", "P", str(n)) for n in range(5)]
    path = write_csv(tmp_path / "people.csv", HEADER, rows)

    result = app.test_cli_runner().invoke(
        args=["subscribers", "import", str(path), "--status", "pending"]
    )

    assert result.exit_code == 1
    assert "Imported 5 people (5 pending)" in result.stdout
    assert "5 confirmation emails wait in the outbox" in result.stderr
    session.rollback()
    statuses = session.scalars(select(Delivery.status)).all()
    assert statuses == [DeliveryStatus.QUEUED] * 5

    smtp_server.start()
    flushed = app.test_cli_runner().invoke(args=["outbox", "flush"])
    assert flushed.exit_code == 0, flushed.output
    assert len(smtp_server.received) == 5


def test_dry_run_changes_nothing(
    runner: FlaskCliRunner,
    session: Session,
    tmp_path: Path,
    sent_mail: Callable[[], list[EmailMessage]],
) -> None:
    add_subscriber(session, "known@example.org")
    path = write_csv(
        tmp_path / "people.csv",
        (*HEADER, "status"),
        [
            ("new@example.org", "New", "Person", ""),
            ("known@example.org", "Known", "Person", ""),
            ("bad", "Bad", "Address", ""),
            ("left@example.org", "Left", "Us", "unsubscribed"),
        ],
    )
    before = table_counts(session)

    for status in ("active", "pending"):
        result = runner.invoke(
            args=["subscribers", "import", str(path), "--status", status]
            + ["--consent-note", NOTE, "--dry-run"]
        )
        assert result.exit_code == 1
        assert result.stdout.startswith(
            f"Dry run, nothing changed: would import 1 person (1 {status}); "
            "1 skipped (already on the list); 1 rejected; "
            "1 would be added to the suppression list (by the file); 4 rows read."
        )
        assert "line 4: rejected: email" in result.stderr

    assert table_counts(session) == before
    assert sent_mail() == []


def test_an_active_import_needs_a_consent_note(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    path = write_csv(tmp_path / "people.csv", HEADER, [("ada@example.org", "Ada", "Lovelace")])

    for extra in ([], ["--consent-note", "   "]):
        result = runner.invoke(args=["subscribers", "import", str(path), *extra])
        assert result.exit_code == 1
        assert result.output.splitlines() == [
            "Error: --consent-note is required for an active import: say how these people "
            "consented, or use --status pending to ask each of them to confirm"
        ]
    long_note = runner.invoke(
        args=["subscribers", "import", str(path), "--consent-note", "x" * 1001]
    )
    assert long_note.exit_code == 1
    assert long_note.output == "Error: --consent-note: must be at most 1000 characters.\n"
    assert table_counts(session)["subscribers"] == 0


def test_the_file_status_column_holds_people_back_and_remembers_who_left(
    runner: FlaskCliRunner,
    session: Session,
    tmp_path: Path,
    sent_mail: Callable[[], list[EmailMessage]],
) -> None:
    path = write_csv(
        tmp_path / "export.csv",
        (*HEADER, "status", "created_at", "confirmed_at", "unsubscribed_at"),
        [
            ("on@example.org", "On", "List", "active", "2024-01-01T00:00:00Z", "", ""),
            ("wait@example.org", "Not", "Confirmed", "pending", "2024-01-01T00:00:00Z", "", ""),
            ("left@example.org", "Left", "Us", "unsubscribed", "2024-01-01T00:00:00Z", "", ""),
            ("dead@example.org", "Bounced", "Away", "bounced", "2024-01-01T00:00:00Z", "", ""),
            ("odd@example.org", "Odd", "Status", "cleaned", "", "", ""),
        ],
    )

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 6: rejected: status: 'cleaned' is not one of pending, active, unsubscribed, bounced."
    ]
    assert "2 added to the suppression list (by the file)" in result.stdout
    found = people(session)
    assert {email: s.status for email, s in found.items()} == {
        "on@example.org": "active",
        "wait@example.org": "pending",
    }
    assert [str(message["To"]) for message in sent_mail()] == ["wait@example.org"]
    reasons = dict(session.execute(select(Suppression.email_hash, Suppression.reason)).all())
    assert reasons == {
        suppression_hash("left@example.org"): "unsubscribed",
        suppression_hash("dead@example.org"): "bounced",
    }
    again = write_csv(tmp_path / "again.csv", HEADER, [("left@example.org", "Left", "Us")])
    refused = runner.invoke(args=["subscribers", "import", str(again), "--consent-note", NOTE])
    assert refused.exit_code == 1
    assert "suppression list (unsubscribed)" in refused.stderr


def test_unreadable_files_stop_with_one_line(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    no_names = write_csv(tmp_path / "no-names.csv", ("Email", "name"), [("a@example.org", "A")])
    latin1 = tmp_path / "latin1.csv"
    latin1.write_bytes("email,first_name,last_name\nzoe@example.org,Zo\xeb,L\n".encode("latin-1"))
    empty = tmp_path / "empty.csv"
    empty.write_text("\n\n")
    cases = {
        no_names: "the header has no first_name, last_name column "
        "(it must name email, first_name, last_name)",
        latin1: 'line 2: the file is not UTF-8 text; save it as "CSV UTF-8"; '
        "fix it and run the same import again to continue",
        empty: "the file is empty: it needs a header row naming its columns",
    }
    for path, message in cases.items():
        result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])
        assert result.exit_code == 1
        assert result.output.splitlines()[-1] == f"Error: {path}: {message}"
    missing = runner.invoke(
        args=["subscribers", "import", str(tmp_path / "nope.csv"), "--consent-note", NOTE]
    )
    assert missing.exit_code == 1
    nope = tmp_path / "nope.csv"
    assert missing.output == f"Error: cannot read {nope}: No such file or directory\n"
    assert table_counts(session)["subscribers"] == 0


def test_headers_are_matched_loosely_and_a_byte_order_mark_is_fine(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    path = tmp_path / "excel.csv"
    content = "\ufeff Email ,First_Name,LAST_NAME,Phone\r\nada@example.org,Ada,L,1\r\n"
    path.write_bytes(content.encode())

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 0, result.output
    assert result.stderr == "Not used: the column(s) phone.\n"
    assert set(people(session)) == {"ada@example.org"}


def _install_failing_trigger(session: Session) -> None:
    """Make the database itself refuse the consent event of one address, mid-batch."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON consent_events "
                "WHEN (SELECT email FROM subscribers WHERE id = NEW.subscriber_id) "
                "= 'refused@example.org' BEGIN SELECT RAISE(ABORT, 'refused by trigger'); END"
            )
        )
    else:
        session.execute(
            text(
                "CREATE FUNCTION refuse() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN "
                "IF (SELECT email FROM subscribers WHERE id = NEW.subscriber_id) "
                "= 'refused@example.org' THEN RAISE EXCEPTION 'refused by trigger'; END IF; "
                "RETURN NEW; END $$"
            )
        )
        session.execute(
            text(
                "CREATE TRIGGER refuse BEFORE INSERT ON consent_events "
                "FOR EACH ROW EXECUTE FUNCTION refuse()"
            )
        )
    session.commit()


def _drop_failing_trigger(session: Session) -> None:
    if session.get_bind().dialect.name == "sqlite":
        session.execute(text("DROP TRIGGER refuse"))
    else:
        session.execute(text("DROP TRIGGER refuse ON consent_events"))
    session.commit()


def test_a_failed_batch_leaves_no_one_half_imported_and_a_rerun_continues(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    rows = [(f"p{n}@example.org", "Person", str(n)) for n in range(2500)]
    rows[1500] = ("refused@example.org", "Refused", "Person")  # line 1502, in the second batch
    path = write_csv(tmp_path / "people.csv", HEADER, rows)
    _install_failing_trigger(session)

    result = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert result.exit_code == 1
    assert result.stdout.startswith("Imported 1,000 people (1,000 active)")
    assert "lines 1002-2001 could not be written" in result.output
    assert "run the same import again to continue" in result.output
    counts = table_counts(session)
    assert counts["subscribers"] == counts["consent_events"] == 1000
    without_consent = session.scalar(
        select(func.count()).select_from(Subscriber).where(~Subscriber.consent_events.any())
    )
    assert without_consent == 0

    _drop_failing_trigger(session)
    rerun = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", NOTE])

    assert rerun.exit_code == 0, rerun.output
    assert rerun.stdout.startswith("Imported 1,500 people (1,500 active); 1,000 skipped")
    counts = table_counts(session)
    assert counts["subscribers"] == counts["consent_events"] == 2500


def test_a_terminal_gets_a_progress_bar(database_url: str, tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "people.csv",
        HEADER,
        [(f"p{n}@example.org", "Person", str(n)) for n in range(3000)],
    )
    env = {
        **os.environ,
        "NEWSLETTER_DATABASE_URL": database_url,
        "NEWSLETTER_INSTANCE_PATH": str(tmp_path / "instance"),
        "NEWSLETTER_MAIL_URL": f"maildir://{tmp_path / 'outbox'}",
    }
    command = [sys.executable, "-c", "from newsletter.cli.main import main; main()"]
    args = ["subscribers", "import", str(path), "--consent-note", NOTE]
    primary, secondary = pty.openpty()
    process = subprocess.Popen(
        command + args, stdin=secondary, stdout=secondary, stderr=secondary, env=env
    )
    os.close(secondary)
    output = b""
    while True:
        try:
            chunk = os.read(primary, 4096)
        except OSError:  # the other end closed
            break
        if not chunk:
            break
        output += chunk
    os.close(primary)

    assert process.wait(timeout=60) == 0, output
    shown = output.decode()
    assert "Importing" in shown
    assert "100%" in shown
    assert "Imported 3,000 people (3,000 active)" in shown


def test_wide_headers_stray_quotes_and_old_consent_dates_are_named(
    runner: FlaskCliRunner, session: Session, tmp_path: Path
) -> None:
    wide = tmp_path / "wide.csv"
    wide.write_text(",".join(["email", *(f"c{n}" for n in range(100_000))]) + "\nx@example.org\n")
    result = runner.invoke(args=["subscribers", "import", str(wide), "--consent-note", NOTE])
    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"Error: {wide}: the header has 100,001 columns; at most 100 are read "
        "(is this a file of people?)"
    ]

    quoted = tmp_path / "quoted.csv"
    others = "".join(f"person{n}@example.org,P,{n},2024-01-01\n" for n in range(2_000))
    quoted.write_text(
        "email,first_name,last_name,consented_at\n"
        "ada@example.org,Ada,L,2024-01-01\n"
        'bob@example.org,"Bob,S,2024-01-01\n' + others + "old@example.org,Old,Date,0001-01-01\n"
    )
    result = runner.invoke(args=["subscribers", "import", str(quoted), "--consent-note", NOTE])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 3: rejected: the first_name value in quotes opens on line 3 and runs to line "
        "2004, taking in 2,001 more lines: is a closing quote missing?"
    ]
    assert set(people(session)) == {"ada@example.org"}

    dated = tmp_path / "dated.csv"
    dated.write_text(
        "email,first_name,last_name,consented_at\n"
        "old@example.org,Old,Date,0001-01-01\n"
        "new@example.org,New,Date,1990-01-01\n"
    )
    result = runner.invoke(args=["subscribers", "import", str(dated), "--consent-note", NOTE])
    assert result.exit_code == 1
    assert result.stderr.splitlines() == [
        "line 2: rejected: consented_at: 0001-01-01 is before 1990: is the date right?"
    ]
    assert set(people(session)) == {"ada@example.org", "new@example.org"}
