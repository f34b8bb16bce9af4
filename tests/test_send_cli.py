"""``newsletter digest send`` and ``status`` as staff run them: real processes, real signals,
a real SMTP server, both databases."""

from __future__ import annotations

import itertools
import json
import os
import signal
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner
from sqlalchemy import select

from newsletter.app_db import session_factory
from newsletter.cli.notices import POSTAL_ADDRESS_MISSING
from newsletter.links import unsubscribe_url
from newsletter.models import Delivery, DeliveryStatus, Digest, DigestStatus, Subscriber
from newsletter.people import Person
from newsletter.runtime import get_runtime
from tests.sending_support import (
    NEWSLETTER,
    add_articles_and_digest,
    add_subscribers,
    address,
    environment,
    kill_9_and_resume,
    per_recipient,
    resume_send,
    start_send,
)
from tests.sending_support import states as delivery_states
from tests.support.smtp import MailServer, SMTPServer


@pytest.fixture
def mail_app(make_app: Callable[..., Flask], smtp_server: SMTPServer) -> Flask:
    return make_app(MAIL_URL=smtp_server.url)


def digest_for(app: Flask, subscribers: int) -> int:
    with session_factory(app).begin() as session:
        add_subscribers(session, subscribers)
        return add_articles_and_digest(session)


def wait_for(condition: Callable[[], bool], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.01)


def test_send_delivers_the_digest_and_reports(
    mail_app: Flask, runner: FlaskCliRunner, smtp_server: SMTPServer
) -> None:
    digest_id = digest_for(mail_app, 25)
    result = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0, result.output
    assert f"Queued digest {digest_id} for 25 subscribers" in result.output
    assert "sent 25, failed 0, skipped 0, unknown 0, queued 0 in " in result.output
    assert f"Digest {digest_id} is sent." in result.output
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(25)})
    message = smtp_server.received[0].message
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Unsubscribe"].startswith("<https://news.example.org/unsubscribe/")
    again = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert again.exit_code == 0
    assert "sent 0," in again.output
    assert len(smtp_server.received) == 25
    status = mail_app.test_cli_runner().invoke(args=["digest", "status", str(digest_id), "--json"])
    assert json.loads(status.output) == {
        "queued": 0,
        "sending": 0,
        "sent": 25,
        "failed": 0,
        "skipped": 0,
        "unknown": 0,
    }
    with session_factory(mail_app)() as session:
        assert session.get_one(Digest, digest_id).status == DigestStatus.SENT


