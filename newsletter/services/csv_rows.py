"""Reading a CSV file of people: the header, then each row checked like the signup form.

Nothing here touches the database; :mod:`newsletter.services.csv_import` writes the rows.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import BinaryIO

from newsletter.addresses import email_key
from newsletter.controls import has_controls
from newsletter.db import utcnow
from newsletter.isotime import parse_timestamp
from newsletter.models import SubscriberStatus
from newsletter.services.consent import SOURCE_URL_LENGTH
from newsletter.services.csv_export import EXPORT_COLUMNS, restore
from newsletter.services.errors import ServiceError
from newsletter.services.topics import BadSlug, check_slug
from newsletter.validation import InvalidValue, clean_email, clean_name

__all__ = [
    "EARLIEST_CONSENT",
    "MAX_COLUMNS",
    "NOTE_LENGTH",
    "OPTIONAL_COLUMNS",
    "REQUIRED_COLUMNS",
    "PeopleCSV",
    "Problem",
    "Row",
    "UTF8Lines",
    "UnreadableCSV",
    "clean_consent_note",
]

NOTE_LENGTH = 1000
# More than any file of people has; checking a header costs time in proportion to its width.
MAX_COLUMNS = 100
# Consent recorded before this is a typing slip (the web, and this kind of list, came later).
EARLIEST_CONSENT = datetime(1990, 1, 1, tzinfo=UTC)
REQUIRED_COLUMNS = ("email", "first_name", "last_name")
OPTIONAL_COLUMNS = ("consented_at", "source", "status", "topics")
# The export's other columns: an export imports as it is, these are simply not used.
IGNORED_EXPORT_COLUMNS = tuple(
    c for c in EXPORT_COLUMNS if c not in (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS)
)
# A consent date a little ahead of this machine's clock is a time zone slip; more is an error.
FUTURE_TOLERANCE = timedelta(days=1)
# Distinct names remembered as checked, per column, before the memory starts again.
REMEMBERED_NAMES = 65536


class UnreadableCSV(ServiceError, ValueError):
    """The file cannot be read on (no header, a required column missing, not UTF-8 CSV)."""


@dataclass(frozen=True)
class Row:
    """A row that passed the form's rules."""

    line: int
    email: str
    first_name: str
    last_name: str
    consented_at: datetime | None
    source: str | None
    file_status: str | None
    # Slugs of the topics chosen, in the file's order; whether they exist is the import's check.
    topics: tuple[str, ...] = ()
    # The case-folded address, computed once: every check of a batch looks it up.
    key: str = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "key", email_key(self.email))


@dataclass(frozen=True)
class Problem:
    """A row not imported: ``rejected`` ones are errors, the others were skipped on purpose."""

    line: int
    reason: str
    rejected: bool = True


def clean_consent_note(value: str | None) -> str:
    """How the people in a file consented: required, one line, at most ``NOTE_LENGTH``."""
    text = _text_without_controls(value or "", NOTE_LENGTH)
    if text is None:
        raise InvalidValue("is required: say how these people consented.")
    return text


def _text_without_controls(value: str, limit: int) -> str | None:
    text = value.strip()
    if not text:
        return None
    if has_controls(text):
        raise InvalidValue("contains characters that are not allowed (such as line breaks).")
    if len(text) > limit:
        raise InvalidValue(f"must be at most {limit} characters.")
    return text


class UTF8Lines:
    """The lines of a binary file as text, decoded one at a time.

    Decoding line by line (rather than through a text wrapper's large chunks) lets a byte that
    is not UTF-8 be reported with its line number, and ``bytes_read`` tells a progress bar how
    far along the file is. A leading byte order mark (as Excel writes) is dropped.
    """

    def __init__(self, stream: BinaryIO) -> None:
        self._stream = stream
        self.bytes_read = 0

    def __iter__(self) -> Iterator[str]:
        for number, raw in enumerate(self._stream, start=1):
            self.bytes_read += len(raw)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise UnreadableCSV(
                    f'line {number}: the file is not UTF-8 text; save it as "CSV UTF-8"'
                ) from None
            yield line.removeprefix("\ufeff") if number == 1 else line


