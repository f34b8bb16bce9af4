"""The fast per-recipient assembly yields the same message as the email package builds."""

from __future__ import annotations

import email
from email.headerregistry import Address
from email.message import EmailMessage
from email.policy import SMTP, default

import pytest
from flask import Flask

from newsletter.app_db import session_factory
from newsletter.links import list_headers, unsubscribe_url
from newsletter.mail.digest import PreparedDigest, prepare_digest
from newsletter.mail.transports import message_bytes
from newsletter.models import Digest
from newsletter.people import Person
from newsletter.runtime import get_runtime
from newsletter.site import Site
from tests.sending_support import add_articles_and_digest


def parse(data: bytes) -> EmailMessage:
    message = email.message_from_bytes(data, policy=default)
    assert isinstance(message, EmailMessage)
    return message


def reference_message(
    site: Site, prepared: PreparedDigest, person: Person, message_id: str
) -> EmailMessage:
    """The same message built the ordinary way with Python's email package: the oracle the
    service's own assembly is held to."""
    message = EmailMessage(policy=SMTP)
    message["Subject"] = prepared.subject
    message["From"] = site.sender
    message["To"] = Address(f"{person.first_name} {person.last_name}", addr_spec=person.email)
    message["Message-ID"] = message_id
    for name, value in list_headers(site, unsubscribe_url(site, person)).items():
        message[name] = value
    text = prepared.text_for(person)
    message.set_content(text, subtype="plain", charset="utf-8", cte="quoted-printable")
    html = prepared.html_for(person)
    message.add_alternative(html, subtype="html", charset="utf-8", cte="quoted-printable")
    return message


def body(message: EmailMessage, subtype: str) -> str:
    part = message.get_body(preferencelist=(subtype,))
    assert part is not None
    content = part.get_content()
    assert isinstance(content, str)
    return content


@pytest.mark.parametrize(
    ("first", "last"),
    [("Ada", "Lovelace"), ("Zoë", "Ünal-Øster"), ('Jo "JJ", Jr.', "O'Brien"), ("李", "小龍")],
)
@pytest.mark.usefixtures("frozen_token_clock")
def test_fast_assembly_matches_the_email_package(app: Flask, first: str, last: str) -> None:
    runtime = get_runtime(app)
    with session_factory(app).begin() as session:
        digest_id = add_articles_and_digest(session)
    with session_factory(app)() as session:
        prepared = prepare_digest(
            session, runtime.site, runtime.renderer, session.get_one(Digest, digest_id)
        )
    recipient = Person(7, "nonce", "zoe@example.org", first, last)
    fast = prepared.outgoing_for(recipient, "<digest.1.7@example.org>")
    reference = reference_message(runtime.site, prepared, recipient, "<digest.1.7@example.org>")
    slow = parse(message_bytes(reference))
    parsed = parse(fast.data)
    assert fast.message_id == "<digest.1.7@example.org>"
    assert not parsed.defects
    for header in (
        "Subject",
        "From",
        "To",
        "Message-ID",
        "List-Unsubscribe",
        "List-Unsubscribe-Post",
        "List-Id",
        "MIME-Version",
    ):
        assert str(parsed[header]) == str(slow[header]), header
    assert parsed.get_content_type() == "multipart/alternative"
    assert parsed["To"].addresses[0].display_name == f"{first} {last}"
    assert body(parsed, "html").rstrip() == body(slow, "html").rstrip()
    assert body(parsed, "plain").split() == body(slow, "plain").split()
    assert all(len(line) <= 998 for line in fast.data.split(b"\r\n"))
    assert b"\n" not in fast.data.replace(b"\r\n", b"")
