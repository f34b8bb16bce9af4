"""The subscriber list as CSV, streamed from the database a thousand rows at a time.

Cells that a spreadsheet would run as a formula (OWASP "CSV injection") get a leading single
quote; the import takes it off again, so an export imports back unchanged.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Iterator, Sequence
from itertools import islice
from typing import TextIO

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.isotime import iso_utc
from newsletter.models import Subscriber
from newsletter.services.topics import topics_of

__all__ = [
    "EXPORT_COLUMNS",
    "FORMULA_STARTS",
    "count_subscribers",
    "export_rows",
    "neutralise",
    "restore",
    "write_csv",
]

EXPORT_COLUMNS = (
    "email",
    "first_name",
    "last_name",
    "status",
    "created_at",
    "confirmed_at",
    "unsubscribed_at",
    # The slugs of the topics the person chose, separated by spaces; empty for everything.
    "topics",
)
# Characters that make Excel, LibreOffice or Google Sheets treat a cell as a formula (or, for
# tab and CR, that hide one behind leading whitespace).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")
FETCH_SIZE = 1000


def neutralise(value: str) -> str:
    """``value`` with a leading ``'`` when it starts like a formula."""
    return f"'{value}" if value.startswith(FORMULA_STARTS) else value


def restore(value: str) -> str:
    """Undo :func:`neutralise`: the quote goes only when it stands before a formula start."""
    if value.startswith("'") and value[1:].startswith(FORMULA_STARTS):
        return value[1:]
    return value


def count_subscribers(session: Session, statuses: Sequence[str] = ()) -> int:
    """How many rows an export with these statuses writes."""
    query = select(func.count()).select_from(Subscriber)
    if statuses:
        query = query.where(Subscriber.status.in_(list(statuses)))
    return session.scalar(query) or 0


def export_rows(session: Session, statuses: Sequence[str] = ()) -> Iterator[list[str]]:
    """One list of cells per subscriber, oldest first, neutralised and ready for a CSV writer.

    ``yield_per`` makes the database hand rows over in batches (a server-side cursor on
    PostgreSQL), so memory stays flat however long the list is.
    """
    query = select(
        Subscriber.id,
        Subscriber.email,
        Subscriber.first_name,
        Subscriber.last_name,
        Subscriber.status,
        Subscriber.created_at,
        Subscriber.confirmed_at,
        Subscriber.unsubscribed_at,
    ).order_by(Subscriber.id)
    if statuses:
        query = query.where(Subscriber.status.in_(list(statuses)))
    result = session.execute(query.execution_options(yield_per=FETCH_SIZE))
    # Topics are looked up a batch of people at a time, beside the streamed rows. Slugs are
    # lower-case letters, digits and hyphens: a hyphen may start one, hence neutralise.
    rows = iter(result)
    while batch := list(islice(rows, FETCH_SIZE)):
        chosen = topics_of(session, [row[0] for row in batch])
        for subscriber_id, email, first, last, status, created, confirmed, unsubscribed in batch:
            yield [
                neutralise(email),
                neutralise(first),
                neutralise(last),
                neutralise(status),
                iso_utc(created),
                iso_utc(confirmed) if confirmed else "",
                iso_utc(unsubscribed) if unsubscribed else "",
                neutralise(" ".join(chosen.get(subscriber_id, ()))),
            ]


def write_csv(
    session: Session,
    out: TextIO,
    statuses: Sequence[str] = (),
    progress: Callable[[int], None] | None = None,
) -> int:
    """Write the header and every matching subscriber to ``out``; returns the row count.

    ``out`` must be opened with ``newline=""`` (the csv module writes CRLF itself).
    """
    writer = csv.writer(out)
    writer.writerow(EXPORT_COLUMNS)
    written = 0
    for row in export_rows(session, statuses):
        writer.writerow(row)
        written += 1
        if progress is not None and written % FETCH_SIZE == 0:
            progress(FETCH_SIZE)
    if progress is not None:
        progress(written % FETCH_SIZE)
    return written
