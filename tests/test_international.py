"""International addresses (RFC 6531/6532) from the form, the import and staff, sent through
a real SMTP server with and without SMTPUTF8, on both databases.

An IDN domain goes out in its ASCII (punycode) form; a non-ASCII local part needs SMTPUTF8,
and without it that one delivery fails with the reason while the rest go out. A message that
cannot be built fails alone: it never stops a run or leaves a delivery ``sending``.
"""

from __future__ import annotations

import email
from collections.abc import Callable, Iterator
from email.message import EmailMessage
from email.policy import default

import pytest
from flask import Flask
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from newsletter.addresses import email_key
from newsletter.app_db import session_factory
from newsletter.db import utcnow
from newsletter.models import Delivery, DeliveryKind, DeliveryStatus, Subscriber
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.sending_support import add_articles_and_digest
from tests.support.smtp import Received, SMTPServer

JUERGEN = "jürgen@bücher.de"
JUERGEN_WIRE = "jürgen@xn--bcher-kva.de"
CHINESE = "用户@例子.广告"
CHINESE_WIRE = "用户@xn--fsqu00a.xn--4rr70v"
BOB = "bob@bücher.de"
BOB_WIRE = "bob@xn--bcher-kva.de"
ADA = "ada@example.org"
NO_SMTPUTF8 = "the mail server does not offer SMTPUTF8"


@pytest.fixture(params=[True, False], ids=["smtputf8", "ascii-only"])
def server(request: pytest.FixtureRequest) -> Iterator[SMTPServer]:
    smtp = SMTPServer(smtputf8=request.param)
    smtp.start()
    yield smtp
    smtp.stop()


def parsed(received: Received) -> EmailMessage:
    """The message as a reader sees it; RFC 6532 headers are UTF-8."""
    message = email.message_from_string(received.data.decode("utf-8"), policy=default)
    assert isinstance(message, EmailMessage)
    return message


def by_recipient(server: SMTPServer) -> dict[str, Received]:
    return {r: item for item in server.received for r in item.recipients}


def add_people(session: Session, *emails: str) -> None:
    now = utcnow()
    for number, address in enumerate(emails):
        session.add(
            Subscriber(
                email=address,
                email_key=email_key(address),
                first_name=f"Person{number}",
                last_name="Example",
                status="active",
                created_at=now,
            )
        )


def digest_for(app: Flask, *emails: str) -> int:
    with session_factory(app).begin() as session:
        add_people(session, *emails)
        return add_articles_and_digest(session)


def outcomes(app: Flask, kind: str = DeliveryKind.DIGEST) -> dict[str, tuple[str, str | None]]:
    with session_factory(app)() as session:
        rows = session.execute(
            select(Subscriber.email, Delivery.status, Delivery.last_error)
            .join(Subscriber, Subscriber.id == Delivery.subscriber_id)
            .where(Delivery.kind == kind)
        ).all()
    return {address: (status, error) for address, status, error in rows}


def test_digest_to_international_addresses(
    make_app: Callable[..., Flask], server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=server.url)
    digest_id = digest_for(app, ADA, JUERGEN, CHINESE, BOB)
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    states = outcomes(app)
    received = by_recipient(server)
    # An IDN domain with an ASCII local part needs no extension: punycode, envelope and header.
    for address, wire in ((ADA, ADA), (BOB, BOB_WIRE)):
        assert states[address] == (DeliveryStatus.SENT, None)
        assert parsed(received[wire])["To"].addresses[0].addr_spec == wire
        assert received[wire].data.isascii()
    assert BOB not in received
    if server.smtputf8:
        for address, wire in ((JUERGEN, JUERGEN_WIRE), (CHINESE, CHINESE_WIRE)):
            assert states[address] == (DeliveryStatus.SENT, None)
            message = parsed(received[wire])
            assert message["To"].addresses[0].addr_spec == wire
            assert message["To"].addresses[0].display_name.startswith("Person")
        assert "sent 4, failed 0, skipped 0, unknown 0, queued 0" in result.output
    else:
        for address in (JUERGEN, CHINESE):
            status, error = states[address]
            assert status == DeliveryStatus.FAILED
            assert error is not None and NO_SMTPUTF8 in error
        assert sorted(received) == [ADA, BOB_WIRE]
        assert "sent 2, failed 2, skipped 0, unknown 0, queued 0" in result.output
        status = app.test_cli_runner().invoke(args=["digest", "status", str(digest_id)])
        assert NO_SMTPUTF8 in status.output
    assert f"Digest {digest_id} is sent." in result.output


