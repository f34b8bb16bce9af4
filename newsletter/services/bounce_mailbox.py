"""Reading the bounce mailbox once: each report stored and acted on, then moved away.

For each message: read it (changing nothing); store and act on its reports in a transaction
of its own; then move it to the ``processed`` folder. Two runs at once may read the same
message, but the reports' unique key lets only one of them act; the other finds a repeat.
A crash between the commit and the move leaves the message to be read again, as a repeat.
A message that cannot be read is left where it is, and named in the run's summary.

This service owns its transactions (one per message), so a run stopped half-way keeps what
it did and the next carries on.
"""

from __future__ import annotations

import email
from collections import Counter
from dataclasses import dataclass, field

from sqlalchemy.orm import Session, sessionmaker

from newsletter.controls import replace_controls
from newsletter.mail.bounce_mailbox import Mailbox
from newsletter.mail.bounce_reports import UnreadableReport, read_report
from newsletter.services.bounces import Outcome, record_report
from newsletter.verp import Verp

__all__ = ["MAILBOX_SOURCE", "MailboxRun", "Unread", "process_mailbox"]

MAILBOX_SOURCE = "mailbox"


@dataclass(frozen=True)
class Unread:
    """A message left in the mailbox: its name there, what it looks like, and why."""

    name: str
    summary: str
    why: str


@dataclass
class MailboxRun:
    #: Messages read and moved to the processed folder.
    moved: int = 0
    #: Reports acted on, by kind (hard, soft, complaint).
    applied: Counter[str] = field(default_factory=Counter)
    #: Reports already acted on before (another run, an earlier crash).
    repeats: int = 0
    #: Reports about addresses nobody here has.
    unknown: int = 0
    #: Standard notices that ask for nothing (delayed, delivered, not spam).
    notices: int = 0
    unread: list[Unread] = field(default_factory=list)


def process_mailbox(
    sessions: sessionmaker[Session], mailbox: Mailbox, verp: Verp | None, soft_limit: int
) -> MailboxRun:
    """Read every waiting message of ``mailbox`` once."""
    run = MailboxRun()
    for name, raw in mailbox.messages():
        try:
            reports = read_report(raw, verp)
        except UnreadableReport as error:
            run.unread.append(Unread(name, _summary(raw), str(error)))
            continue
        if not reports:
            run.notices += 1
        with sessions.begin() as session:
            for report in reports:
                outcome = record_report(session, report, MAILBOX_SOURCE, soft_limit)
                if outcome is Outcome.APPLIED:
                    run.applied[report.kind] += 1
                elif outcome is Outcome.REPEAT:
                    run.repeats += 1
                else:
                    run.unknown += 1
        mailbox.move_to_processed(name)
        run.moved += 1
    return run


def _summary(raw: bytes) -> str:
    """Who sent a message and its subject, on one line, to find it in a mail program."""
    message = email.message_from_bytes(raw)
    sender = replace_controls(str(message.get("From", "") or "")).strip() or "(no sender)"
    subject = replace_controls(str(message.get("Subject", "") or "")).strip() or "(no subject)"
    return f"from {sender[:100]}: {subject[:100]}"
