"""Web origins (scheme, host and port) as browsers write them in the ``Origin`` header.

The signup box on the organisation's pages is accepted from the origins listed in
``NEWSLETTER_EMBED_ORIGINS``; a browser always tells a cross-site POST's origin truthfully,
so comparing it with the list is what stands in for a cookie-bound CSRF token there.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from urllib.parse import urlsplit

import idna

__all__ = ["origin_of", "parse_origins", "url_on"]

DEFAULT_PORTS = {"http": 80, "https": 443}
# A DNS name or IPv4 address (labels of letters, digits and hyphens), or an IPv6 address.
_HOST = re.compile(r"[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*")


def origin_of(url: str | None) -> str | None:
    """The origin of an absolute http(s) address, written as a browser writes it (host in
    lower case and ASCII, no default port); None for anything else, ``null`` included."""
    if not url or any(char.isspace() or ord(char) < 32 for char in url):
        return None
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        return None
    scheme = parts.scheme.lower()
    if scheme not in DEFAULT_PORTS or not parts.hostname:
        return None
    host = _ascii_host(parts.hostname)
    if host is None:
        return None
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address keeps its brackets
    if port is None or port == DEFAULT_PORTS[scheme]:
        return f"{scheme}://{host}"
    return f"{scheme}://{host}:{port}"


def _ascii_host(host: str) -> str | None:
    if host.isascii():
        return host.lower() if _HOST.fullmatch(host) else None
    try:
        return idna.encode(host, uts46=True).decode("ascii")
    except idna.IDNAError:
        return None


def parse_origins(text: str) -> tuple[str, ...]:
    """Origins separated by spaces, each checked and written as a browser would send it.

    Raises ValueError naming the first word that is not an origin.
    """
    origins: list[str] = []
    for word in text.split():
        origin = origin_of(word)
        parts = urlsplit(word) if origin else None
        if (
            origin is None
            or parts is None
            or parts.path not in ("", "/")
            or parts.query
            or parts.fragment
            or "@" in parts.netloc
        ):
            message = (
                f"{word!r} is not an origin; write the scheme and host (and a port, if any) "
                "only, such as https://www.example.org"
            )
            raise ValueError(message)
        if origin not in origins:
            origins.append(origin)
    return tuple(origins)


def url_on(url: str | None, origins: Iterable[str]) -> str | None:
    """``url`` itself when it is an http(s) address on one of ``origins``, else None."""
    origin = origin_of(url)
    return url if origin is not None and origin in set(origins) else None
