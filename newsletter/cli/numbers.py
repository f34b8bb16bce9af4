"""Numbers typed on the command line that reach the database or the network.

A query with a number past what the database's INTEGER holds does not find nothing: it fails
inside the driver (PostgreSQL stops at 2**31 - 1, and Python's sqlite3 refuses anything past
2**63 - 1 before SQLite sees it). So an id that no row can have is reported here as not found,
and a count past any table's size is read as "all".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import click

from newsletter.db import MAX_ID

__all__ = ["DIGEST_ID", "RecordId", "count", "no_digest", "per_second", "seconds"]


def no_digest(digest_id: int) -> str:
    """What staff read for a digest id that names no digest."""
    return f"no digest with id {digest_id}; `newsletter digest create` makes one"


class RecordId(click.types.IntParamType):
    """The id of a row: a whole number; one that no row can have is not found, in one line."""

    def __init__(self, missing: Callable[[int], str]) -> None:
        self.missing = missing

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number: int = super().convert(value, param, ctx)
        if not 1 <= number <= MAX_ID:
            # Not a usage error: the id is well formed and names no row, exactly like a
            # missing id the database is asked about.
            raise click.ClickException(self.missing(number))
        return number


DIGEST_ID = RecordId(no_digest)


class _Count(click.IntRange):
    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        number: int = super().convert(value, param, ctx)
        # No table holds more rows than the largest id, and a LIMIT past it fails.
        return min(number, MAX_ID)


def count(minimum: int = 1) -> click.IntRange:
    """A number of rows to show or take, at least ``minimum``; past any table's size means
    all of them."""
    return _Count(min=minimum)


class _Finite(click.FloatRange):
    def __init__(self, unit: str, minimum: float, maximum: float | None) -> None:
        super().__init__(min=minimum, max=maximum)
        self.unit = unit

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> float:
        number: float = super().convert(value, param, ctx)
        # FloatRange lets "nan" through (it compares false with both bounds): a socket
        # refuses it with a traceback, and a rate of NaN or infinity would be no cap at all.
        if not math.isfinite(number):
            self.fail(f"{value!r} is not a number of {self.unit}.", param, ctx)
        return number


def seconds(minimum: float, maximum: float) -> click.FloatRange:
    """A time limit in seconds from ``minimum`` to ``maximum``; never NaN or infinite."""
    return _Finite("seconds", minimum, maximum)


def per_second(minimum: float) -> click.FloatRange:
    """A rate of at least ``minimum`` messages per second; never NaN or infinite."""
    return _Finite("messages per second", minimum, None)
