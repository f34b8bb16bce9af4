"""Progress on a terminal: a bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import io
import sys
from typing import Any, BinaryIO

import click

__all__ = ["CountingReader", "progress_bar"]


class CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read from it, for a progress bar by bytes."""

    def __init__(self, raw: BinaryIO) -> None:
        super().__init__()
        self._raw = raw
        self.count = 0

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        data = self._raw.read(len(buffer))
        size = len(data)
        buffer[:size] = data
        self.count += size
        return size

    def close(self) -> None:
        self._raw.close()
        super().close()


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
