"""Reading mail without a mail program: ``newsletter outbox show`` and the ``console://``
transport print each message decoded, its links whole."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

from newsletter.app_db import session_factory
from newsletter.runtime import get_runtime
from newsletter.services.digests import create_digest
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import post_signup
from tests.support.articles import add_articles
from tests.support.mailbox import find_link, read_maildir

ORGANISATION = "Droits & Libertés"
# What a .eml file holds where a long line was cut for quoted-printable.
SOFT_LINE_BREAK = re.compile(r"=\r?\n")


def signed_up(app: Flask, outbox_path: Path, *emails: str) -> list[EmailMessage]:
    client = app.test_client()
    for email in emails:
        assert post_signup(client, email=email, first_name="Zoë").status_code == 303
        get_dispatcher(app).drain()
    messages = read_maildir(outbox_path)
    assert len(messages) == len(emails)
    return messages


def test_show_prints_the_newest_message_decoded(
    make_app: Callable[..., Flask], outbox_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    app = make_app(ORGANISATION=ORGANISATION)
    [message] = signed_up(app, outbox_path, "ada@example.org")
    raw = next((outbox_path / "new").iterdir()).read_text()
    link = find_link(message, "/confirm/")
    # The reason for the command: in the file itself, quoted-printable cuts the link in two.
    assert link not in raw and SOFT_LINE_BREAK.search(raw)

    monkeypatch.chdir(outbox_path.parent)
    result = app.test_cli_runner().invoke(args=["outbox", "show"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    # The file, from the current folder: what to type to open it.
    assert lines[0].startswith("--- outbox/new/") and lines[0].endswith(".eml (1 of 1) ---")
    assert "To: ada@example.org" in lines
    assert "From: Open Rights Watch <news@example.org>" in lines
    assert any(line.startswith("Subject: ") and ORGANISATION in line for line in lines)
    assert any(link in line for line in lines), "the confirmation link is not whole"
    assert any(ORGANISATION in line for line in lines if not line.startswith("Subject: "))
    assert "=3D" not in result.output and "=?utf-8?" not in result.output.lower()
    assert lines[-1] == "[also in this message: text/html]"


def test_show_last_prints_the_newest_oldest_first(app: Flask, outbox_path: Path) -> None:
    signed_up(app, outbox_path, "one@example.org", "two@example.org", "three@example.org")
    runner = app.test_cli_runner()

    newest = runner.invoke(args=["outbox", "show"]).output
    assert "To: three@example.org" in newest
    assert "one@example.org" not in newest and "two@example.org" not in newest

    two = runner.invoke(args=["outbox", "show", "--last", "2"]).output
    recipients = [line for line in two.splitlines() if line.startswith("To: ")]
    assert recipients == [
        "To: two@example.org",
        "To: three@example.org",
    ]
    assert [line for line in two.splitlines() if line.startswith("--- ")][1].endswith(
        "(2 of 2) ---"
    )


def test_show_on_an_empty_outbox(runner: FlaskCliRunner, outbox_path: Path) -> None:
    result = runner.invoke(args=["outbox", "show"])
    assert result.exit_code == 0
    assert result.output == f"No messages in the outbox {outbox_path}.\n"


@pytest.mark.parametrize("mail_url", ["smtp://news:hunter2@mail.example.org:25", "console://"])
def test_show_needs_a_maildir(make_app: Callable[..., Flask], mail_url: str) -> None:
    app = make_app(MAIL_URL=mail_url)
    result = app.test_cli_runner().invoke(args=["outbox", "show"])
    assert result.exit_code == 1
    scheme = mail_url.partition(":")[0]
    assert result.output.splitlines() == [
        f"Error: NEWSLETTER_MAIL_URL is a {scheme}:// address, not maildir://: mail goes "
        "straight out, and there is no outbox folder to show"
    ]


def test_console_transport_prints_the_message_decoded(make_app: Callable[..., Flask]) -> None:
    app = make_app(MAIL_URL="console://", ORGANISATION=ORGANISATION)
    with session_factory(app)() as session:
        add_articles(session, [1, 2], title="Über die Grenze: a very long title " * 3)
        digest = create_digest(session, get_runtime(app).site)
        session.commit()
    result = app.test_cli_runner().invoke(
        args=["digest", "preview", str(digest.id), "--to", "zoe@example.org"]
    )
    assert result.exit_code == 0, result.output
    output = result.output
    assert "--- message from news@example.org to zoe@example.org ---" in output
    assert f"Subject: [TEST] {ORGANISATION}: Über die Grenze" in output
    assert "Über die Grenze: a very long title" in output
    assert re.search(r"^https://news\.example\.org/unsubscribe/\S+$", output, re.MULTILINE)
    assert "=3D" not in output and "=C3=" not in output and not SOFT_LINE_BREAK.search(output)
    assert "--- end of message ---" in output


def test_show_reads_mail_it_did_not_write(runner: FlaskCliRunner, outbox_path: Path) -> None:
    (outbox_path / "new").mkdir(parents=True)
    odd_charset = (
        b"From: a@example.org\r\nTo: b@example.org\r\nSubject: odd\r\n"
        b'Content-Type: text/plain; charset="x-unknown"\r\n\r\nhello there\r\n'
    )
    (outbox_path / "new" / "1.odd.eml").write_bytes(odd_charset)
    (outbox_path / "new" / "2.garbage.eml").write_bytes(b"no headers at all \xff\r\n")
    result = runner.invoke(args=["outbox", "show", "--last", "2"])
    assert result.exit_code == 0, result.output
    assert "Subject: odd" in result.output
    assert "hello there" in result.output
    assert result.output.endswith("2.garbage.eml (2 of 2) ---\n\n(no plain-text part)\n")