def test_people_who_join_after_the_first_run_are_not_part_of_the_digest(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = digest_for(mail_app, 3)
    smtp_server.handler.greeting_reply = lambda: "421 4.3.2 not now"
    first = mail_app.test_cli_runner().invoke(
        args=["digest", "send", str(digest_id), "--max-errors", "2"]
    )
    assert first.exit_code == 2
    assert "421" in first.output
    with session_factory(mail_app).begin() as session:
        session.add(
            Subscriber(
                email="late@example.org",
                email_key="late@example.org",
                first_name="Late",
                last_name="Comer",
                status="active",
            )
        )
    smtp_server.handler.greeting_reply = None
    second = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert second.exit_code == 0, second.output
    assert "Continuing digest" in second.output
    assert sorted(per_recipient(smtp_server)) == [address(0), address(1), address(2)]


def test_status_shows_states_and_last_errors(mail_app: Flask, smtp_server: SMTPServer) -> None:
    digest_id = digest_for(mail_app, 3)
    smtp_server.handler.rcpt_reply = lambda rcpt: (
        "550 5.1.1 no such user" if rcpt == address(1) else None
    )
    mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    status = mail_app.test_cli_runner().invoke(args=["digest", "status", str(digest_id)])
    assert status.exit_code == 0
    assert "sent     2" in status.output
    assert "failed   1" in status.output
    assert "550 5.1.1 no such user" in status.output


def test_dry_run_renders_everything_and_changes_nothing(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = digest_for(mail_app, 12)
    result = mail_app.test_cli_runner().invoke(args=["digest", "send", str(digest_id), "--dry-run"])
    assert result.exit_code == 0, result.output
    assert "dry run: rendered 12 messages" in result.output
    assert smtp_server.received == []
    with session_factory(mail_app)() as session:
        assert session.get_one(Digest, digest_id).status == DigestStatus.DRAFT
        assert session.scalars(select(Delivery)).all() == []


def test_unknown_digest_is_one_line_and_exit_1(mail_app: Flask) -> None:
    result = mail_app.test_cli_runner().invoke(args=["digest", "send", "999"])
    assert result.exit_code == 1
    assert result.output.strip().splitlines() == [
        "Error: no digest with id 999; `newsletter digest create` makes one"
    ]


def test_sending_warns_about_http_base_url_and_missing_postal_address(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, BASE_URL="http://localhost:5000", POSTAL_ADDRESS="")
    digest_id = digest_for(app, 1)
    result = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert result.exit_code == 0
    assert "NEWSLETTER_BASE_URL is http://localhost:5000" in result.output
    assert "NEWSLETTER_POSTAL_ADDRESS is empty" in result.output


def test_preview_and_send_warn_about_the_postal_address_in_the_same_words(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url, POSTAL_ADDRESS="")
    digest_id = str(digest_for(app, 1))
    runner = app.test_cli_runner()
    warnings = []
    for command in (["digest", "preview", digest_id], ["digest", "send", digest_id]):
        result = runner.invoke(args=command)
        assert result.exit_code == 0, result.output
        [warning] = [line for line in result.stderr.splitlines() if "POSTAL_ADDRESS" in line]
        warnings.append(warning)
    assert warnings == [POSTAL_ADDRESS_MISSING, POSTAL_ADDRESS_MISSING]


@pytest.mark.parametrize("kill_after", [1, 600, 1500])
def test_kill_9_then_resume_sends_each_message_once(
    mail_app: Flask, base_config: dict[str, Any], mail_server: MailServer, kill_after: int
) -> None:
    """With PIPELINING, and with CHUNKING too (each message in one write with its envelope)."""
    digest_id = digest_for(mail_app, 2000)
    resumed = kill_9_and_resume(base_config, mail_server, digest_id, kill_after)
    assert resumed.returncode == 0, resumed.stdout + resumed.stderr
    states = delivery_states(mail_app, digest_id)
    unknown = {email for email, state in states.items() if state == DeliveryStatus.UNKNOWN}
    assert len(unknown) <= 4  # at most one message per worker was mid-transaction
    assert set(states.values()) <= {DeliveryStatus.SENT, DeliveryStatus.UNKNOWN}
    received = per_recipient(mail_server)
    assert max(received.values()) == 1, "somebody got the digest twice"
    expected = {address(n) for n in range(2000)}
    assert set(received) | unknown == expected
    sent = {email for email, state in states.items() if state == DeliveryStatus.SENT}
    assert sent <= set(received)


def test_ctrl_c_stops_cleanly_with_130_and_a_rerun_completes(
    mail_app: Flask, base_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    digest_id = digest_for(mail_app, 2000)
    process = start_send(base_config, smtp_server, digest_id)
    wait_for(lambda: len(smtp_server.received) >= 300)
    process.send_signal(signal.SIGINT)
    output, _ = process.communicate(timeout=60)
    assert process.returncode == 130, output
    assert "Stopping" in output
    summary = [line for line in output.splitlines() if line.startswith("sent ")]
    assert summary and "queued" in summary[-1]
    states = delivery_states(mail_app, digest_id)
    assert DeliveryStatus.SENDING not in states.values()
    assert DeliveryStatus.UNKNOWN not in states.values()
    resumed = resume_send(base_config, smtp_server, digest_id)
    assert resumed.returncode == 0
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(2000)})


def test_two_send_processes_share_the_digest(
    mail_app: Flask, base_config: dict[str, Any], smtp_server: SMTPServer, database_url: str
) -> None:
    digest_id = digest_for(mail_app, 2000)
    first = start_send(base_config, smtp_server, digest_id)
    second = start_send(base_config, smtp_server, digest_id)
    outputs = [process.communicate(timeout=300)[0] for process in (first, second)]
    assert [first.returncode, second.returncode] == [0, 0], outputs
    assert per_recipient(smtp_server) == Counter({address(n): 1 for n in range(2000)})
    sent_by = [int(output.split("sent ")[-1].split(",")[0]) for output in outputs]
    assert sum(sent_by) == 2000
    if database_url.startswith("postgresql"):
        # With SKIP LOCKED both processes take part.
        assert min(sent_by) > 0


def send_at_a_terminal(
    base_config: dict[str, Any], server: SMTPServer, digest_id: int, *extra: str
) -> tuple[int, str]:
    """Run ``digest send`` on a pseudo-terminal; its exit status and all it wrote there."""
    import pty

    main, secondary = pty.openpty()
    process = subprocess.Popen(
        [*NEWSLETTER, "digest", "send", str(digest_id), *extra],
        env=environment(base_config, server.url),
        stdout=secondary,
        stderr=secondary,
    )
    os.close(secondary)
    chunks = []
    while True:
        try:
            chunk = os.read(main, 4096)
        except OSError:
            break
        if not chunk:
            break
        chunks.append(chunk)
    os.close(main)
    return process.wait(timeout=60), b"".join(chunks).decode("utf-8", "replace")


def test_progress_bar_on_a_terminal(
    mail_app: Flask, base_config: dict[str, Any], smtp_server: SMTPServer, tmp_path: Path
) -> None:
    digest_id = digest_for(mail_app, 300)
    returncode, screen = send_at_a_terminal(base_config, smtp_server, digest_id, "--rate", "200")
    assert returncode == 0
    assert "Sending" in screen and "msg/s" in screen
    assert "sent 300, failed 0" in screen


def status_counts(app: Flask, digest_id: int) -> dict[str, int]:
    status = app.test_cli_runner().invoke(args=["digest", "status", str(digest_id), "--json"])
    assert status.exit_code == 0, status.output
    counts: dict[str, int] = json.loads(status.output)
    return counts


def summary_line(output: str) -> str:
    [line] = [line for line in output.splitlines() if line.startswith("sent ")]
    return line


def test_a_server_that_stops_answering_stops_the_run_for_a_resume(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=f"smtp://127.0.0.1:{smtp_server.port}?timeout=1")
    digest_id = digest_for(app, 40)
    answers = itertools.count()
    hung = threading.Event()
    hung.set()
    # Three messages go through; then the server holds every answer to DATA past the timeout.
    smtp_server.handler.data_delay = lambda: 3.0 if hung.is_set() and next(answers) >= 3 else 0
    started = time.monotonic()
    result = app.test_cli_runner().invoke(
        args=["digest", "send", str(digest_id), "--workers", "2", "--max-errors", "4"]
    )
    assert time.monotonic() - started < 20
    assert result.exit_code == 2, result.output
    assert "4 times in a row" in result.output
    assert "Run the command again to resume." in result.output
    assert "is sent" not in result.output
    counts = status_counts(app, digest_id)
    assert counts["sent"] == 3
    # The run stops at the fourth; the other worker's message in flight may end unknown too.
    assert 4 <= counts["unknown"] <= 5
    assert counts["sending"] == 0
    assert counts["queued"] == 40 - 3 - counts["unknown"]
    assert summary_line(result.output).startswith(
        f"sent 3, failed 0, skipped 0, unknown {counts['unknown']}, queued {counts['queued']}"
    )
    hung.clear()
    resumed = app.test_cli_runner().invoke(args=["digest", "send", str(digest_id)])
    assert resumed.exit_code == 0, resumed.output
    after = status_counts(app, digest_id)
    assert after == {**counts, "sent": 40 - counts["unknown"], "queued": 0}
    # Finished, but not "sent": the messages the server never answered may not have arrived.
    assert "is sent" not in resumed.output
    assert f"{counts['unknown']} deliveries have an unknown outcome" in resumed.output
    assert "--resend-unknown" in resumed.output


def test_the_summary_counts_people_who_left_mid_send_as_status_does(
    mail_app: Flask, smtp_server: SMTPServer
) -> None:
    digest_id = digest_for(mail_app, 30)
    site = get_runtime(mail_app).site
    with session_factory(mail_app)() as session:
        leavers = session.scalars(
            select(Subscriber).where(Subscriber.email.in_([address(n) for n in range(20, 30)]))
        ).all()
        links = [urlsplit(unsubscribe_url(site, Person.of(person))).path for person in leavers]
    client = mail_app.test_client()

    def ten_leave_at_the_first_message(_recipients: str) -> None:
        while links:
            response = client.post(
                links.pop(),
                data="List-Unsubscribe=One-Click",
                content_type="application/x-www-form-urlencoded",
            )
            assert response.status_code == 200

    smtp_server.handler.data_reply = ten_leave_at_the_first_message
    result = mail_app.test_cli_runner().invoke(
        args=["digest", "send", str(digest_id), "--workers", "1", "--batch", "5"]
    )
    assert result.exit_code == 0, result.output
    counts = status_counts(mail_app, digest_id)
    assert counts["skipped"] == 10 and counts["sent"] == 20
    assert summary_line(result.output).startswith(
        "sent 20, failed 0, skipped 10, unknown 0, queued 0 in "
    )


def test_the_summary_is_printed_once_on_a_terminal(
    mail_app: Flask, base_config: dict[str, Any], smtp_server: SMTPServer
) -> None:
    digest_id = digest_for(mail_app, 5)
    returncode, screen = send_at_a_terminal(base_config, smtp_server, digest_id)
    assert returncode == 0
    assert screen.count("sent 5, failed 0, skipped 0, unknown 0, queued 0") == 1, screen
    # Where the output goes to a log instead, the log has the figures with the digest's id.
    logged = subprocess.run(
        [*NEWSLETTER, "digest", "send", str(digest_id)],
        env=environment(base_config, smtp_server.url),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert logged.returncode == 0
    assert f"send summary: digest {digest_id}: sent 0," in logged.stderr
