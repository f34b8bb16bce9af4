"""ISO 8601 times in UTC, as exports, JSON and imports write and read them."""

from __future__ import annotations

from datetime import UTC, datetime

__all__ = ["iso_utc", "parse_timestamp"]


def iso_utc(value: datetime) -> str:
    """``2026-11-27T09:30:00Z``: second precision, always UTC, readable by any tool."""
    return value.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_timestamp(text: str) -> datetime:
    """An ISO 8601 date or date-time; one without a zone is taken to be UTC.

    Raises ``ValueError`` for anything else.
    """
    value = datetime.fromisoformat(text.strip())
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    try:
        return value.astimezone(UTC)
    except OverflowError:
        # 0001-01-01T00:00+01:00 is a moment before the first one a datetime can hold.
        raise ValueError(f"{text!r} is outside the calendar") from None
