"""Reading bounce and complaint reports in the shapes real mail servers send them: RFC 3464
DSNs (Postfix, Gmail, Microsoft 365), Exim's own format (through flufl.bounce), RFC 5965
complaints; notices that need nothing; mail that is no report; VERP matching."""

from __future__ import annotations

import pytest

from newsletter.mail.bounce_reports import Report, UnreadableReport, read_report
from newsletter.models import BounceKind
from newsletter.verp import Verp
from tests.support.bounce_samples import (
    arf_complaint,
    exim_bounce,
    gmail_dsn,
    microsoft_dsn,
    out_of_office,
    postfix_dsn,
)

VERP = Verp("bounces@news.example.org", "test-secret-key")
PLAIN = "bounces@news.example.org"


def one(raw: bytes, verp: Verp | None = VERP) -> Report:
    [report] = read_report(raw, verp)
    return report


@pytest.mark.parametrize(
    "raw",
    [
        postfix_dsn(PLAIN, "ada@example.org"),
        gmail_dsn(PLAIN, "ada@example.org"),
        microsoft_dsn(PLAIN, "ada@example.org"),
        exim_bounce(PLAIN, "ada@example.org"),
    ],
    ids=["postfix", "gmail", "microsoft", "exim"],
)
def test_hard_bounces_of_common_servers_name_the_address(raw: bytes) -> None:
    report = one(raw)
    assert (report.kind, report.email, report.delivery_id) == (
        BounceKind.HARD,
        "ada@example.org",
        None,
    )
    assert report.report_id.startswith("<") and report.reason


def test_the_reason_is_the_servers_diagnostic() -> None:
    assert one(microsoft_dsn(PLAIN, "ada@example.org")).reason == (
        "550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by SMTP address lookup"
    )


@pytest.mark.parametrize(
    ("status", "kind"),
    [("5.1.1", BounceKind.HARD), ("5.2.2", BounceKind.SOFT), ("4.4.7", BounceKind.SOFT)],
)
def test_the_status_decides_hard_or_soft(status: str, kind: BounceKind) -> None:
    raw = postfix_dsn(PLAIN, "ada@example.org", status=status, diagnostic="smtp; mailbox")
    assert one(raw).kind is kind


@pytest.mark.parametrize(
    "raw",
    [
        postfix_dsn(PLAIN, "ada@example.org", status="4.4.1", action="delayed"),
        postfix_dsn(PLAIN, "ada@example.org", status="2.0.0", action="delivered"),
        arf_complaint(PLAIN, "ada@example.org", feedback_type="not-spam"),
    ],
    ids=["delayed", "delivered", "not-spam"],
)
def test_notices_are_read_and_ask_for_nothing(raw: bytes) -> None:
    assert read_report(raw, VERP) == []


def test_a_report_to_a_verp_address_names_the_delivery_even_quoting_nothing() -> None:
    # Forwarded mail bounced at another address; nothing of our message is quoted.
    raw = postfix_dsn(VERP.address(42), None, quote_original=False)
    report = one(raw)
    assert (report.kind, report.delivery_id, report.message_id) == (BounceKind.HARD, 42, None)
    # A forged token names nothing.
    forged = postfix_dsn(VERP.address(42).replace("+42.", "+41."), None, quote_original=False)
    assert one(forged).delivery_id is None
    # The server that stored it may have kept the VERP address in Delivered-To only.
    delivered = (
        b"Delivered-To: "
        + VERP.address(7).encode()
        + b"\r\n"
        + postfix_dsn(PLAIN, "ada@example.org")
    )
    assert one(delivered).delivery_id == 7


def test_a_quoted_message_id_is_read() -> None:
    raw = postfix_dsn(PLAIN, "ada@example.org", original_message_id="<digest.3.ab@example.org>")
    assert one(raw).message_id == "<digest.3.ab@example.org>"


def test_a_complaint_names_the_person_or_the_delivery() -> None:
    report = one(arf_complaint(PLAIN, "ada@example.org"))
    assert (report.kind, report.email) == (BounceKind.COMPLAINT, "ada@example.org")
    assert "abuse" in report.reason
    # A provider that redacts the recipient still returns the original envelope sender.
    redacted = one(arf_complaint(PLAIN, None, original_mail_from=VERP.address(9)))
    assert (redacted.kind, redacted.delivery_id) == (BounceKind.COMPLAINT, 9)


def test_mail_that_is_no_report_cannot_be_read() -> None:
    with pytest.raises(UnreadableReport):
        read_report(out_of_office(VERP.address(3)), VERP)
    with pytest.raises(UnreadableReport):
        read_report(b"\x00\xff not even headers", VERP)


def test_a_report_without_a_message_id_gets_a_key_from_its_bytes() -> None:
    raw = exim_bounce(PLAIN, "ada@example.org").replace(b"Message-ID:", b"X-Old-ID:")
    assert one(raw).report_id.startswith("sha256:")
    assert one(raw).report_id == one(raw).report_id


def test_a_delivery_report_with_no_recipient_blocks_cannot_be_read() -> None:
    raw = (
        b"From: MAILER-DAEMON@mail.example.net\r\n"
        b"To: bounces@news.example.org\r\n"
        b"Subject: Undelivered Mail Returned to Sender\r\n"
        b"MIME-Version: 1.0\r\n"
        b'Content-Type: multipart/report; report-type=delivery-status; boundary="b"\r\n\r\n'
        b"--b\r\nContent-Type: text/plain\r\n\r\nSomething went wrong.\r\n"
        b"--b\r\nContent-Type: message/delivery-status\r\n\r\n"
        b"Reporting-MTA: dns; mail.example.net\r\n\r\n"
        b"--b--\r\n"
    )
    with pytest.raises(UnreadableReport):
        read_report(raw, VERP)
