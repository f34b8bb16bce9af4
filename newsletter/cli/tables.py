"""Plain-text tables, counts by state and sparklines for terminal output."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from newsletter.models import DeliveryStatus

__all__ = ["RUN_STATES", "first_words", "format_table", "sparkline", "state_counts"]

# The order a run (a send, an outbox flush) reports its deliveries in: outcomes first, then
# what is left for the next run.
RUN_STATES = (
    DeliveryStatus.SENT,
    DeliveryStatus.FAILED,
    DeliveryStatus.SKIPPED,
    DeliveryStatus.UNKNOWN,
    DeliveryStatus.QUEUED,
)

SPARKS = "▁▂▃▄▅▆▇█"


def format_table(
    headers: Sequence[str], rows: Sequence[Sequence[object]], indent: str = ""
) -> list[str]:
    """Lines of a left-aligned table; numbers are right-aligned and grouped (1,234)."""
    cells = [[_cell(value) for value in row] for row in rows]
    numeric = [
        bool(rows) and all(isinstance(row[column], int) for row in rows)
        for column in range(len(headers))
    ]
    widths = [
        max([len(header), *(len(row[column]) for row in cells)])
        for column, header in enumerate(headers)
    ]

    def line(values: Sequence[str]) -> str:
        parts = [
            value.rjust(width) if right else value.ljust(width)
            for value, width, right in zip(values, widths, numeric, strict=True)
        ]
        return (indent + "  ".join(parts)).rstrip()

    return [line(list(headers)), *(line(row) for row in cells)]


def _cell(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def state_counts(
    counts: Mapping[str, int],
    states: Iterable[str],
    *,
    form: str = "{state} {count}",
    separator: str = ", ",
    names: Mapping[str, str] | None = None,
    skip_zero: bool = False,
) -> str:
    """A count per state, in the order of ``states``, each written by ``form``.

    ``names`` renames states for the reader; ``skip_zero`` leaves out states with none, and
    then nothing at all is "" (callers say "none" in their own words).
    """
    names = names or {}
    entries = [(str(state), counts.get(state, 0)) for state in states]
    return separator.join(
        form.format(state=names.get(state, state), count=count)
        for state, count in entries
        if count or not skip_zero
    )


def sparkline(values: Sequence[int]) -> str:
    """One block character per value, scaled to the largest; zero is the lowest block."""
    top = max(values, default=0)
    if top <= 0:
        return SPARKS[0] * len(values)
    steps = len(SPARKS) - 1
    # Any non-zero value gets at least the second block, so it never looks like zero.
    return "".join(
        SPARKS[0] if value <= 0 else SPARKS[max(1, round(value / top * steps))] for value in values
    )


def first_words(text: str, words: int = 8) -> str:
    """The start of ``text``, with an ellipsis when words were left out."""
    parts = text.split()
    head = " ".join(parts[:words])
    return head + "…" if len(parts) > words else head
