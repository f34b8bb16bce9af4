"""Bounce and complaint reports read from mail: what a report says, about whom.

Three shapes arrive in a bounce mailbox:

- RFC 3464 delivery status notifications (``multipart/report; report-type=delivery-status``):
  one block per recipient with ``Final-Recipient``, ``Action`` and ``Status``. A failed
  delivery with a 5.x.x status is a hard bounce, with 4.x.x (or 5.2.2, a full mailbox) a soft
  one; ``delayed`` and ``delivered`` notices are read and need nothing done.
- RFC 5965 ARF complaint reports (``report-type=feedback-report``): someone pressed "report
  spam". ``not-spam`` and authentication-failure reports are read and need nothing done.
- The non-standard bounces of common mail servers, left to flufl.bounce's detectors rather
  than to regexes of our own.

The report is about the delivery its VERP address names, when it came back to one (see
``newsletter.verp``); otherwise about the original message it quotes, or the address it names.
A message none of this can read raises :class:`UnreadableReport`: it is kept for a person.
"""

from __future__ import annotations

import email
import hashlib
import logging
from collections.abc import Iterable
from dataclasses import dataclass, replace
from email.message import Message
from email.parser import HeaderParser
from email.utils import getaddresses

from flufl.bounce import all_failures

from newsletter.models import BounceKind
from newsletter.verp import Verp

__all__ = ["Report", "UnreadableReport", "read_report", "report_key"]

# The detectors log each exception one of them raises on a malformed message, traceback and
# all, then go on with the others. Such a message is listed as unreadable by the command that
# reads the mailbox; its traceback would only bury that line.
_detectors_log = logging.getLogger("flufl.bounce")
_detectors_log.addHandler(logging.NullHandler())
_detectors_log.propagate = False

# Headers a receiving mail server writes with the envelope recipient: where a VERP address
# survives even when the report itself quotes nothing of our message.
ENVELOPE_HEADERS = ("Delivered-To", "X-Original-To", "Envelope-To", "X-Envelope-To", "To")
# Feedback types that are complaints: the person (or their provider for them) called it spam.
COMPLAINT_TYPES = {"abuse", "fraud", "virus", "other"}
# A full mailbox, reported as permanent by some servers, clears itself: a soft bounce.
SOFT_PERMANENT_STATUSES = {"5.2.2"}
REASON_LENGTH = 1000


class UnreadableReport(ValueError):
    """Not a bounce or complaint report this service can read; it stays where it is."""


@dataclass(frozen=True)
class Report:
    """What one report says about one message or address."""

    kind: BounceKind
    #: The raw report's Message-ID, or a provider's id of the event: a report read twice
    #: acts once.
    report_id: str
    reason: str = ""
    #: The address the report names, if it names one.
    email: str | None = None
    #: The delivery its VERP return path names: the surest match.
    delivery_id: int | None = None
    #: The Message-ID of our message, when the report quotes it.
    message_id: str | None = None


def report_key(message: Message, raw: bytes) -> str:
    """The raw report's Message-ID, or a hash of its bytes when it has none."""
    message_id = str(message.get("Message-ID") or "").strip()
    if message_id:
        return message_id[:255]
    return "sha256:" + hashlib.sha256(raw).hexdigest()


def read_report(raw: bytes, verp: Verp | None) -> list[Report]:
    """The reports a message carries (none for a notice that needs nothing done).

    Raises :class:`UnreadableReport` when it is no report this service understands.
    """
    message = email.message_from_bytes(raw)
    key = report_key(message, raw)
    delivery_id = _verp_delivery(message, verp)
    reports = _structured(message, key)
    if reports == []:
        return []  # a standard notice, read, asking for nothing
    if reports is None:
        reports = _mta_formats(message, key)
    if not reports:
        raise UnreadableReport("no delivery status, complaint or bounce found in it")
    original = _original_message_id(message)
    return [replace(r, delivery_id=delivery_id, message_id=original) for r in reports]


def _structured(message: Message, key: str) -> list[Report] | None:
    """The reports of an RFC 3464 or RFC 5965 report; None when it is neither."""
    if message.get_content_type() != "multipart/report":
        return None
    report_type = str(message.get_param("report-type", "") or "").lower()
    if report_type == "delivery-status":
        return _delivery_status(message, key)
    if report_type == "feedback-report":
        return _feedback(message, key)
    return None


def _fields(part: Message) -> list[Message]:
    """The header blocks of a ``message/delivery-status`` or ``message/feedback-report``
    part, however the parser left them."""
    payload = part.get_payload()
    if isinstance(payload, list):
        return [block for block in payload if isinstance(block, Message)]
    if isinstance(payload, str):
        blocks = payload.replace("\r\n", "\n").split("\n\n")
        return [HeaderParser().parsestr(block) for block in blocks if block.strip()]
    return []


