"""Numbers typed on the command line: ids no row can have are "not found" in one line, and
counts past what any database holds mean "all", on both databases."""

from __future__ import annotations

from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskCliRunner

EXAMPLE = Path(__file__).parent.parent / "examples" / "feed.xml"
# Past PostgreSQL's INTEGER, past SQLite's 64-bit INTEGER, and far past both.
OUT_OF_RANGE = ["2147483648", "9223372036854775808", "1" + "0" * 40]


def one_line(output: str) -> str:
    lines = output.splitlines()
    assert len(lines) == 1, output
    return lines[0]


@pytest.mark.parametrize("number", OUT_OF_RANGE)
@pytest.mark.parametrize("command", ["status", "preview", "send"])
def test_digest_ids_out_of_range_are_not_found(app: Flask, command: str, number: str) -> None:
    result = app.test_cli_runner().invoke(args=["digest", command, number])
    assert result.exit_code == 1, result.output
    assert one_line(result.output) == (
        f"Error: no digest with id {number}; `newsletter digest create` makes one"
    )


@pytest.mark.parametrize("number", ["0", "abc", "1.5", ""])
def test_a_digest_id_that_is_not_a_positive_whole_number(app: Flask, number: str) -> None:
    result = app.test_cli_runner().invoke(args=["digest", "status", number])
    assert result.exit_code in (1, 2), result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith("Error: ")


@pytest.mark.parametrize(
    "args",
    [
        ["articles", "list", "--limit"],
        ["subscribers", "list", "--limit"],
        ["subscribers", "stats", "--digests"],
    ],
)
def test_huge_counts_mean_all(runner: FlaskCliRunner, args: list[str]) -> None:
    for number in OUT_OF_RANGE:
        result = runner.invoke(args=[*args, number])
        assert result.exit_code == 0, result.output
        assert result.exception is None


def test_a_huge_max_for_a_digest_takes_every_article(runner: FlaskCliRunner) -> None:
    result = runner.invoke(args=["digest", "create", "--max", OUT_OF_RANGE[1]])
    # No article yet: the ordinary "nothing new", not a database error.
    assert result.exit_code == 1
    assert one_line(result.output).startswith("Error: nothing new")


def test_import_limits_past_any_sensible_value(runner: FlaskCliRunner) -> None:
    huge = runner.invoke(args=["articles", "import", str(EXAMPLE), "--max-bytes", "9" * 30])
    assert huge.exit_code == 0, huge.output
    assert "6 added" in huge.output
    for timeout in ("nan", "inf", "1e300"):
        result = runner.invoke(args=["articles", "import", str(EXAMPLE), "--timeout", timeout])
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Invalid value for '--timeout'" in result.output.splitlines()[-1]


@pytest.mark.parametrize("command", [["digest", "send", "1"], ["digest", "auto", "--dry-run"]])
def test_a_rate_that_is_not_a_number_is_refused(runner: FlaskCliRunner, command: list[str]) -> None:
    # FloatRange lets "nan" through, and the token bucket then quietly sends without a cap.
    for rate in ("nan", "inf", "-inf"):
        result = runner.invoke(args=[*command, "--rate", rate])
        assert result.exit_code == 2, result.output
        assert result.exception is None or isinstance(result.exception, SystemExit)
        assert "Invalid value for '--rate'" in result.output.splitlines()[-1]
