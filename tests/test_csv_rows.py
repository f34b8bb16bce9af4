"""Reading a CSV file of people: limits on the header, runaway quotes and consent dates."""

from __future__ import annotations

import io
from datetime import UTC, datetime

import pytest

from newsletter.services.csv_rows import (
    MAX_COLUMNS,
    PeopleCSV,
    Problem,
    Row,
    UnreadableCSV,
    UTF8Lines,
    clean_consent_note,
)
from newsletter.validation import InvalidValue

NOW = datetime(2025, 6, 1, 12, 0, tzinfo=UTC)


def read(text: str) -> list[Row | Problem]:
    lines = UTF8Lines(io.BytesIO(text.encode()))
    return list(PeopleCSV(lines, now=NOW))


def test_a_header_with_too_many_columns_is_one_error() -> None:
    columns = ",".join(f"column{number}" for number in range(100_000))
    with pytest.raises(UnreadableCSV) as refused:
        read(f"email,first_name,last_name,{columns}\na@example.org,A,B\n")
    assert str(refused.value) == (
        f"the header has 100,003 columns; at most {MAX_COLUMNS} are read "
        "(is this a file of people?)"
    )


def test_as_many_columns_as_allowed_are_fine() -> None:
    extra = ",".join(f"column{number}" for number in range(MAX_COLUMNS - 3))
    [row] = read(f"email,first_name,last_name,{extra}\na@example.org,A,B\n")
    assert isinstance(row, Row)


def test_a_stray_quote_names_the_line_it_opened_on() -> None:
    others = "".join(f"person{number}@example.org,P,{number}\n" for number in range(2_000))
    text = 'email,first_name,last_name\nada@example.org,Ada,L\nbob@example.org,"Bob,S\n' + others
    good, swallowed = read(text)
    assert isinstance(good, Row) and good.line == 2
    assert isinstance(swallowed, Problem) and swallowed.line == 3
    assert swallowed.reason.endswith(
        "the first_name value in quotes opens on line 3 and runs to line 2003, taking in "
        "2,000 more lines: is a closing quote missing?"
    )


def test_a_quote_that_closes_far_away_is_named_too() -> None:
    others = "".join(f"person{number}@example.org,P,{number}\n" for number in range(5))
    text = (
        'email,first_name,last_name,note\nbob@example.org,Bob,S,"says hi\n'
        + others
        + 'carol@example.org,"Carol",C,x\n'
    )
    # The quote before "Carol" closes it: Carol's row is part of the runaway one.
    [swallowed] = read(text)
    assert isinstance(swallowed, Problem) and swallowed.line == 2
    assert swallowed.reason == (
        "the note value in quotes opens on line 2 and runs to line 8, taking in 6 more lines: "
        "is a closing quote missing?"
    )


def test_a_quoted_line_break_that_closes_at_once_is_not_called_a_stray_quote() -> None:
    [row] = read('email,first_name,last_name\nbob@example.org,"Bo\nb",S\n')
    assert isinstance(row, Problem)
    assert row.reason == (
        "first_name: This contains characters that are not allowed (such as line breaks)."
    )


def test_a_value_too_long_for_the_reader_is_one_error() -> None:
    text = 'email,first_name,last_name\nbob@example.org,"Bob,S\n' + "x,y,z\n" * 40_000
    message = r"^line 2: a value in quotes in this row runs past 131,072 characters: is a "
    with pytest.raises(UnreadableCSV, match=message + "closing quote missing\\?$"):
        read(text)


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("0001-01-01", "consented_at: 0001-01-01 is before 1990: is the date right?"),
        ("1989-12-31T23:59:59Z", "consented_at: 1989-12-31T23:59:59Z is before 1990"),
        ("2025-06-03", "consented_at: is in the future."),
        # Before the first moment a datetime can hold, once the offset is taken away.
        (
            "0001-01-01T00:00+14:00",
            "consented_at: '0001-01-01T00:00+14:00' is not an ISO 8601 date or time",
        ),
    ],
)
def test_consent_dates_before_1990_or_in_the_future_are_refused(value: str, problem: str) -> None:
    [row] = read(f"email,first_name,last_name,consented_at\nbob@example.org,Bob,S,{value}\n")
    assert isinstance(row, Problem) and row.line == 2
    assert row.reason.startswith(problem)


@pytest.mark.parametrize("value", ["1990-01-01", "1990-01-01T00:00:00Z", "2025-06-02"])
def test_consent_dates_from_1990_to_now_are_kept(value: str) -> None:
    [row] = read(f"email,first_name,last_name,consented_at\nbob@example.org,Bob,S,{value}\n")
    assert isinstance(row, Row)
    assert row.consented_at is not None


@pytest.mark.parametrize("separator", ["\n", "\u2028", "\u2029", "\x85"])
def test_a_consent_note_with_a_line_break_of_any_kind_is_refused(separator: str) -> None:
    with pytest.raises(InvalidValue, match="not allowed"):
        clean_consent_note(f"Paper form{separator}Bcc: someone@example.net")


def test_names_that_repeat_are_kept_or_refused_on_every_row(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # A small memory of checked names, so that it fills and starts again within the file.
    monkeypatch.setattr("newsletter.services.csv_rows.REMEMBERED_NAMES", 2)
    names = ["Ada", " Zoë ", "<b>Eve</b>", "Ada", "Bo", "Zoë", "<b>Eve</b>", "Ada"]
    text = "email,first_name,last_name\n" + "".join(
        f"p{number}@example.org,{name},Ada\n" for number, name in enumerate(names)
    )
    rows = read(text)
    refused = "first_name: First name cannot contain markup (<, > or =?)."
    assert [row.first_name if isinstance(row, Row) else row.reason for row in rows] == [
        "Ada",
        "Zoë",
        refused,
        "Ada",
        "Bo",
        "Zoë",
        refused,
        "Ada",
    ]
    assert all(row.last_name == "Ada" for row in rows if isinstance(row, Row))
