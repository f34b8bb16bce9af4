"""``newsletter bounces process`` on a real maildir and a real IMAP server (Dovecot), on
SQLite and PostgreSQL: reports acted on and moved to ``processed``, what cannot be read left
where it is and listed, nothing deleted, and two runs never acting twice."""

from __future__ import annotations

import imaplib
import os
import subprocess
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.mail.bounce_mailbox import ImapMailbox, MaildirMailbox, parse_mailbox_url
from newsletter.models import (
    BounceReport,
    ConsentEvent,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
)
from newsletter.runtime import get_runtime
from newsletter.services.bounce_mailbox import process_mailbox
from newsletter.services.privacy import suppression_reason
from newsletter.verp import Verp
from tests.sending_support import NEWSLETTER, environment
from tests.support.bounce_samples import (
    arf_complaint,
    exim_bounce,
    gmail_dsn,
    out_of_office,
    postfix_dsn,
)
from tests.support.dovecot import ImapServer
from tests.support.people import add_subscriber

BOUNCES = "bounces@news.example.org"


def sent_to(session: Session, subscriber: Subscriber) -> Delivery:
    delivery = Delivery(
        kind=DeliveryKind.DIGEST,
        subscriber_id=subscriber.id,
        status=DeliveryStatus.SENT,
        sent_at=utcnow() - timedelta(hours=1),
    )
    session.add(delivery)
    session.commit()
    return delivery


def people(session: Session, verp: Verp) -> dict[str, bytes]:
    """Four people and a report about each, plus a notice and mail that is no report."""
    ada = add_subscriber(session, "ada@example.org")
    bob = add_subscriber(session, "bob@example.org", "Bob", "Smith")
    add_subscriber(session, "cy@example.org", "Cy", "Young")
    eve = add_subscriber(session, "eve@example.org", "Eve", "Adams")
    ada_delivery = sent_to(session, ada)
    eve_delivery = sent_to(session, eve)
    return {
        # Back to Ada's VERP address, about an address that is none of ours (forwarding).
        "postfix": postfix_dsn(verp.address(ada_delivery.id), None, quote_original=False),
        "gmail": gmail_dsn(BOUNCES, bob.email),
        "exim": exim_bounce(BOUNCES, "cy@example.org"),
        "complaint": arf_complaint(BOUNCES, None, original_mail_from=verp.address(eve_delivery.id)),
        "delayed": postfix_dsn(BOUNCES, "bob@example.org", status="4.4.1", action="delayed"),
        "nobody": postfix_dsn(BOUNCES, "nobody@example.org"),
        "away": out_of_office(BOUNCES),
    }


def check_effects(session: Session) -> None:
    session.expire_all()
    status = {
        email: state
        for email, state in session.execute(select(Subscriber.email, Subscriber.status))
    }
    assert status == {
        "ada@example.org": SubscriberStatus.BOUNCED,
        "bob@example.org": SubscriberStatus.BOUNCED,
        "cy@example.org": SubscriberStatus.BOUNCED,
        "eve@example.org": SubscriberStatus.UNSUBSCRIBED,
    }
    assert suppression_reason(session, "eve@example.org") == "complaint"
    kinds = sorted(session.scalars(select(BounceReport.kind)))
    assert kinds == ["complaint", "hard", "hard", "hard"]
    complaints = session.scalar(
        select(func.count()).select_from(ConsentEvent).where(ConsentEvent.kind == "complaint")
    )
    assert complaints == 1


def write_maildir(folder: Path, messages: dict[str, bytes]) -> None:
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True, exist_ok=True)
    for index, (name, raw) in enumerate(messages.items()):
        # Some already seen by a person in a mail program (cur/), most not (new/).
        sub, suffix = ("cur", ":2,S") if index % 3 == 0 else ("new", "")
        (folder / sub / f"{index}.{name}{suffix}").write_bytes(raw)


def maildir_files(folder: Path) -> dict[str, bytes]:
    return {
        f"{sub}/{path.name}": path.read_bytes()
        for sub in ("new", "cur")
        for path in sorted((folder / sub).iterdir())
    }


def maildir_of_reports(
    make_app: Callable[..., Flask], session: Session, maildir: Path
) -> tuple[Flask, dict[str, bytes]]:
    """An app reading ``maildir``, which holds the reports of ``people``."""
    app = make_app(BOUNCE_ADDRESS=BOUNCES, BOUNCE_MAILBOX=f"maildir://{maildir}")
    verp = get_runtime(app).site.verp
    assert verp is not None
    messages = people(session, verp)
    write_maildir(maildir, messages)
    return app, messages


