"""Rules for a person's details, shared by the signup form and the CSV import."""

from __future__ import annotations

import functools
import re

from email_validator import EmailNotValidError, validate_email
from email_validator.rfc_constants import CASE_INSENSITIVE_MAILBOX_NAMES, EMAIL_MAX_LENGTH

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
    if not check_deliverability and (plain := _plain_address(text)) is not None:
        return plain
    try:
        result = validate_email(text, check_deliverability=check_deliverability)
    except EmailNotValidError as error:
        raise InvalidValue(_address_problem(str(error))) from None
    return str(result.normalized)


# The shape most addresses have: an unquoted ASCII local part of email-validator's own
# dot-atom characters, one @-sign, and a domain of ASCII letters, digits, hyphens and dots.
_ATEXT = r"[a-zA-Z0-9_!#$%&'*+\-/=?^`{|}~]+"
_PLAIN_ADDRESS = re.compile(rf"({_ATEXT}(?:\.{_ATEXT})*)@([a-zA-Z0-9.-]+)")
_CASE_INSENSITIVE = frozenset(CASE_INSENSITIVE_MAILBOX_NAMES)


def _plain_address(text: str) -> str | None:
    """The normalised form of an address of the plain shape whose domain email-validator
    accepts, without running all of its checks again; None for anything else, which the
    caller hands to email-validator whole (so every refusal keeps its own message).

    An address list has millions of local parts and few domains, and checking the domain is
    most of email-validator's work. For this shape email-validator's result is exactly the
    local part as given and the domain as it normalises it alone, if the lengths allow: so
    the domain's result is cached, and the lengths are checked here."""
    match = _PLAIN_ADDRESS.fullmatch(text)
    if match is None:
        return None
    local, domain = match.groups()
    if local.lower() in _CASE_INSENSITIVE:
        return None  # email-validator lower-cases postmaster@ and its like
    domains = _domain_forms(domain)
    if domains is None:
        return None
    normalised, ascii_form = domains
    address = f"{local}@{normalised}"
    longest = max(len(text), len(address.encode()), len(local) + 1 + len(ascii_form))
    return address if longest <= EMAIL_MAX_LENGTH else None


@functools.lru_cache(maxsize=4096)
def _domain_forms(domain: str) -> tuple[str, str] | None:
    """The normalised and ASCII forms email-validator gives ``domain``, or None when it
    refuses it (then the whole address is checked, for the message)."""
    try:
        result = validate_email(f"a@{domain}", check_deliverability=False)
    except EmailNotValidError:
        return None
    return str(result.domain), str(result.ascii_domain)


def _address_problem(reason: str) -> str:
    """email-validator's reason, said once: some of its reasons name the address already
    ("An email address must have an @-sign."), others need it named ("There must be
    something after the @-sign.")."""
    if "email address" in reason.lower():
        return reason
    return f"Enter a valid email address: {reason}"
