"""``newsletter subscribers show`` and ``erase``: everything held about a person, and the
right to erasure."""

from __future__ import annotations

import json
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.addresses import suppression_hash
from newsletter.app_db import get_engine
from newsletter.models import (
    ConsentEvent,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Digest,
    DigestStatus,
    Subscriber,
    Suppression,
)
from tests.support.people import add_subscriber, sign_up_and_confirm, text_values, write_csv

EMAIL = "Zebedee.Quarrington@example.org"
FIRST, LAST = "Zebedee", "Quarrington"
STATEMENT = (
    "By signing up you will receive news about Open Rights Watch's work and how you can "
    "support it. You can unsubscribe at any time."
)


def test_show_prints_everything_held_as_json(
    runner: FlaskCliRunner,
    client: FlaskClient,
    sent_mail: Callable[[], list[EmailMessage]],
) -> None:
    sign_up_and_confirm(client, sent_mail, EMAIL, FIRST, LAST)

    result = runner.invoke(args=["subscribers", "show", "zebedee.quarrington@EXAMPLE.ORG"])

    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout)
    assert {key: record[key] for key in ("email", "first_name", "last_name", "status")} == {
        "email": EMAIL,
        "first_name": FIRST,
        "last_name": LAST,
        "status": "active",
    }
    for key in ("created_at", "confirmed_at"):
        assert record[key].endswith("Z") and "T" in record[key]
    assert record["unsubscribed_at"] is None
    assert record["suppressed"] is None
    given, confirmed = record["consent"]
    assert given["kind"] == "given"
    assert given["method"] == "web form"
    assert given["ip"] == "127.0.0.1"
    assert given["user_agent"].startswith("Werkzeug/")
    assert given["source_url"] == "http://localhost/subscribe"
    assert given["box_style"] == "page"
    assert given["statement"]["text"] == STATEMENT
    assert isinstance(given["statement"]["version"], int)
    assert confirmed["kind"] == "confirmed"
    assert confirmed["method"] == "confirmation link"
    assert confirmed["statement"] == given["statement"]
    assert confirmed["box_style"] is None
    assert confirmed["at"] >= given["at"]
    deliveries = record["deliveries"]
    assert deliveries["total"] == 1
    assert deliveries["by_kind"] == {"confirm": {"sent": 1}}
    assert deliveries["last_sent_at"].endswith("Z")


def test_show_and_erase_name_an_unknown_address_in_one_line(runner: FlaskCliRunner) -> None:
    for command in (["show"], ["erase", "--yes"]):
        result = runner.invoke(args=["subscribers", *command, "nobody@example.org"])
        assert result.exit_code == 1
        assert result.output == "Error: no subscriber with the address nobody@example.org\n"


def _digest_with_deliveries(session: Session, subscriber: Subscriber, other: Subscriber) -> None:
    sent = Digest(subject="News in May", status=DigestStatus.SENT)
    failed = Digest(subject="News in June", status=DigestStatus.SENT)
    sending = Digest(subject="News in July", status=DigestStatus.SENDING)
    session.add_all([sent, failed, sending])
    session.flush()
    session.add_all(
        [
            Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=sent.id,
                subscriber_id=subscriber.id,
                status=DeliveryStatus.SENT,
            ),
            Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=sent.id,
                subscriber_id=other.id,
                status=DeliveryStatus.SENT,
            ),
            Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=failed.id,
                subscriber_id=subscriber.id,
                status=DeliveryStatus.FAILED,
                last_error=f"552 5.2.2 <{EMAIL}>: mailbox of {FIRST} {LAST} is full",
            ),
            Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=sending.id,
                subscriber_id=subscriber.id,
                status=DeliveryStatus.QUEUED,
            ),
        ]
    )
    session.commit()


def _per_digest(session: Session) -> dict[int, int]:
    session.rollback()
    query = (
        select(Delivery.digest_id, func.count())
        .where(Delivery.digest_id.is_not(None))
        .group_by(Delivery.digest_id)
    )
    return dict(session.execute(query).all())


