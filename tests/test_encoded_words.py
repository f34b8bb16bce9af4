"""Text shaped like an RFC 2047 encoded-word (a name, a subject) is never decoded into a
header: what reaches the SMTP server carries it encoded, and every reader gets the literal
text back, never a line break or a Bcc header (each test on SQLite and PostgreSQL)."""

from __future__ import annotations

import email
from collections.abc import Callable
from email import policy
from email.header import decode_header, make_header
from email.message import EmailMessage, Message

from flask import Flask
from sqlalchemy import update

from newsletter.addresses import email_key
from newsletter.app_db import session_factory
from newsletter.db import utcnow
from newsletter.models import FORM_SIGNUP, Digest, Subscriber
from newsletter.runtime import get_runtime
from newsletter.services.consent import Evidence
from newsletter.services.subscriptions import SignupDetails, sign_up
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.sending_support import add_articles_and_digest
from tests.support.smtp import Received, SMTPServer

SMUGGLED = "=?utf-8?q?a=0D=0ABcc:x?="
SUBJECT = "News =?utf-8?q?b=0D=0ABcc:y@example.net?= this week"


def digest_with_subject(app: Flask, subject: str) -> int:
    with session_factory(app).begin() as session:
        digest_id = add_articles_and_digest(session)
        session.execute(update(Digest).where(Digest.id == digest_id).values(subject=subject))
        return digest_id


def header_lines(received: Received) -> list[bytes]:
    head = received.data.split(b"\r\n\r\n", 1)[0]
    # Any CR or LF not part of a CRLF would start a line of its own in some reader.
    assert b"\r" not in head.replace(b"\r\n", b"") and b"\n" not in head.replace(b"\r\n", b"")
    return head.split(b"\r\n")


def readers(received: Received) -> tuple[EmailMessage, Message]:
    """The message as the ``email`` package's modern and legacy parsers read it."""
    modern = email.message_from_bytes(received.data, policy=policy.default)
    assert isinstance(modern, EmailMessage)
    return modern, email.message_from_bytes(received.data, policy=policy.compat32)


def decoded(value: object) -> str:
    return str(make_header(decode_header(str(value))))


def assert_no_smuggled_header(received: Received) -> None:
    names = [line.split(b":", 1)[0].lower() for line in header_lines(received) if line[:1] != b" "]
    assert b"bcc" not in names
    assert names.count(b"to") == 1 and names.count(b"subject") == 1
    for reader in readers(received):
        assert reader["Bcc"] is None
        assert len(reader.get_all("To") or []) == 1


def test_digest_headers_carry_encoded_word_text_literally(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    with session_factory(app).begin() as session:
        session.add(
            Subscriber(
                email="ada@example.org",
                email_key=email_key("ada@example.org"),
                first_name=SMUGGLED,
                last_name="Lovelace",
                status="active",
                created_at=utcnow(),
            )
        )
    digest_id = digest_with_subject(app, SUBJECT)
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    [received] = smtp_server.received
    assert received.recipients == ["ada@example.org"]
    assert_no_smuggled_header(received)
    modern, legacy = readers(received)
    # The digest's To still names the person: the text as they typed it.
    assert modern["To"].addresses[0].display_name == f"{SMUGGLED} Lovelace"
    assert modern["To"].addresses[0].addr_spec == "ada@example.org"
    assert modern["Subject"] == SUBJECT
    assert decoded(legacy["Subject"]) == SUBJECT
    assert SMUGGLED in decoded(legacy["To"])


def test_test_message_subject_carries_encoded_word_text_literally(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    digest_id = digest_with_subject(app, SUBJECT)
    result = app.test_cli_runner().invoke(
        args=["digest", "preview", str(digest_id), "--to", "editor@example.net"]
    )
    assert result.exit_code == 0, result.output
    [received] = smtp_server.received
    assert_no_smuggled_header(received)
    modern, legacy = readers(received)
    assert modern["Subject"] == f"[TEST] {SUBJECT}"
    assert decoded(legacy["Subject"]) == f"[TEST] {SUBJECT}"


def test_a_name_typed_as_an_encoded_word_is_refused_by_the_form(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    response = post_signup(app.test_client(), first_name=SMUGGLED, last_name=SMUGGLED)
    assert response.status_code == 400
    get_dispatcher(app).drain()
    assert smtp_server.received == []


def test_confirmation_email_never_decodes_a_stored_encoded_word(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    # A name stored before the form refused such text still never reaches a header.
    app = make_app(MAIL_URL=smtp_server.url)
    with app.app_context(), session_factory(app).begin() as session:
        outcome = sign_up(
            session,
            get_runtime(app).site,
            SignupDetails(email="ada@example.org", first_name=SMUGGLED, last_name=SMUGGLED),
            Evidence(method=FORM_SIGNUP),
        )
        assert outcome.confirmation_id is not None
    result = app.test_cli_runner().invoke(args=["outbox", "flush"])
    assert result.exit_code == 0, result.output
    [received] = smtp_server.received
    assert_no_smuggled_header(received)
    modern, _ = readers(received)
    assert modern["To"].addresses[0].addr_spec == "ada@example.org"
    assert "\r" not in str(modern["To"]) and "\n" not in str(modern["To"])
    assert b"=?utf-8?q?a" not in received.data