def _parts(message: Message, content_type: str) -> Iterable[Message]:
    return (part for part in message.walk() if part.get_content_type() == content_type)


def _delivery_status(message: Message, key: str) -> list[Report] | None:
    reports: list[Report] = []
    seen_action = False
    for part in _parts(message, "message/delivery-status"):
        for block in _fields(part):
            action = str(block.get("Action", "")).strip().lower()
            if not action:
                continue  # the per-message block
            seen_action = True
            if not action.startswith(("failed", "error")):
                continue  # delayed, delivered, relayed, expanded: nothing to do
            status = str(block.get("Status", "")).strip().split(" ")[0]
            soft = status.startswith("4") or status in SOFT_PERMANENT_STATUSES
            diagnostic = _one_line(str(block.get("Diagnostic-Code", "")))
            reason = diagnostic.partition(";")[2].strip() or diagnostic or f"status {status}"
            reports.append(
                Report(
                    kind=BounceKind.SOFT if soft else BounceKind.HARD,
                    report_id=key,
                    reason=_clip(f"{status} {reason}" if status not in reason else reason),
                    email=_recipient(block),
                )
            )
    return reports if seen_action else None


def _recipient(block: Message) -> str | None:
    for header in ("Original-Recipient", "Final-Recipient", "X-Actual-Recipient"):
        value = str(block.get(header, "")).strip()
        kind, semicolon, address = value.partition(";")
        found = (address if semicolon else kind).strip().strip("<>")
        if "@" in found:
            return found
    return None


def _feedback(message: Message, key: str) -> list[Report] | None:
    for part in _parts(message, "message/feedback-report"):
        for block in _fields(part):
            kind = str(block.get("Feedback-Type", "")).strip().lower()
            if not kind:
                continue
            if kind not in COMPLAINT_TYPES:
                return []  # not-spam, auth-failure: read, nothing to do
            address = str(block.get("Original-Rcpt-To", "")).strip().strip("<>")
            if "@" not in address:
                address = _original_header(message, "To") or ""
            agent = _one_line(str(block.get("User-Agent", "")))
            reason = f"complaint ({kind})" + (f" reported by {agent}" if agent else "")
            return [
                Report(
                    kind=BounceKind.COMPLAINT,
                    report_id=key,
                    reason=_clip(reason),
                    email=address if "@" in address else None,
                )
            ]
    return None


def _mta_formats(message: Message, key: str) -> list[Report]:
    """A mail server's own bounce format, read by flufl.bounce's detectors."""
    try:
        temporary, permanent = all_failures(message)
    except Exception as error:
        # A detector tripping over a malformed message: it cannot be read, and is kept.
        raise UnreadableReport(f"the bounce detectors failed on it ({error})") from None
    subject = _one_line(str(message.get("Subject", ""))) or "bounce"
    reports = [
        Report(BounceKind.HARD, key, _clip(subject), address.decode("ascii", "replace"))
        for address in sorted(permanent)
    ]
    reports += [
        Report(BounceKind.SOFT, key, _clip(subject), address.decode("ascii", "replace"))
        for address in sorted(temporary - permanent)
    ]
    return reports


def _verp_delivery(message: Message, verp: Verp | None) -> int | None:
    if verp is None:
        return None
    values = [str(value) for header in ENVELOPE_HEADERS for value in message.get_all(header, [])]
    for feedback in _parts(message, "message/feedback-report"):
        for block in _fields(feedback):
            values += [str(value) for value in block.get_all("Original-Mail-From", [])]
    for _name, address in getaddresses(values):
        delivery_id = verp.delivery_of(address)
        if delivery_id is not None:
            return delivery_id
    return None


def _original(message: Message) -> Message | None:
    """The original message (or its headers) a report encloses."""
    for content_type in ("message/rfc822", "text/rfc822-headers"):
        for part in _parts(message, content_type):
            payload = part.get_payload()
            if isinstance(payload, list) and payload and isinstance(payload[0], Message):
                return payload[0]
            if isinstance(payload, str):
                return HeaderParser().parsestr(payload)
    return None


def _original_header(message: Message, name: str) -> str | None:
    original = _original(message)
    if original is None:
        return None
    addresses = getaddresses([str(value) for value in original.get_all(name, [])])
    return addresses[0][1] if addresses else None


def _original_message_id(message: Message) -> str | None:
    original = _original(message)
    if original is None:
        return None
    value = str(original.get("Message-ID", "")).strip()
    return value or None


def _one_line(text: str) -> str:
    return " ".join(text.split())


def _clip(text: str) -> str:
    return text[:REASON_LENGTH]