def test_erase_leaves_nothing_but_a_hash_and_the_form_still_works(
    app: Flask,
    runner: FlaskCliRunner,
    client: FlaskClient,
    session: Session,
    sent_mail: Callable[[], list[EmailMessage]],
    tmp_path: Path,
) -> None:
    sign_up_and_confirm(client, sent_mail, EMAIL, FIRST, LAST)
    other = add_subscriber(session, "someone@example.org", "Someone", "Else")
    zebedee = session.scalars(select(Subscriber).where(Subscriber.email == EMAIL)).one()
    _digest_with_deliveries(session, zebedee, other)
    counts_before = _per_digest(session)

    result = runner.invoke(args=["subscribers", "erase", EMAIL, "--yes"])

    assert result.exit_code == 0, result.output
    assert result.stdout.splitlines() == [
        f"Erased {EMAIL}:",
        f"  subscriber record: {FIRST} {LAST} (active)",
        "  consent events deleted: 2",
        "  deliveries stripped of personal data: 4 (kept, unlinked, so digest counts stay right)",
        "  queued emails cancelled: 1",
        "  suppression list: a hash of the address was added (erased)",
    ]
    shown = runner.invoke(args=["subscribers", "show", EMAIL])
    assert shown.exit_code == 1
    assert shown.output == (
        f"Error: no subscriber with the address {EMAIL} "
        "(the address is on the suppression list: erased)\n"
    )
    # No table, no column holds the address or the names any more.
    leaks = [
        (table, column, value)
        for table, column, value in text_values(get_engine(app))
        if any(part in value.casefold() for part in ("zebedee", "quarrington"))
    ]
    assert leaks == []
    assert _per_digest(session) == counts_before
    session.rollback()
    assert session.scalar(select(func.count()).select_from(ConsentEvent)) == 0
    orphans = session.scalars(select(Delivery).where(Delivery.subscriber_id.is_(None))).all()
    assert sorted((d.kind, d.status) for d in orphans) == [
        ("confirm", "sent"),
        ("digest", "failed"),
        ("digest", "sent"),
        ("digest", "skipped"),
    ]
    suppression = session.get(Suppression, suppression_hash(EMAIL))
    assert suppression is not None and suppression.reason == "erased"

    # An import cannot bring the person back.
    path = write_csv(
        tmp_path / "again.csv", ("email", "first_name", "last_name"), [(EMAIL.lower(), FIRST, LAST)]
    )
    again = runner.invoke(args=["subscribers", "import", str(path), "--consent-note", "list"])
    assert again.exit_code == 1
    assert "line 2: rejected: the address is on the suppression list (erased)" in again.stderr
    session.rollback()
    assert session.scalar(select(Subscriber).where(Subscriber.email_key == EMAIL.lower())) is None

    # Signing up again through the form, with fresh consent and confirmation, works.
    sign_up_and_confirm(client, sent_mail, EMAIL, FIRST, LAST)
    session.rollback()
    back = session.scalars(select(Subscriber).where(Subscriber.email == EMAIL)).one()
    assert back.status == "active"
    assert [event.kind for event in back.consent_events] == ["given", "confirmed"]
    assert session.get(Suppression, suppression_hash(EMAIL)) is None


def test_erase_asks_first(runner: FlaskCliRunner, session: Session) -> None:
    add_subscriber(session, EMAIL, FIRST, LAST)

    declined = runner.invoke(args=["subscribers", "erase", EMAIL], input="n\n")

    assert declined.exit_code == 1
    assert declined.output.startswith(
        f"Erase {EMAIL} ({FIRST} {LAST}, active) and everything held about them? "
        "This cannot be undone. [y/N]: "
    )
    assert "Aborted!" in declined.output
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 1

    accepted = runner.invoke(args=["subscribers", "erase", EMAIL], input="y\n")

    assert accepted.exit_code == 0, accepted.output
    assert f"Erased {EMAIL}:" in accepted.output
    session.rollback()
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
