"""What a bounce or complaint report does (SQLite and PostgreSQL): hard bounces suppress,
soft bounces count to the limit, complaints unsubscribe with a record; each report is kept
once; ``bounces list`` and ``subscribers show`` show them; VERP return paths name the
delivery a report comes back about."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timedelta

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter import ConfigError
from newsletter.app_db import session_factory
from newsletter.db import utcnow
from newsletter.mail.bounce_reports import Report
from newsletter.models import (
    BounceKind,
    BounceReport,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.runtime import get_runtime
from newsletter.services.bounces import Outcome, record_report
from newsletter.services.privacy import suppression_reason
from newsletter.verp import Verp
from tests.conftest import post_signup
from tests.sending_support import add_subscribers, queued_digest, sender
from tests.support.articles import draft_digest
from tests.support.people import add_subscriber, write_csv
from tests.support.smtp import SMTPServer

BOUNCES = "bounces@news.example.org"


def sent_delivery(
    session: Session, subscriber: Subscriber, sent_at: datetime, message_id: str | None = None
) -> Delivery:
    delivery = Delivery(
        kind=DeliveryKind.CONFIRM,
        subscriber_id=subscriber.id,
        status=DeliveryStatus.SENT,
        sent_at=sent_at,
        message_id=message_id,
    )
    session.add(delivery)
    session.commit()
    return delivery


def report(
    kind: BounceKind,
    report_id: str,
    delivery: Delivery | None = None,
    email: str | None = None,
    reason: str = "550 5.1.1 user unknown",
) -> Report:
    return Report(
        kind=kind,
        report_id=report_id,
        reason=reason,
        email=email,
        delivery_id=delivery.id if delivery is not None else None,
    )


def apply(session: Session, item: Report, at: datetime | None = None, limit: int = 3) -> Outcome:
    outcome = record_report(session, item, "mailbox", limit, at=at)
    session.commit()
    return outcome


def test_a_hard_bounce_suppresses_and_is_recorded_on_the_delivery(
    app: Flask, session: Session, runner: FlaskCliRunner, tmp_path: pytest.TempPathFactory
) -> None:
    ada = add_subscriber(session, "ada@example.org")
    delivery = sent_delivery(session, ada, utcnow())

    assert apply(session, report(BounceKind.HARD, "<r1@mta>", delivery)) is Outcome.APPLIED

    session.refresh(ada)
    session.refresh(delivery)
    assert ada.status == SubscriberStatus.BOUNCED
    assert suppression_reason(session, "ADA@example.org") == "bounced"
    assert delivery.last_error == "bounced: 550 5.1.1 user unknown"
    stored = session.scalars(select(BounceReport)).one()
    assert (stored.subscriber_id, stored.delivery_id, stored.kind, stored.report_id) == (
        ada.id,
        delivery.id,
        "hard",
        "<r1@mta>",
    )
    # An import never brings the address back.
    csv_file = write_csv(
        tmp_path / "people.csv",  # type: ignore[operator]
        ["email", "first_name", "last_name"],
        [["ada@example.org", "Ada", "Lovelace"]],
    )
    result = runner.invoke(
        args=["subscribers", "import", str(csv_file), "--consent-note", "paper form"]
    )
    assert result.exit_code == 0, result.output
    session.expire_all()
    assert session.get_one(Subscriber, ada.id).status == SubscriberStatus.BOUNCED


def test_a_report_read_twice_acts_once_and_an_unknown_address_is_ignored(
    app: Flask, session: Session
) -> None:
    ada = add_subscriber(session, "ada@example.org")
    item = report(BounceKind.COMPLAINT, "<same@fbl>", email="Ada@Example.org")

    assert apply(session, item) is Outcome.APPLIED
    assert apply(session, item) is Outcome.REPEAT
    assert apply(session, report(BounceKind.HARD, "<x@mta>", email="nobody@example.org")) is (
        Outcome.UNKNOWN
    )

    assert session.scalar(select(func.count()).select_from(BounceReport)) == 1
    complaints = session.scalars(
        select(ConsentEvent).where(
            ConsentEvent.subscriber_id == ada.id, ConsentEvent.kind == ConsentKind.COMPLAINT
        )
    ).all()
    assert len(complaints) == 1


def test_a_complaint_unsubscribes_suppresses_and_records_a_withdrawal(
    app: Flask, session: Session
) -> None:
    ada = add_subscriber(session, "ada@example.org")
    queued = Delivery(kind=DeliveryKind.DIGEST, subscriber_id=ada.id)
    session.add(queued)
    session.commit()

    item = report(BounceKind.COMPLAINT, "<c1@fbl>", email="ada@example.org", reason="abuse")
    assert apply(session, item) is Outcome.APPLIED

    session.refresh(ada)
    session.refresh(queued)
    assert ada.status == SubscriberStatus.UNSUBSCRIBED
    assert ada.unsubscribed_at is not None
    assert suppression_reason(session, "ada@example.org") == "complaint"
    assert queued.status == DeliveryStatus.SKIPPED
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.subscriber_id == ada.id)).one()
    assert (event.kind, event.method, event.note) == (
        "complaint",
        "complaint report (mailbox)",
        "abuse",
    )


def test_soft_bounces_count_once_a_day_up_to_the_limit(app: Flask, session: Session) -> None:
    ada = add_subscriber(session, "ada@example.org")
    start = utcnow() - timedelta(days=10)
    first = sent_delivery(session, ada, start)
    # Three reports on the first day count once.
    for n in range(3):
        at = start + timedelta(hours=1 + n)
        assert apply(session, report(BounceKind.SOFT, f"<d1.{n}@mta>", first), at=at) is (
            Outcome.APPLIED
        )
    second = sent_delivery(session, ada, start + timedelta(days=2))
    apply(
        session, report(BounceKind.SOFT, "<d2@mta>", second), at=start + timedelta(days=2, hours=1)
    )
    session.refresh(ada)
    assert ada.status == SubscriberStatus.ACTIVE  # two days counted of three

    third = sent_delivery(session, ada, start + timedelta(days=4))
    apply(
        session, report(BounceKind.SOFT, "<d3@mta>", third), at=start + timedelta(days=4, hours=1)
    )
    session.refresh(ada)
    assert ada.status == SubscriberStatus.BOUNCED
    # Not suppressed: a full mailbox may empty, and the person may sign up again.
    assert suppression_reason(session, "ada@example.org") is None


def test_a_delivery_that_did_not_bounce_resets_the_soft_count(app: Flask, session: Session) -> None:
    ada = add_subscriber(session, "ada@example.org")
    start = utcnow() - timedelta(days=20)
    for day in (0, 1):
        delivery = sent_delivery(session, ada, start + timedelta(days=day))
        at = start + timedelta(days=day, hours=1)
        apply(session, report(BounceKind.SOFT, f"<a{day}@mta>", delivery), at=at)
    # This one went through: nothing came back about it.
    sent_delivery(session, ada, start + timedelta(days=3))
    for day in (5, 6):
        delivery = sent_delivery(session, ada, start + timedelta(days=day))
        at = start + timedelta(days=day, hours=1)
        apply(session, report(BounceKind.SOFT, f"<b{day}@mta>", delivery), at=at)
    session.refresh(ada)
    assert ada.status == SubscriberStatus.ACTIVE  # 2 since the reset, not 4

    delivery = sent_delivery(session, ada, start + timedelta(days=7))
    apply(
        session, report(BounceKind.SOFT, "<c@mta>", delivery), at=start + timedelta(days=7, hours=1)
    )
    session.refresh(ada)
    assert ada.status == SubscriberStatus.BOUNCED


def test_soft_bounces_older_than_30_days_do_not_count(
    make_app: Callable[..., Flask], session: Session
) -> None:
    make_app(SOFT_BOUNCE_LIMIT=2)
    ada = add_subscriber(session, "ada@example.org")
    old = utcnow() - timedelta(days=40)
    delivery = sent_delivery(session, ada, old)
    apply(session, report(BounceKind.SOFT, "<old@mta>", delivery), at=old, limit=2)
    delivery = sent_delivery(session, ada, utcnow() - timedelta(hours=2))
    apply(session, report(BounceKind.SOFT, "<new@mta>", delivery), limit=2)
    session.refresh(ada)
    assert ada.status == SubscriberStatus.ACTIVE


def test_a_report_quoting_our_message_id_finds_the_delivery(app: Flask, session: Session) -> None:
    ada = add_subscriber(session, "ada@example.org")
    delivery = sent_delivery(session, ada, utcnow(), message_id="<digest.1.abc@example.org>")
    item = Report(
        BounceKind.HARD, "<q@mta>", "gone", email=None, message_id="<digest.1.abc@example.org>"
    )
    assert apply(session, item) is Outcome.APPLIED
    assert session.scalars(select(BounceReport.delivery_id)).one() == delivery.id


def test_bounces_list_and_subscribers_show(
    app: Flask, session: Session, runner: FlaskCliRunner
) -> None:
    ada = add_subscriber(session, "ada@example.org")
    bob = add_subscriber(session, "bob@example.org", "Bob", "Smith")
    delivery = sent_delivery(session, ada, utcnow())
    apply(
        session,
        report(BounceKind.SOFT, "<s@mta>", delivery, reason="mailbox full"),
        at=utcnow() - timedelta(days=3),
    )
    apply(session, report(BounceKind.HARD, "<h@mta>", email=bob.email, reason="no such user"))

    listed = runner.invoke(args=["bounces", "list"])
    assert listed.exit_code == 0, listed.output
    lines = listed.output.splitlines()
    assert lines[0].split() == ["at", "kind", "email", "source", "delivery", "reason"]
    assert "soft" in lines[1] and "ada@example.org" in lines[1] and "mailbox full" in lines[1]
    assert "hard" in lines[2] and "bob@example.org" in lines[2] and "no such user" in lines[2]

    since = (utcnow() - timedelta(days=1)).strftime("%Y-%m-%d")
    recent = runner.invoke(args=["bounces", "list", "--since", since])
    assert recent.exit_code == 0
    assert "bob@example.org" in recent.output and "ada@example.org" not in recent.output

    bad = runner.invoke(args=["bounces", "list", "--since", "last week"])
    assert bad.exit_code == 2 and "Traceback" not in bad.output

    shown = runner.invoke(args=["subscribers", "show", "ada@example.org"])
    record = json.loads(shown.output)
    assert [
        (r["kind"], r["source"], r["reason"], r["report_id"], r["delivery"])
        for r in record["bounce_reports"]
    ] == [("soft", "mailbox", "mailbox full", "<s@mta>", delivery.id)]

    erased = runner.invoke(args=["subscribers", "erase", "ada@example.org", "--yes"])
    assert erased.exit_code == 0, erased.output
    session.expire_all()
    assert session.scalars(select(BounceReport.report_id)).all() == ["<h@mta>"]


def test_no_reports_yet(app: Flask, runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["bounces", "list"])
    assert (result.exit_code, result.output) == (0, "No bounce or complaint reports.\n")


# -- VERP -------------------------------------------------------------------------------------


def test_verp_addresses_name_their_delivery_and_cannot_be_forged() -> None:
    verp = Verp(BOUNCES, "current-key", ["old-key"])
    address_42 = verp.address(42)
    local = address_42.partition("@")[0]
    assert address_42.startswith("bounces+42.") and address_42.endswith("@news.example.org")
    assert len(local) <= 64
    assert verp.delivery_of(address_42) == 42
    assert verp.delivery_of(address_42.upper()) == 42  # some servers change the case
    assert verp.delivery_of(f"<{address_42}>") == 42
    assert verp.delivery_of(address_42.replace("+42.", "+43.")) is None
    assert verp.delivery_of(address_42.replace("@news.", "@other.")) is None
    assert verp.delivery_of("bounces@news.example.org") is None
    assert verp.delivery_of("bounces+x.y@news.example.org") is None
    # Signed before a key rotation, still read after it.
    assert verp.delivery_of(Verp(BOUNCES, "old-key").address(7)) == 7
    assert Verp(BOUNCES, "another").delivery_of(address_42) is None


def test_each_digest_message_leaves_with_its_deliverys_return_path(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, BOUNCE_ADDRESS=BOUNCES)
    with session_factory(app).begin() as session:
        add_subscribers(session, 3)
    digest_id = draft_digest(app)
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output

    verp = get_runtime(app).site.verp
    assert verp is not None
    with session_factory(app)() as session:
        ids = {
            email: delivery_id
            for email, delivery_id in session.execute(
                select(Subscriber.email, Delivery.id).join(
                    Delivery, Delivery.subscriber_id == Subscriber.id
                )
            )
        }
    assert len(smtp_server.received) == 3
    for received in smtp_server.received:
        assert verp.delivery_of(received.sender) == ids[received.recipients[0]]
        # The From header stays the organisation's.
        assert received.message["From"] == "Open Rights Watch <news@example.org>"


def test_without_a_bounce_address_the_sender_is_the_return_path(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    digest_id = queued_digest(app, 1)
    sender(app, digest_id).run()
    assert [r.sender for r in smtp_server.received] == ["news@example.org"]


def test_confirmation_emails_carry_a_return_path_too(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, BOUNCE_ADDRESS=BOUNCES)
    assert post_signup(app.test_client()).status_code == 303
    from newsletter.web.dispatch import get_dispatcher

    get_dispatcher(app).drain()
    verp = get_runtime(app).site.verp
    assert verp is not None
    [received] = smtp_server.received
    assert verp.delivery_of(received.sender) is not None


@pytest.mark.parametrize(
    ("settings", "named"),
    [
        ({"BOUNCE_ADDRESS": "bounces+x@news.example.org"}, "NEWSLETTER_BOUNCE_ADDRESS"),
        ({"BOUNCE_ADDRESS": "bounces"}, "NEWSLETTER_BOUNCE_ADDRESS"),
        # Each would be every message's envelope sender, and every message would fail.
        ({"BOUNCE_ADDRESS": "<bounces@news.example.org>"}, "NEWSLETTER_BOUNCE_ADDRESS"),
        ({"BOUNCE_ADDRESS": "a@bounces@news.example.org"}, "NEWSLETTER_BOUNCE_ADDRESS"),
        ({"BOUNCE_ADDRESS": 'bo"un"ces@news.example.org'}, "NEWSLETTER_BOUNCE_ADDRESS"),
        ({"BOUNCE_MAILBOX": "pop3://u:p@host"}, "NEWSLETTER_BOUNCE_MAILBOX"),
        ({"BOUNCE_MAILBOX": "imaps://host/INBOX"}, "NEWSLETTER_BOUNCE_MAILBOX"),
        ({"SOFT_BOUNCE_LIMIT": "0"}, "NEWSLETTER_SOFT_BOUNCE_LIMIT"),
        ({"SENDGRID_PUBLIC_KEY": "not a key"}, "NEWSLETTER_SENDGRID_PUBLIC_KEY"),
        ({"POSTMARK_WEBHOOK_CREDENTIALS": "nocolon"}, "NEWSLETTER_POSTMARK_WEBHOOK_CREDENTIALS"),
    ],
)
def test_bad_bounce_settings_stop_start_up_with_one_line(
    make_app: Callable[..., Flask], settings: dict[str, str], named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        make_app(**settings)
    assert str(raised.value).startswith(f"{named}: ")
    assert "\n" not in str(raised.value)
