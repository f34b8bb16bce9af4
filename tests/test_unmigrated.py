"""Before ``newsletter db upgrade``, every command says so in one line, never a traceback.

The commands are found by walking the console script's command tree, so a command added
later is run here too without anyone listing it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from pathlib import Path

import click
import pytest
from click.testing import CliRunner
from flask import Flask
from flask.cli import ScriptInfo
from sqlalchemy import text

from newsletter import create_app
from newsletter.app_db import get_engine, get_session
from newsletter.cli.main import cli

ROOT = Path(__file__).resolve().parents[1]
MISSING_SCHEMA = "Error: the database has no tables yet; run `newsletter db upgrade` first"

# Commands that work without the schema, with the first line each prints on an empty instance.
WITHOUT_SCHEMA = {
    ("db", "current"): "empty: behind (newest is",
    ("dkim", "generate"): "Wrote a new RSA-2048 key to",
    ("outbox", "show"): "No messages in the outbox",
    ("routes",): "Endpoint",
}
# Not run: `db upgrade` creates the schema; `run` and `shell` wait for a visitor or a person.
NOT_RUN = {("db", "upgrade"), ("run",), ("shell",)}
# What each argument is given, by its name.
SAMPLE_ARGUMENTS = {
    "digest_id": "1",
    "email": "ada@example.org",
    "file": "people.csv",
    "slug": "north-korea",
    "source": str(ROOT / "examples" / "feed.xml"),
}
# Options without which a command would stop before it reaches the database.
EXTRA_OPTIONS = {
    ("subscribers", "import"): ["--consent-note", "paper form at the 2024 AGM"],
    ("subscribers", "erase"): ["--yes"],
    ("topics", "add"): ["--name", "North Korea"],
    ("dkim", "generate"): ["--selector", "news2026"],
}


@pytest.fixture
def empty_app(empty_database_url: str, tmp_path: Path) -> Iterator[Flask]:
    app = create_app(
        {
            "INSTANCE_PATH": str(tmp_path / "instance"),
            "DATABASE_URL": empty_database_url,
            "MAIL_URL": f"maildir://{tmp_path / 'outbox'}",
            "WTF_CSRF_ENABLED": False,
        }
    )
    yield app
    get_engine(app).dispose()


def leaf_commands(
    group: click.Group, context: click.Context, path: tuple[str, ...] = ()
) -> Iterator[tuple[tuple[str, ...], click.Command]]:
    for name in group.list_commands(context):
        command = group.get_command(context, name)
        assert command is not None, name
        if isinstance(command, click.Group):
            yield from leaf_commands(command, context, (*path, name))
        else:
            yield (*path, name), command


def arguments(path: tuple[str, ...], command: click.Command) -> list[str]:
    given = list(EXTRA_OPTIONS.get(path, []))
    for parameter in command.params:
        if isinstance(parameter, click.Argument):
            assert parameter.name in SAMPLE_ARGUMENTS, f"give {path}'s {parameter.name} a sample"
            given.append(SAMPLE_ARGUMENTS[parameter.name])
    return given


def test_every_command_names_the_missing_schema_in_one_line(
    empty_app: Flask, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    Path("people.csv").write_text("email,first_name,last_name\nada@example.org,Ada,Lovelace\n")
    info = ScriptInfo(create_app=lambda: empty_app)
    with click.Context(cli, obj=info) as context:
        commands = dict(leaf_commands(cli, context))
    assert ("subscribers", "stats") in commands and ("digest", "send") in commands

    printed: dict[tuple[str, ...], tuple[int, list[str]]] = {}
    for path, command in sorted(commands.items()):
        if path in NOT_RUN:
            continue
        result = CliRunner().invoke(cli, [*path, *arguments(path, command)], obj=info)
        lines = result.output.splitlines()
        if result.exception is not None and not isinstance(result.exception, SystemExit):
            # What a person would have seen: the traceback of an error nothing caught.
            lines.append(f"Traceback: {result.exception!r}")
        printed[path] = (result.exit_code, lines)

    wrong = {}
    for path, (exit_code, lines) in printed.items():
        if path in WITHOUT_SCHEMA:
            ok = exit_code == 0 and lines[0].startswith(WITHOUT_SCHEMA[path])
        else:
            ok = exit_code == 1 and lines == [MISSING_SCHEMA]
        if not ok or any("Traceback" in line for line in lines):
            wrong[" ".join(path)] = (exit_code, lines[:3])
    assert wrong == {}, "\n".join(f"{k}: {v}" for k, v in wrong.items())
    assert set(WITHOUT_SCHEMA) <= set(printed)


@pytest.mark.parametrize("request_path", ["/digests/1", "/subscribe"])
def test_web_answers_a_page_and_logs_one_line(
    empty_app: Flask, caplog: pytest.LogCaptureFixture, request_path: str
) -> None:
    client = empty_app.test_client()
    if request_path == "/subscribe":
        form = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}
        response = client.post(
            request_path,
            data={**form, "consent": "y", "topics": ["asylum", "prisons"]},
            headers={"Origin": "http://localhost"},
        )
    else:
        response = client.get(request_path)
    # The error page, or on a signup the form again with what was typed.
    assert response.status_code == 503
    page = response.get_data(as_text=True)
    assert "Traceback" not in page and "no such table" not in page
    logged = [record for record in caplog.records if record.levelno >= logging.WARNING]
    assert [record.exc_info for record in logged] == [None]
    assert logged[0].getMessage().endswith(MISSING_SCHEMA.removeprefix("Error: "))
    assert "\n" not in logged[0].getMessage()
    if request_path == "/subscribe" and response.mimetype == "text/html" and "<form" in page:
        # The topics ticked go along with the form, unseen, so that sending it again keeps them.
        for slug in ["asylum", "prisons"]:
            assert f'<input type="hidden" name="topics" value="{slug}">' in page


def test_other_programming_errors_stay_500_with_their_traceback(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    app = make_app(TESTING=False)

    @app.get("/test-only/bad-sql")
    def bad_sql() -> str:
        # Two statements in one: a programming error on both databases.
        get_session().execute(text("SELECT :x; SELECT 2"), {"x": 1})
        return "unreachable"

    response = app.test_client().get("/test-only/bad-sql")
    assert response.status_code == 500
    assert "Traceback" not in response.get_data(as_text=True)
    assert any(record.exc_info for record in caplog.records)