def test_preview_to_an_international_address(
    make_app: Callable[..., Flask], server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=server.url)
    with session_factory(app).begin() as session:
        digest_id = add_articles_and_digest(session)
    runner = app.test_cli_runner()
    idn = runner.invoke(args=["digest", "preview", str(digest_id), "--to", BOB])
    assert idn.exit_code == 0, idn.output
    [received] = server.received
    assert received.recipients == [BOB_WIRE]
    assert parsed(received)["To"].addresses[0].addr_spec == BOB_WIRE
    result = runner.invoke(args=["digest", "preview", str(digest_id), "--to", JUERGEN])
    if server.smtputf8:
        assert result.exit_code == 0, result.output
        assert by_recipient(server)[JUERGEN_WIRE]
    else:
        assert result.exit_code == 1
        [line] = result.output.splitlines()
        assert line.startswith("Error: the test message was not sent: ")
        assert NO_SMTPUTF8 in line


def test_confirmation_email_to_an_international_address(
    make_app: Callable[..., Flask], server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=server.url)
    client = app.test_client()
    for address in (JUERGEN, BOB):
        assert post_signup(client, email=address).status_code == 303
    get_dispatcher(app).drain()
    states = outcomes(app, DeliveryKind.CONFIRM)
    assert states[BOB] == (DeliveryStatus.SENT, None)
    received = by_recipient(server)
    assert parsed(received[BOB_WIRE])["To"].addresses[0].addr_spec == BOB_WIRE
    if server.smtputf8:
        assert states[JUERGEN] == (DeliveryStatus.SENT, None)
        assert parsed(received[JUERGEN_WIRE])["To"].addresses[0].addr_spec == JUERGEN_WIRE
    else:
        status, error = states[JUERGEN]
        assert status == DeliveryStatus.FAILED
        assert error is not None and NO_SMTPUTF8 in error
    # Nothing is left half-sent for a later flush to mark unknown with a wrong reason.
    flush = app.test_cli_runner().invoke(args=["outbox", "flush"])
    assert flush.exit_code == 0, flush.output
    assert "unknown 0, still waiting 0" in flush.output
    assert outcomes(app, DeliveryKind.CONFIRM) == states


def test_a_message_that_cannot_be_built_fails_alone(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    # Stored before today's checks (an old import, say): not an address any domain can have.
    broken = "jürgen@bü_cher..de"
    app = make_app(MAIL_URL=smtp_server.url)
    digest_id = digest_for(app, ADA, broken, BOB)
    dry = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id), "--dry-run"])
    assert dry.exit_code == 0, dry.output
    assert "rendered 2 messages" in dry.output
    assert "1 could not be built" in dry.output
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    assert "Traceback" not in result.output
    states = outcomes(app)
    assert states[ADA] == states[BOB] == (DeliveryStatus.SENT, None)
    status, error = states[broken]
    assert status == DeliveryStatus.FAILED
    assert error is not None and error.startswith("could not build the message: ")
    assert sorted(by_recipient(smtp_server)) == [ADA, BOB_WIRE]
    assert f"Digest {digest_id} is sent." in result.output


def test_a_confirmation_that_cannot_be_built_fails_alone(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    client = app.test_client()
    smtp_server.stop()
    for address in (ADA, BOB):
        assert post_signup(client, email=address).status_code == 303
    get_dispatcher(app).drain()
    # Stored before today's checks: not an address any domain can have.
    broken = "jürgen@bü_cher..de"
    with session_factory(app).begin() as session:
        session.execute(update(Subscriber).where(Subscriber.email == ADA).values(email=broken))
    smtp_server.start()
    flush = app.test_cli_runner().invoke(args=["outbox", "flush"])
    assert flush.exit_code == 1, flush.output
    assert "Traceback" not in flush.output
    assert "sent 1, failed 1, skipped 0, unknown 0, still waiting 0" in flush.output
    states = outcomes(app, DeliveryKind.CONFIRM)
    assert states[BOB] == (DeliveryStatus.SENT, None)
    status, error = states[broken]
    assert status == DeliveryStatus.FAILED
    assert error is not None and error.startswith("could not build the message: ")
    assert sorted(by_recipient(smtp_server)) == [BOB_WIRE]
