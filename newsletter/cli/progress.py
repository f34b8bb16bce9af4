"""Progress on a terminal: a bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
from typing import Any

import click

__all__ = ["progress_bar"]


def progress_bar(length: int, label: str) -> Any:
    """A click progress bar over ``length`` steps on stderr; silent when it is not a terminal,
    so logs and pipes get only the summary line."""
    return click.progressbar(
        length=length,
        label=label,
        file=sys.stderr,
        hidden=not sys.stderr.isatty(),
        show_eta=True,
        show_percent=True,
    )
