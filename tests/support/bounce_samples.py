"""Bounce and complaint reports in the shapes real mail servers send, built with the stdlib's
``email`` package: RFC 3464 DSNs as Postfix, Gmail and Microsoft 365 write them, Exim's
plain-text bounce, an RFC 5965 ARF complaint, and mail that is no report at all."""

from __future__ import annotations

from email.message import Message
from email.mime.multipart import MIMEMultipart
from email.mime.text import MIMEText
from email.utils import format_datetime, make_msgid

from newsletter.db import utcnow

__all__ = [
    "arf_complaint",
    "exim_bounce",
    "gmail_dsn",
    "microsoft_dsn",
    "out_of_office",
    "postfix_dsn",
]

ORIGINAL_HEADERS = (
    "From: Open Rights Watch <news@example.org>\n"
    "To: {recipient}\n"
    "Subject: Our news this week\n"
    "Message-ID: {message_id}\n"
    "Date: Fri, 04 Dec 2026 09:00:00 +0000\n"
)


def _fields(**values: str) -> Message:
    block = Message()
    for name, value in values.items():
        block[name.replace("_", "-")] = value
    return block


def _delivery_status(per_message: Message, *per_recipient: Message) -> Message:
    part = Message()
    part["Content-Type"] = "message/delivery-status"
    part.set_payload([per_message, *per_recipient])
    return part


def _report(kind: str, sender: str, to: str, subject: str) -> MIMEMultipart:
    report = MIMEMultipart("report")
    report.set_param("report-type", kind)
    report["From"] = sender
    report["To"] = to
    report["Subject"] = subject
    report["Date"] = format_datetime(utcnow())
    report["Message-ID"] = make_msgid(domain="reports.example.net")
    report["Auto-Submitted"] = "auto-replied"
    return report


def _headers_part(recipient: str, message_id: str | None) -> MIMEText:
    text = ORIGINAL_HEADERS.format(recipient=recipient, message_id=message_id or "<x@y>")
    if message_id is None:
        text = "\n".join(line for line in text.splitlines() if "Message-ID" not in line) + "\n"
    part = MIMEText(text, "rfc822-headers")
    part["Content-Description"] = "Undelivered Message Headers"
    return part


def postfix_dsn(
    to: str,
    recipient: str | None,
    status: str = "5.1.1",
    action: str = "failed",
    diagnostic: str = "smtp; 550 5.1.1 <{r}>: Recipient address rejected: User unknown",
    original_message_id: str | None = None,
    quote_original: bool = True,
) -> bytes:
    """Postfix's "Undelivered Mail Returned to Sender" (``recipient`` None: the DSN names
    only an address that is none of ours, as after forwarding)."""
    named = recipient or "someone.else@elsewhere.example"
    report = _report(
        "delivery-status",
        "MAILER-DAEMON@mail.example.net (Mail Delivery System)",
        to,
        "Undelivered Mail Returned to Sender",
    )
    notice = MIMEText(
        "This is the mail system at host mail.example.net.\n\n"
        "I'm sorry to have to inform you that your message could not\n"
        "be delivered to one or more recipients.\n"
    )
    notice["Content-Description"] = "Notification"
    report.attach(notice)
    per_message = _fields(
        Reporting_MTA="dns; mail.example.net",
        X_Postfix_Queue_ID="4AB12C0123",
        Arrival_Date="Fri,  4 Dec 2026 09:00:01 +0000 (UTC)",
    )
    per_recipient = _fields(
        Final_Recipient=f"rfc822; {named}",
        Original_Recipient=f"rfc822;{named}",
        Action=action,
        Status=status,
        Remote_MTA="dns; mx.elsewhere.example",
        Diagnostic_Code=diagnostic.format(r=named),
    )
    report.attach(_delivery_status(per_message, per_recipient))
    if quote_original:
        report.attach(_headers_part(named, original_message_id))
    return report.as_bytes()


def gmail_dsn(to: str, recipient: str) -> bytes:
    """Gmail's "Delivery Status Notification (Failure)": the notice as text and HTML beside
    an image, the delivery status, and the whole original message."""
    report = _report(
        "delivery-status",
        "Mail Delivery Subsystem <mailer-daemon@googlemail.com>",
        to,
        "Delivery Status Notification (Failure)",
    )
    related = MIMEMultipart("related")
    alternative = MIMEMultipart("alternative")
    alternative.attach(
        MIMEText(f"Address not found\n\nYour message wasn't delivered to {recipient}")
    )
    alternative.attach(MIMEText(f"<p>Your message wasn't delivered to {recipient}</p>", "html"))
    related.attach(alternative)
    report.attach(related)
    report.attach(
        _delivery_status(
            _fields(Reporting_MTA="dns; googlemail.com", Arrival_Date="Fri, 04 Dec 2026"),
            _fields(
                Final_Recipient=f"rfc822; {recipient}",
                Action="failed",
                Status="5.1.1",
                Remote_MTA="dns; gmail-smtp-in.l.google.com. (2607:f8b0::1b)",
                Diagnostic_Code=(
                    "smtp; 550-5.1.1 The email account that you tried to reach does not exist."
                ),
                Last_Attempt_Date="Fri, 04 Dec 2026 09:00:03 -0800 (PST)",
            ),
        )
    )
    original = Message()
    original["Content-Type"] = "message/rfc822"
    inner = MIMEText("Hello")
    inner["From"] = "news@example.org"
    inner["To"] = recipient
    inner["Subject"] = "Our news this week"
    original.set_payload([inner])
    report.attach(original)
    return report.as_bytes()


