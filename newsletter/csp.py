"""Content-Security-Policy header values, built from directives given as data.

A policy is a mapping of directive names to their sources, such as
``{"frame-ancestors": ["'self'", "https://www.example.org"]}``. Pages start from one site-wide
policy and add sources where they need more (:func:`extend`); :func:`header` writes the header
value and refuses anything that would let a source end its directive or the header.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence

__all__ = ["InvalidSource", "Policy", "extend", "header", "sources"]

Policy = Mapping[str, Sequence[str]]

NONE = "'none'"
# A directive name, and one source: visible ASCII without the separators of directives (";")
# and of policies (","). Hosts outside ASCII are written in their xn-- form.
_NAME = re.compile(r"[a-z][a-z0-9-]*\Z")
_SOURCE = re.compile(r"[!-+\--:<-~]+\Z")


class InvalidSource(ValueError):
    """A source or directive name that cannot stand in a Content-Security-Policy."""


def sources(text: str) -> tuple[str, ...]:
    """The space-separated sources of a setting such as ``'self' https://www.example.org``."""
    # Split at spaces only: a line break or tab inside is refused with the source it is in.
    found = tuple(part for part in text.strip().split(" ") if part)
    if not found:
        raise InvalidSource("no source given")
    for source in found:
        _check_source(source)
    return found


def extend(policy: Policy, additions: Policy) -> dict[str, tuple[str, ...]]:
    """``policy`` with the sources of ``additions`` added, directive by directive.

    A directive ``policy`` lacks is added; ``'none'`` gives way to any other source.
    """
    combined = {name: tuple(values) for name, values in policy.items()}
    for name, values in additions.items():
        merged = [value for value in (*combined.get(name, ()), *values) if value != NONE]
        combined[name] = tuple(dict.fromkeys(merged)) or (NONE,)
    return combined


def header(policy: Policy) -> str:
    """The header value for ``policy``, directives in the order given."""
    return "; ".join(_directive(name, values) for name, values in policy.items())


def _directive(name: str, values: Iterable[str]) -> str:
    if not _NAME.match(name):
        raise InvalidSource(f"not a directive name: {name!r}")
    values = tuple(values) or (NONE,)
    for value in values:
        _check_source(value)
    return " ".join((name, *values))


def _check_source(source: str) -> None:
    if not _SOURCE.match(source):
        message = (
            f"{source!r} is not a source: sources are separated by spaces and hold no ';' "
            "or ','; write a host outside ASCII in its xn-- form"
        )
        raise InvalidSource(message)