def test_a_maildir_is_read_once_and_what_cannot_be_read_stays(
    make_app: Callable[..., Flask], session: Session, tmp_path: Path
) -> None:
    maildir = tmp_path / "bounces"
    app, messages = maildir_of_reports(make_app, session, maildir)
    away = messages["away"]

    result = app.test_cli_runner().invoke(args=["bounces", "process"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == (
        "Handled 6 messages, moved to processed: hard bounces 3, soft bounces 0, complaints 1."
    )
    assert lines[1] == (
        "Reports already handled before: 0; about unknown addresses (ignored): 1; "
        "notices needing nothing: 1."
    )
    assert lines[2].startswith(f"Left in maildir://{maildir}, not reports")
    assert "Out of office: Our news this week" in lines[3] and "6.away" in lines[3]
    assert len(lines) == 4
    check_effects(session)
    # The unreadable message is where it was, unchanged; the rest are in processed/cur.
    assert list(maildir_files(maildir).values()) == [away]
    processed = maildir_files(maildir / ".processed")
    assert len(processed) == 6 and all(name.startswith("cur/") for name in processed)
    assert all(name.endswith(":2,S") for name in processed)

    again = app.test_cli_runner().invoke(args=["bounces", "process"])
    assert again.exit_code == 0
    assert again.output.splitlines()[0].startswith("Handled 0 messages")
    assert "6.away" in again.output
    assert list(maildir_files(maildir).values()) == [away]
    check_effects(session)


def test_a_folder_among_the_messages_is_passed_over(
    make_app: Callable[..., Flask], session: Session, tmp_path: Path
) -> None:
    # A maildir holds only files in new/ and cur/; something else put there (a folder a
    # person made by hand) is not a message and stops nothing.
    maildir = tmp_path / "bounces"
    app, _messages = maildir_of_reports(make_app, session, maildir)
    (maildir / "new" / "0.a-folder").mkdir()
    (maildir / "cur" / "0.a-folder:2,S").mkdir()

    result = app.test_cli_runner().invoke(args=["bounces", "process"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith("Handled 6 messages, moved to processed: hard bounces 3,")
    check_effects(session)
    assert (maildir / "new" / "0.a-folder").is_dir()
    assert (maildir / "cur" / "0.a-folder:2,S").is_dir()


class ReadEarly:
    """A maildir read by a run that then stalls: its messages as they were when it looked."""

    def __init__(self, mailbox: MaildirMailbox) -> None:
        self.mailbox = mailbox
        self.read = list(mailbox.messages())

    def messages(self) -> Iterator[tuple[str, bytes]]:
        return iter(self.read)

    def move_to_processed(self, name: str) -> None:
        self.mailbox.move_to_processed(name)

    def close(self) -> None:
        return None


def test_two_runs_at_once_act_on_a_report_once(
    make_app: Callable[..., Flask], session: Session, tmp_path: Path
) -> None:
    maildir = tmp_path / "bounces"
    app = make_app(BOUNCE_ADDRESS=BOUNCES)
    runtime = get_runtime(app)
    verp = runtime.site.verp
    messages = people(session, verp)  # type: ignore[arg-type]
    write_maildir(maildir, messages)

    # The first run reads everything, then the second handles it all before the first acts.
    first = ReadEarly(MaildirMailbox(maildir))
    second = process_mailbox(runtime.sessions, MaildirMailbox(maildir), verp, 3)
    late = process_mailbox(runtime.sessions, first, verp, 3)

    assert sum(second.applied.values()) == 4
    assert sum(late.applied.values()) == 0 and late.repeats == 4
    check_effects(session)
    assert len(maildir_files(maildir / ".processed")) == 6


# -- IMAP -------------------------------------------------------------------------------------


@pytest.fixture
def imap_account(imap_server: ImapServer) -> tuple[str, str]:
    return imap_server.new_account()


def folder_subjects(imap: imaplib.IMAP4, folder: str) -> list[str]:
    status, _ = imap.select(folder, readonly=True)
    if status != "OK":
        return []
    _, found = imap.uid("SEARCH", "ALL")
    subjects = []
    for uid in found[0].split():
        _, parts = imap.uid("FETCH", uid, "(BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        subjects.append(parts[0][1].decode().strip().removeprefix("Subject: "))
    return sorted(subjects)


def test_an_imap_mailbox_is_read_and_handled_reports_are_moved(
    request: pytest.FixtureRequest,
    make_app: Callable[..., Flask],
    session: Session,
    imap_server: ImapServer,
    imap_account: tuple[str, str],
) -> None:
    user, password = imap_account
    app = make_app(BOUNCE_ADDRESS=BOUNCES, BOUNCE_MAILBOX=imap_server.url(user, password))
    verp = get_runtime(app).site.verp
    messages = people(session, verp)  # type: ignore[arg-type]
    imap = imap_server.connect(user, password)
    request.addfinalizer(imap.logout)
    for raw in messages.values():
        assert imap.append("INBOX", None, None, raw)[0] == "OK"

    result = app.test_cli_runner().invoke(args=["bounces", "process"])

    assert result.exit_code == 0, result.output
    assert result.output.startswith(
        "Handled 6 messages, moved to processed: hard bounces 3, soft bounces 0, complaints 1."
    )
    assert "Out of office" in result.output
    check_effects(session)
    assert folder_subjects(imap, "INBOX") == ["Out of office: Our news this week"]
    assert len(folder_subjects(imap, "processed")) == 6
    # Reading left the unreadable message unseen, for a person to find.
    imap.select("INBOX", readonly=True)
    _, unseen = imap.uid("SEARCH", "UNSEEN")
    assert len(unseen[0].split()) == 1

    again = app.test_cli_runner().invoke(args=["bounces", "process"])
    assert again.output.startswith("Handled 0 messages")
    assert folder_subjects(imap, "INBOX") == ["Out of office: Our news this week"]


def test_mailbox_problems_are_one_line(
    make_app: Callable[..., Flask],
    imap_server: ImapServer,
    imap_account: tuple[str, str],
    tmp_path: Path,
) -> None:
    user, password = imap_account
    wrong = make_app(BOUNCE_MAILBOX=imap_server.url(user, "not-the-password"))
    result = wrong.test_cli_runner().invoke(args=["bounces", "process"])
    assert result.exit_code == 1
    assert result.output.startswith(f"Error: cannot log in to imap://{user}@127.0.0.1:")
    assert "not-the-password" not in result.output and "Traceback" not in result.output
    assert len(result.output.splitlines()) == 1

    missing = make_app(BOUNCE_MAILBOX=f"maildir://{tmp_path / 'nothing-here'}")
    result = missing.test_cli_runner().invoke(args=["bounces", "process"])
    assert result.exit_code == 1
    assert result.output == f"Error: no maildir at {tmp_path / 'nothing-here'}\n"

    unset = make_app()
    result = unset.test_cli_runner().invoke(args=["bounces", "process"])
    assert result.exit_code == 1
    assert result.output.startswith("Error: NEWSLETTER_BOUNCE_MAILBOX is not set")


def test_a_maildir_run_never_deletes(
    make_app: Callable[..., Flask], session: Session, tmp_path: Path
) -> None:
    maildir = tmp_path / "bounces"
    app = make_app(BOUNCE_MAILBOX=f"maildir://{maildir}")
    write_maildir(maildir, {"away": out_of_office(BOUNCES), "junk": b"\x00\x01 junk"})
    before = maildir_files(maildir)
    for _ in range(2):
        result = app.test_cli_runner().invoke(args=["bounces", "process"])
        assert result.exit_code == 0
    assert maildir_files(maildir) == before
    assert not (maildir / ".processed").exists() or not os.listdir(maildir / ".processed" / "cur")


@pytest.mark.parametrize("without", [{"MOVE"}, {"MOVE", "UIDPLUS"}])
def test_a_server_without_move_gets_copy_and_expunge(
    request: pytest.FixtureRequest,
    make_app: Callable[..., Flask],
    session: Session,
    imap_server: ImapServer,
    imap_account: tuple[str, str],
    without: set[str],
) -> None:
    user, password = imap_account
    app = make_app()
    add_subscriber(session, "cy@example.org", "Cy", "Young")
    imap = imap_server.connect(user, password)
    request.addfinalizer(imap.logout)
    imap.append("INBOX", None, None, exim_bounce(BOUNCES, "cy@example.org"))
    imap.append("INBOX", None, None, out_of_office(BOUNCES))
    # A message a person marked deleted but did not expunge.
    imap.append("INBOX", r"(\Deleted)", None, out_of_office(BOUNCES).replace(b"Out", b"Gone"))

    mailbox = ImapMailbox(parse_mailbox_url(imap_server.url(user, password)))
    mailbox.capabilities -= without
    try:
        run = process_mailbox(get_runtime(app).sessions, mailbox, None, 3)
    finally:
        mailbox.close()

    # The message a person marked deleted is theirs: not read, not removed.
    assert (run.moved, run.applied["hard"], len(run.unread)) == (1, 1, 1)
    assert folder_subjects(imap, "processed") == [
        "Mail delivery failed: returning message to sender"
    ]
    left = folder_subjects(imap, "INBOX")
    assert "Gone of office: Our news this week" in left
    assert "Out of office: Our news this week" in left
    # Without UIDPLUS the handled message's original stays, marked deleted, never read again.
    assert len(left) == (3 if "UIDPLUS" in without else 2)
    again = ImapMailbox(parse_mailbox_url(imap_server.url(user, password)))
    again.capabilities -= without
    try:
        assert [name for name, _ in again.messages()] == ["2"]
    finally:
        again.close()


def test_a_detector_tripping_over_a_message_prints_no_traceback(
    make_app: Callable[..., Flask], base_config: dict[str, Any], tmp_path: Path
) -> None:
    # An empty file trips one of the mail-server detectors, which logs its exception; the run
    # is a process of its own, as cron starts it, so nothing of the test's logging is in play.
    maildir = tmp_path / "bounces"
    for folder in ("new", "cur", "tmp"):
        (maildir / folder).mkdir(parents=True)
    (maildir / "new" / "empty.eml").write_bytes(b"")
    make_app()  # the schema
    run = subprocess.run(
        [*NEWSLETTER, "bounces", "process"],
        env=environment(
            base_config, base_config["MAIL_URL"], NEWSLETTER_BOUNCE_MAILBOX=f"maildir://{maildir}"
        ),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("Handled 0 messages")
    assert "new/empty.eml" in run.stdout
    assert "Traceback" not in run.stderr and "Exception" not in run.stderr, run.stderr
    assert (maildir / "new" / "empty.eml").exists()