def microsoft_dsn(to: str, recipient: str) -> bytes:
    """Microsoft 365's "Undeliverable:" notice with its 5.1.10 RESOLVER status."""
    report = _report(
        "delivery-status",
        "Microsoft Outlook <MicrosoftExchange329e71ec88ae4615bbc36ab6ce41109e@example.com>",
        to,
        "Undeliverable: Our news this week",
    )
    alternative = MIMEMultipart("alternative")
    alternative.attach(MIMEText("Your message to " + recipient + " couldn't be delivered."))
    alternative.attach(MIMEText("<b>Your message couldn't be delivered.</b>", "html"))
    report.attach(alternative)
    report.attach(
        _delivery_status(
            _fields(Reporting_MTA="dns;AM0PR01MB1234.eurprd01.prod.exchangelabs.com"),
            _fields(
                Final_Recipient=f"rfc822;{recipient}",
                Action="failed",
                Status="5.1.10",
                Diagnostic_Code=(
                    "smtp;550 5.1.10 RESOLVER.ADR.RecipientNotFound; Recipient not found by "
                    "SMTP address lookup"
                ),
            ),
        )
    )
    report.attach(_headers_part(recipient, None))
    return report.as_bytes()


def exim_bounce(to: str, recipient: str) -> bytes:
    """Exim's plain-text "Mail delivery failed: returning message to sender"."""
    message = MIMEText(
        "This message was created automatically by mail delivery software.\n\n"
        "A message that you sent could not be delivered to one or more of its\n"
        "recipients. This is a permanent error. The following address(es) failed:\n\n"
        f"  {recipient}\n"
        "    host mx.elsewhere.example [192.0.2.10]\n"
        f"    SMTP error from remote mail server after RCPT TO:<{recipient}>:\n"
        "    550 5.1.1 User unknown\n\n"
        "------ This is a copy of the message, including all the headers. ------\n\n"
        + ORIGINAL_HEADERS.format(recipient=recipient, message_id="<x@example.org>")
    )
    message["From"] = "Mail Delivery System <Mailer-Daemon@mail.example.net>"
    message["To"] = to
    message["Subject"] = "Mail delivery failed: returning message to sender"
    message["X-Failed-Recipients"] = recipient
    message["Auto-Submitted"] = "auto-replied"
    message["Message-ID"] = make_msgid(domain="mail.example.net")
    return message.as_bytes()


def arf_complaint(
    to: str,
    recipient: str | None,
    original_mail_from: str | None = None,
    feedback_type: str = "abuse",
) -> bytes:
    """An RFC 5965 report as the big mailbox providers' feedback loops send one; the
    original is redacted (``recipient`` None), as some providers do."""
    report = _report("feedback-report", "Feedback Loop <feedback@fbl.example.net>", to, "Complaint")
    report.attach(MIMEText("This is an email abuse report for an email message received."))
    fields = {"Feedback_Type": feedback_type, "User_Agent": "ExampleFBL/1.0", "Version": "1"}
    if original_mail_from:
        fields["Original_Mail_From"] = f"<{original_mail_from}>"
    if recipient:
        fields["Original_Rcpt_To"] = f"<{recipient}>"
    fields["Arrival_Date"] = "Fri, 04 Dec 2026 09:00:05 +0000"
    feedback = Message()
    feedback["Content-Type"] = "message/feedback-report"
    feedback.set_payload([_fields(**fields)])
    report.attach(feedback)
    report.attach(_headers_part(recipient or "redacted@fbl.example.net", None))
    return report.as_bytes()


def out_of_office(to: str) -> bytes:
    """An automatic reply: no report of any kind."""
    message = MIMEText("I am away until Monday and will read your message then.")
    message["From"] = "Ada Lovelace <ada@example.org>"
    message["To"] = to
    message["Subject"] = "Out of office: Our news this week"
    message["Message-ID"] = make_msgid(domain="example.org")
    return message.as_bytes()
