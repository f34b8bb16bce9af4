"""``newsletter digest preview``: HTML to a file, a test message by SMTP, or the text."""

from __future__ import annotations

import re
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path

from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import Delivery, Subscriber
from tests.support.articles import draft_digest
from tests.support.mailbox import body_text
from tests.support.people import add_subscriber
from tests.support.smtp import SMTPServer


def test_preview_prints_the_text_version(app: Flask, runner: FlaskCliRunner) -> None:
    digest_id = draft_digest(app)
    result = runner.invoke(args=["digest", "preview", str(digest_id)])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "Subject: Open Rights Watch: Article number 2 (+1 more)"
    assert "Hello Alex," in lines
    assert "Article number 1" in lines
    assert "https://news.example.org/digests/1" in lines
    assert "1 Example Street, Example City" in result.output
    assert any(line.startswith("https://news.example.org/unsubscribe/") for line in lines)
    assert "<" not in result.output


def test_preview_writes_the_html(app: Flask, runner: FlaskCliRunner, tmp_path: Path) -> None:
    digest_id = draft_digest(app)
    out = tmp_path / "digest.html"
    result = runner.invoke(args=["digest", "preview", str(digest_id), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.output == f"Wrote the HTML version of digest {digest_id} to {out}.\n"
    html = out.read_text(encoding="utf-8")
    assert html.startswith("<!DOCTYPE html>")
    assert "Hello Alex," in html
    assert '<a href="https://example.org/news/2"' in html
    assert "https://news.example.org/unsubscribe/" in html
    assert "slot" not in html  # every per-person marker was filled in


def test_preview_sends_a_test_message(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, session: Session
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    digest_id = draft_digest(app)
    runner = app.test_cli_runner()
    result = runner.invoke(args=["digest", "preview", str(digest_id), "--to", "editor@example.net"])
    assert result.exit_code == 0, result.output
    assert result.output == f"Sent a test message of digest {digest_id} to editor@example.net.\n"
    [received] = smtp_server.received
    assert received.recipients == ["editor@example.net"]
    assert received.sender == "news@example.org"
    message = received.message
    assert message["Subject"] == "[TEST] Open Rights Watch: Article number 2 (+1 more)"
    assert message["To"] == "Alex Sample <editor@example.net>"
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["Message-ID"].endswith("@example.org>")
    assert "Hello Alex," in body_text(message)
    assert "Article number 1" in body_text(message, "html")
    # A second test send is a new message, not a duplicate mail services would drop.
    assert (
        runner.invoke(args=["digest", "preview", "1", "--to", "editor@example.net"]).exit_code == 0
    )
    first, second = smtp_server.received
    assert first.message["Message-ID"] != second.message["Message-ID"]
    # The address is not a subscriber and nothing about the digest's sending changed.
    assert session.scalar(select(func.count()).select_from(Subscriber)) == 0
    assert session.scalar(select(func.count()).select_from(Delivery)) == 0


def shape(message: EmailMessage) -> list[tuple[str, list[tuple[str, str]]]]:
    """Each MIME part in order: its type and, below the top, its own headers as written."""
    return [
        (part.get_content_type(), [] if part is message else list(part.items()))
        for part in message.walk()
    ]


PREFERENCES_LINK = re.compile(r"https://news\.example\.org/preferences/[^\s\"<>]+")


def bodies(message: EmailMessage) -> list[str]:
    """Each text part decoded, with the person's unsubscribe and preferences links (their
    per-person values besides the name) replaced by placeholders."""
    link = message["List-Unsubscribe"].strip("<>")
    return [
        PREFERENCES_LINK.sub("PREFERENCES", str(part.get_content()).replace(link, "UNSUBSCRIBE"))
        for part in message.walk()
        if part.get_content_maintype() == "text"
    ]


def test_a_preview_sent_with_to_has_the_shape_of_a_real_delivery(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, session: Session
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    digest_id = draft_digest(app)
    # A subscriber with the sample reader's name: their message differs from the preview only
    # in the headers and the unsubscribe link.
    add_subscriber(session, "alex@example.org", first_name="Alex", last_name="Sample")
    runner = app.test_cli_runner()
    preview = runner.invoke(args=["digest", "preview", str(digest_id), "--to", "alex@example.org"])
    assert preview.exit_code == 0, preview.output
    send = runner.invoke(args=["digest", "send", str(digest_id)])
    assert send.exit_code == 0, send.output

    tested, delivered = (received.message for received in smtp_server.received)
    assert tested["Subject"] == "[TEST] " + delivered["Subject"]
    assert tested.keys() == delivered.keys()
    assert shape(tested) == shape(delivered)
    assert shape(delivered)[0] == ("multipart/alternative", [])
    assert bodies(tested) == bodies(delivered)
    assert "Hello Alex," in bodies(delivered)[0]


def test_preview_to_and_out_together(
    app: Flask,
    runner: FlaskCliRunner,
    tmp_path: Path,
    sent_mail: Callable[[], list[EmailMessage]],
) -> None:
    digest_id = draft_digest(app)
    out = tmp_path / "d.html"
    result = runner.invoke(
        args=["digest", "preview", str(digest_id), "--to", "me@example.net", "--out", str(out)]
    )
    assert result.exit_code == 0, result.output
    assert out.exists()
    [message] = sent_mail()
    assert message["Subject"].startswith("[TEST] ")


def test_preview_problems_print_one_line(
    make_app: Callable[..., Flask], smtp_server: SMTPServer, tmp_path: Path
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    digest_id = draft_digest(app)
    runner = app.test_cli_runner()
    cases = [
        (["digest", "preview", "42"], "Error: no digest with id 42; `newsletter digest create`"),
        (
            ["digest", "preview", str(digest_id), "--to", "not an address"],
            "Error: --to: An email address must have an @-sign.",
        ),
        (
            ["digest", "preview", str(digest_id), "--out", str(tmp_path / "no" / "dir.html")],
            f"Error: cannot write {tmp_path / 'no' / 'dir.html'}",
        ),
    ]
    smtp_server.stop()
    cases.append(
        (
            ["digest", "preview", str(digest_id), "--to", "me@example.net"],
            "Error: the test message was not sent: cannot connect to 127.0.0.1",
        )
    )
    for args, start in cases:
        result = runner.invoke(args=args)
        assert result.exit_code == 1, result.output
        lines = result.output.splitlines()
        assert len(lines) == 1, result.output
        assert lines[0].startswith(start)


def test_preview_warns_without_a_postal_address(make_app: Callable[..., Flask]) -> None:
    app = make_app(POSTAL_ADDRESS="")
    digest_id = draft_digest(app)
    result = app.test_cli_runner().invoke(args=["digest", "preview", str(digest_id)])
    assert result.exit_code == 0
    assert "Warning: NEWSLETTER_POSTAL_ADDRESS is empty" in result.stderr
