"""Rules for a person's details, shared by the signup form and the CSV import."""

from __future__ import annotations

import unicodedata

from email_validator import EmailNotValidError, validate_email

from newsletter.models import EMAIL_LENGTH, NAME_LENGTH

__all__ = ["InvalidValue", "clean_email", "clean_name"]


class InvalidValue(ValueError):
    """A value a person typed cannot be used; the message says why, for that person."""


def _reject_control_characters(value: str) -> None:
    # CR/LF would let a value become an email header; NUL and other controls break storage.
    if any(unicodedata.category(char) == "Cc" for char in value):
        raise InvalidValue("This contains characters that are not allowed (such as line breaks).")


def clean_name(value: str | None, label: str = "This field") -> str:
    """A first or last name: required, one line, at most ``NAME_LENGTH`` characters."""
    text = (value or "").strip()
    if not text:
        raise InvalidValue(f"{label} is required.")
    # Checked before trimming too: a trailing line break is no more welcome than one inside.
    _reject_control_characters(value or "")
    if len(text) > NAME_LENGTH:
        raise InvalidValue(f"{label} must be at most {NAME_LENGTH} characters.")
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
        raise InvalidValue(f"Enter a valid email address: {error}") from None
    return str(result.normalized)
