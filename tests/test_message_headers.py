"""The headers that tell receivers whose list a message is and where answers and complaints
go: List-Id, Reply-To and Feedback-ID, on messages a real SMTP server received, on both
databases."""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import getaddresses
from pathlib import Path

import pytest
from flask import Flask

from newsletter import ConfigError, create_app
from newsletter.app_db import get_engine
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.sending_support import digest_to_one
from tests.support.articles import draft_digest
from tests.support.console import newsletter
from tests.support.smtp import SMTPServer

REPLY_TO = "Press office <office@example.org>"


def sent_digest(app: Flask, server: SMTPServer) -> EmailMessage:
    return digest_to_one(app, server).message


def sent_confirmation(app: Flask, server: SMTPServer) -> EmailMessage:
    assert post_signup(app.test_client()).status_code == 303
    get_dispatcher(app).drain()
    [received] = server.received
    return received.message


def sent_test(app: Flask, server: SMTPServer) -> EmailMessage:
    digest_id = draft_digest(app)
    result = app.test_cli_runner().invoke(
        args=["digest", "preview", str(digest_id), "--to", "editor@example.net"]
    )
    assert result.exit_code == 0, result.output
    [received] = server.received
    return received.message


SENDS: dict[str, Callable[[Flask, SMTPServer], EmailMessage]] = {
    "digest": sent_digest,
    "confirmation": sent_confirmation,
    "test send": sent_test,
}


@pytest.mark.parametrize("send", list(SENDS))
def test_list_id_is_under_the_senders_domain(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, send: str
) -> None:
    # The web address is news.example.org; the list is the sender's, example.org's.
    app = make_app(MAIL_URL=smtp_server.url)
    message = SENDS[send](app, smtp_server)
    assert message["List-Id"] == "Open Rights Watch <newsletter.example.org>"


def test_an_international_senders_list_id_is_ascii(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    # RFC 2919: the identifier is a dot-atom, the domain's DNS (IDNA) form.
    app = make_app(MAIL_URL=smtp_server.url, SENDER="Bücherei <news@Bücher.example>")
    message = sent_confirmation(app, smtp_server)
    assert message["List-Id"] == "Open Rights Watch <newsletter.xn--bcher-kva.example>"
    # Too long for Gmail's sender identifier as it is: a digest of the ASCII form.
    digest = hashlib.sha256(b"xn--bcher-kva.example").hexdigest()[:12]
    assert message["Feedback-ID"] == f"confirmation:open-rights-watch:{digest}"


@pytest.mark.parametrize("send", list(SENDS))
def test_reply_to_is_the_setting(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, send: str
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, REPLY_TO=REPLY_TO)
    message = SENDS[send](app, smtp_server)
    assert getaddresses(message.get_all("Reply-To")) == [("Press office", "office@example.org")]
    assert message["From"] == "Open Rights Watch <news@example.org>"


@pytest.mark.parametrize("send", list(SENDS))
def test_no_reply_to_without_the_setting(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, send: str
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    assert "Reply-To" not in SENDS[send](app, smtp_server)


def test_a_reply_to_name_cannot_add_a_header(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    # Short enough for one encoded-word: Python's parser puts a space between two of them.
    name = 'Zoë "Ed", =?utf-8?q?=0D=0ABcc:_x@y?='
    quoted = name.replace('"', '\\"')
    app = make_app(MAIL_URL=smtp_server.url, REPLY_TO=f'"{quoted}" <zoe@example.org>')
    message = sent_confirmation(app, smtp_server)
    [reply_to] = message.get_all("Reply-To")
    assert reply_to.addresses[0].display_name == name
    assert reply_to.addresses[0].addr_spec == "zoe@example.org"
    assert "Bcc" not in message


def test_feedback_id_names_the_digest_organisation_and_sender(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    message = sent_digest(app, smtp_server)
    assert message.get_all("Feedback-ID") == ["digest-1:open-rights-watch:example.org"]


def test_confirmations_have_a_feedback_id_of_their_own(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    message = sent_confirmation(app, smtp_server)
    assert message.get_all("Feedback-ID") == ["confirmation:open-rights-watch:example.org"]


def test_a_test_send_carries_its_digests_feedback_id(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    assert sent_test(app, smtp_server)["Feedback-ID"] == "digest-1:open-rights-watch:example.org"


@pytest.mark.parametrize(
    ("organisation", "sender", "expected"),
    [
        # Only letters, digits and hyphens: a colon would start another field.
        (
            "Ärzte: ohne Grenzen e.V.",
            "news@aerzte.example",
            "confirmation:arzte-ohne-grenzen-e-v:aerzte.example",
        ),
        ("新闻", "news@example.org", "confirmation:newsletter:example.org"),
        # Gmail takes a sender identifier of 5 to 15 characters: a longer domain is shortened
        # to a stable digest of itself.
        (
            "Open Rights Watch",
            "News <news@mail.open-rights-watch.example>",
            "confirmation:open-rights-watch:",
        ),
    ],
)
def test_feedback_id_fields_are_safe_and_short(
    make_app: Callable[..., Flask],
    smtp_server: SMTPServer,
    organisation: str,
    sender: str,
    expected: str,
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, ORGANISATION=organisation, SENDER=sender)
    feedback_id = sent_confirmation(app, smtp_server)["Feedback-ID"]
    fields = feedback_id.split(":")
    assert len(fields) == 3
    assert feedback_id.startswith(expected)
    assert 5 <= len(fields[-1]) <= 15
    assert all(fields)


@pytest.mark.parametrize(
    ("value", "explains"),
    [
        ("not an address", "expected an address such as"),
        ("Office <office@>", "expected an address such as"),
        ("office@example.org\r\nBcc: all@example.org", "must be one line"),
        ("a@example.org, b@example.org", "one address"),
    ],
)
def test_a_bad_reply_to_stops_start_up(tmp_path: Path, value: str, explains: str) -> None:
    with pytest.raises(ConfigError) as raised:
        app = create_app({"INSTANCE_PATH": str(tmp_path / "instance"), "REPLY_TO": value})
        get_engine(app).dispose()
    message = str(raised.value)
    assert message.startswith("NEWSLETTER_REPLY_TO: ")
    assert explains in message
    assert "\n" not in message


def test_the_console_script_reports_a_bad_reply_to_in_one_line(tmp_path: Path) -> None:
    result = newsletter(
        "outbox",
        "flush",
        instance=tmp_path / "instance",
        settings={"NEWSLETTER_REPLY_TO": "nobody"},
    )
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith("Error: NEWSLETTER_REPLY_TO: expected an address such as")
    assert result.returncode != 0
