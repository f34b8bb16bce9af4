"""The ``newsletter`` console script's own options: its version, its help, and a bad setting."""

from __future__ import annotations

from importlib.metadata import version
from pathlib import Path

import pytest

from tests.support.console import newsletter


def test_version_is_the_newsletters(tmp_path: Path) -> None:
    result = newsletter("--version", instance=tmp_path / "instance")
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"newsletter {version('newsletter')}\n"
    assert result.stderr == ""


def test_help_shows_only_what_means_something_here(tmp_path: Path) -> None:
    result = newsletter("--help", instance=tmp_path / "instance")
    assert result.returncode == 0, result.stderr
    options = result.stdout.split("Options:")[1].split("Commands:")[0]
    assert "--version" in options and "--debug" in options and "--help" in options
    for meaningless in ("--app", "-A,", "--env-file", "-e,", "dotenv", "Flask"):
        assert meaningless not in options
    commands = result.stdout.split("Commands:")[1]
    listed = {line.split()[0] for line in commands.splitlines() if line.strip()}
    assert {"db", "articles", "digest", "outbox", "subscribers", "run"} <= listed
    assert "limiter" not in listed


def test_flask_app_options_are_refused(tmp_path: Path) -> None:
    result = newsletter("--app", "other:app", "db", "current", instance=tmp_path / "instance")
    assert result.returncode == 2
    assert "Error: No such option '--app'" in result.stderr


@pytest.mark.parametrize(
    "command",
    [["--help"], ["run", "--help"], ["db", "--help"], ["subscribers", "stats", "--help"]],
)
def test_a_bad_setting_stops_even_help(tmp_path: Path, command: list[str]) -> None:
    result = newsletter(
        *command, instance=tmp_path / "instance", settings={"NEWSLETTER_SEND_LEASE": "abc"}
    )
    assert result.returncode == 1
    assert result.stdout == ""
    assert result.stderr.splitlines() == [
        "Error: NEWSLETTER_SEND_LEASE: expected a positive whole number, got 'abc'"
    ]


def test_version_needs_no_settings(tmp_path: Path) -> None:
    result = newsletter(
        "--version", instance=tmp_path / "instance", settings={"NEWSLETTER_SEND_LEASE": "abc"}
    )
    assert result.returncode == 0
    assert result.stdout.startswith("newsletter ")