class PeopleCSV:
    """The rows of a CSV file of people, each checked like the signup form checks it.

    The header is read (and checked) on creation. Iterating yields a :class:`Row` or a
    :class:`Problem` per non-blank row, with the line number where the row starts.
    """

    def __init__(self, lines: Iterable[str], now: datetime | None = None) -> None:
        self._reader = csv.reader(lines)
        self._now = now or utcnow()
        self._line = 0
        # Names repeat down a list (first names most of all): each distinct one that passed
        # is checked once, by label. A refused one is checked again, for its message.
        self._names: dict[str, dict[str, str]] = {}
        header = self._header()
        self.columns = {name: index for index, name in enumerate(header)}
        self.width = len(header)
        missing = [name for name in REQUIRED_COLUMNS if name not in self.columns]
        if missing:
            raise UnreadableCSV(
                f"the header has no {', '.join(missing)} column "
                f"(it must name {', '.join(REQUIRED_COLUMNS)})"
            )
        known = (*REQUIRED_COLUMNS, *OPTIONAL_COLUMNS, *IGNORED_EXPORT_COLUMNS)
        self.unknown_columns = [name for name in header if name and name not in known]

    def _next(self) -> list[str] | None:
        """The next record, or None at the end; turns reading errors into one clear error."""
        try:
            record = next(self._reader)
        except StopIteration:
            return None
        except UnicodeDecodeError:
            raise UnreadableCSV(
                f'line {self._line + 1}: the file is not UTF-8 text; save it as "CSV UTF-8"'
            ) from None
        except csv.Error as error:
            if "field larger than field limit" in str(error):
                # What a quote that is never closed usually leads to.
                message = (
                    f"line {self._line + 1}: a value in quotes in this row runs past "
                    f"{csv.field_size_limit():,} characters: is a closing quote missing?"
                )
                raise UnreadableCSV(message) from None
            raise UnreadableCSV(f"line {self._line + 1}: {error}") from None
        return record

    def _header(self) -> list[str]:
        while True:
            record = self._next()
            if record is None:
                raise UnreadableCSV("the file is empty: it needs a header row naming its columns")
            self._line = self._reader.line_num
            if any(cell.strip() for cell in record):
                break
        if len(record) > MAX_COLUMNS:
            raise UnreadableCSV(
                f"the header has {len(record):,} columns; at most {MAX_COLUMNS} are read "
                "(is this a file of people?)"
            )
        header = [cell.strip().lower() for cell in record]
        counts = Counter(name for name in header if name)
        repeated = sorted(name for name, count in counts.items() if count > 1)
        if repeated:
            raise UnreadableCSV(f"the header names {', '.join(repeated)} more than once")
        return header

    def __iter__(self) -> Iterator[Row | Problem]:
        while True:
            start = self._line + 1
            record = self._next()
            if record is None:
                return
            self._line = self._reader.line_num
            if not any(cell.strip() for cell in record):
                continue
            row = self._row(start, record)
            if isinstance(row, Problem) and self._line > start:
                row = self._runaway_quote(start, record) or row
            yield row

    def _runaway_quote(self, start: int, record: list[str]) -> Problem | None:
        """The problem of a row that a quote never closed (or closed far too late) ran into
        the rows after it, with the line it opened on; None for a value that merely holds a
        line break."""
        names = {index: name for name, index in self.columns.items()}
        opened = start
        for index, value in enumerate(record):
            later_lines = value.split("\n")[1:]
            if any("," in text for text in later_lines):
                column = names.get(index) or f"column {index + 1}"
                reason = (
                    f"the {column} value in quotes opens on line {opened} and runs to line "
                    f"{self._line}, taking in {self._line - opened:,} more lines: is a closing "
                    "quote missing?"
                )
                return Problem(start, reason)
            opened += len(later_lines)
        return None

    def _cell(self, record: list[str], column: str) -> str:
        index = self.columns.get(column)
        if index is None or index >= len(record):
            return ""
        return restore(record[index])

    def _row(self, line: int, record: list[str]) -> Row | Problem:
        if len(record) > self.width:
            return Problem(
                line,
                f"has {len(record)} values but the header names {self.width} columns "
                "(a comma in a value that is not in quotes?)",
            )
        column = "email"
        try:
            email = clean_email(self._cell(record, column))
            column = "first_name"
            first_name = self._name(self._cell(record, column), "First name")
            column = "last_name"
            last_name = self._name(self._cell(record, column), "Last name")
            column = "consented_at"
            consented_at = self._consented_at(self._cell(record, column))
            column = "source"
            source = _text_without_controls(self._cell(record, column), SOURCE_URL_LENGTH)
            column = "status"
            file_status = self._file_status(self._cell(record, column))
            column = "topics"
            topics = _topics(self._cell(record, column))
        except InvalidValue as error:
            return Problem(line, f"{column}: {error}")
        return Row(line, email, first_name, last_name, consented_at, source, file_status, topics)

    def _name(self, value: str, label: str) -> str:
        checked = self._names.setdefault(label, {})
        text = checked.get(value)
        if text is None:
            text = clean_name(value, label)
            if len(checked) >= REMEMBERED_NAMES:
                checked.clear()
            checked[value] = text
        return text

    def _consented_at(self, value: str) -> datetime | None:
        if not value.strip():
            return None
        try:
            moment = parse_timestamp(value)
        except ValueError:
            raise InvalidValue(
                f"{value.strip()!r} is not an ISO 8601 date or time (such as 2024-03-01T09:30:00Z)."
            ) from None
        if moment > self._now + FUTURE_TOLERANCE:
            raise InvalidValue("is in the future.")
        if moment < EARLIEST_CONSENT:
            raise InvalidValue(f"{value.strip()} is before 1990: is the date right?")
        return moment

    @staticmethod
    def _file_status(value: str) -> str | None:
        text = value.strip().lower()
        if not text:
            return None
        if text not in {status.value for status in SubscriberStatus}:
            allowed = ", ".join(status.value for status in SubscriberStatus)
            raise InvalidValue(f"{value.strip()!r} is not one of {allowed}.")
        return text


def _topics(value: str) -> tuple[str, ...]:
    """Topic slugs separated by spaces (or commas), each once, in order."""
    slugs: dict[str, None] = {}
    for slug in value.replace(",", " ").split():
        try:
            slugs[check_slug(slug)] = None
        except BadSlug as error:
            raise InvalidValue(str(error)) from None
    return tuple(slugs)
