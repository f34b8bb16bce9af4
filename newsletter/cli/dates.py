"""Dates typed on the command line (``--since``): in UTC unless an offset is given."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import click

__all__ = ["DATE_FORMATS", "UtcDate"]

DATE_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M", "%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S%z"]


class UtcDate(click.DateTime):
    """A date, or a date and time, always handed on with its zone: UTC when none is typed."""

    def __init__(self) -> None:
        super().__init__(formats=DATE_FORMATS)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        moment: datetime = super().convert(value, param, ctx)
        return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)
