"""Rules for a person's details, shared by the signup form and the CSV import."""

from __future__ import annotations

import re

from email_validator import EmailNotValidError, validate_email

from newsletter.controls import has_controls
from newsletter.models import EMAIL_LENGTH, NAME_LENGTH

__all__ = ["InvalidValue", "clean_email", "clean_name"]


class InvalidValue(ValueError):
    """A value a person typed cannot be used; the message says why, for that person."""


def _reject_control_characters(value: str) -> None:
    # CR/LF would let a value become an email header; NUL and other controls break storage.
    if has_controls(value):
        raise InvalidValue("This contains characters that are not allowed (such as line breaks).")


# Anyone can type anything into a form that mails the address given: a "name" carrying a link
# or markup is how such forms are used to send spam. Names are refused, not altered, when they
# hold one. `<`, `>` and `=?` (an RFC 2047 encoded word) never occur in a real name.
_MARKUP = re.compile(r"[<>]|=\?")
# A scheme, "www.", or a host name: labels joined by dots ending in a common top-level domain
# (in any case), in a path, or in any other lower-case word not followed by a dot. Initials,
# capitalised words and abbreviations after a dot are what real names hold: "J. R.", "J.R.R.",
# "St.John", "Ma. Teresa", "Dr.med." do not match.
_LABEL = r"[^\W_](?:[\w-]*[^\W_])?"
_WEB_ADDRESS = re.compile(
    rf"""
    ://
    | \b(?i:www)\.
    | {_LABEL}(?:\.{_LABEL})*
      \.(?:(?i:com|net|org|info|biz|io|ru|cn|xyz|top)\b|[^\W_]+/|[a-z]{{2,}}\b(?!\.))
    """,
    re.VERBOSE,
)


def clean_name(value: str | None, label: str = "This field") -> str:
    """A first or last name: required, one line, at most ``NAME_LENGTH`` characters, with no
    web address or markup in it."""
    text = (value or "").strip()
    if not text:
        raise InvalidValue(f"{label} is required.")
    # Checked before trimming too: a trailing line break is no more welcome than one inside.
    _reject_control_characters(value or "")
    if len(text) > NAME_LENGTH:
        raise InvalidValue(f"{label} must be at most {NAME_LENGTH} characters.")
    if _MARKUP.search(text):
        raise InvalidValue(f"{label} cannot contain markup (<, > or =?).")
    if _WEB_ADDRESS.search(text):
        raise InvalidValue(f"{label} cannot contain a web address.")
    return text


def clean_email(value: str | None, check_deliverability: bool = False) -> str:
    """A syntactically valid address, normalised (domain lower-cased, Unicode NFC)."""
    text = (value or "").strip()
    if not text:
        raise InvalidValue("Email address is required.")
    _reject_control_characters(value or "")
    if len(text) > EMAIL_LENGTH:
        raise InvalidValue(f"Email address must be at most {EMAIL_LENGTH} characters.")
    try:
        result = validate_email(text, check_deliverability=check_deliverability)
    except EmailNotValidError as error:
        raise InvalidValue(_address_problem(str(error))) from None
    return str(result.normalized)


def _address_problem(reason: str) -> str:
    """email-validator's reason, said once: some of its reasons name the address already
    ("An email address must have an @-sign."), others need it named ("There must be
    something after the @-sign.")."""
    if "email address" in reason.lower():
        return reason
    return f"Enter a valid email address: {reason}"
