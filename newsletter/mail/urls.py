"""Parsing ``NEWSLETTER_MAIL_URL`` into a transport description."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, unquote, urlsplit

__all__ = ["MailURL", "MailURLError", "parse_mail_url"]

SMTP_SCHEMES = {"smtp": 25, "smtp+starttls": 587, "smtps": 465}
SCHEMES = (*SMTP_SCHEMES, "maildir", "console")


class MailURLError(ValueError):
    """The mail URL cannot be used."""


@dataclass(frozen=True)
class MailURL:
    scheme: str
    host: str = ""
    port: int = 0
    username: str | None = None
    password: str | None = None
    path: Path | None = None
    timeout: float | None = None


def _without_password(url: str) -> str:
    """The URL as error messages show it: terminals and logs are no place for a password."""
    scheme, separator, rest = url.partition("://")
    credentials, at, host = rest.rpartition("@")
    if not (separator and at and ":" in credentials):
        return url
    return f"{scheme}://{credentials.partition(':')[0]}:***@{host}"


def parse_mail_url(url: str) -> MailURL:
    """Split a mail URL such as ``smtp+starttls://user:pass@host:587`` or ``maildir:///var/mail``."""
    parts = urlsplit(url)
    shown = _without_password(url)
    scheme = parts.scheme.lower()
    if scheme not in SCHEMES:
        expected = ", ".join(f"{name}://" for name in SCHEMES)
        raise MailURLError(f"unknown scheme in {shown!r}; expected one of {expected}")
    if scheme == "console":
        return MailURL(scheme)
    if scheme == "maildir":
        path = unquote(parts.netloc + parts.path)
        if not path:
            raise MailURLError(f"{shown!r} names no folder; use maildir:///absolute/path")
        return MailURL(scheme, path=Path(path))
    if not parts.hostname:
        raise MailURLError(f"{shown!r} names no host; use {scheme}://user:password@host:port")
    try:
        port = parts.port or SMTP_SCHEMES[scheme]
    except ValueError:
        raise MailURLError(f"{shown!r} has a port that is not a number") from None
    timeout = None
    query = parse_qs(parts.query)
    if "timeout" in query:
        try:
            timeout = float(query["timeout"][0])
        except ValueError:
            timeout = 0.0
        if not timeout > 0:
            raise MailURLError(f"{shown!r}: timeout must be a number of seconds")
    return MailURL(
        scheme,
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        timeout=timeout,
    )
