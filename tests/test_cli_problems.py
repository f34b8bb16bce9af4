"""What a new user gets wrong at the command line ends in one ``Error:`` line and a non-zero
exit, never a traceback: files that are missing or unreadable, a database that cannot be
opened or reached, an instance folder that cannot be written, a schema from a newer version.

Run through the installed console script, as a person would.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from newsletter.db import create_db_engine
from tests.support.console import newsletter
from tests.support.smtp import free_port

ROOT = Path(__file__).resolve().parents[1]
FEED = str(ROOT / "examples" / "feed.xml")


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    """The single line a failed command printed, checked to be just that."""
    assert result.returncode == 1, (result.stdout, result.stderr)
    assert "Traceback" not in result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ")
    return lines[0]


@pytest.fixture(scope="module")
def instance(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An instance folder with a migrated SQLite database and a readable CSV file beside it."""
    folder = tmp_path_factory.mktemp("problems") / "instance"
    assert newsletter("db", "upgrade", instance=folder).returncode == 0
    (folder.parent / "people.csv").write_text("email,first_name,last_name\n")
    return folder


@pytest.fixture
def unreadable(instance: Path) -> Iterator[Path]:
    path = instance.parent / "secret.csv"
    path.write_text("email,first_name,last_name\n")
    path.chmod(0)
    yield path
    path.unlink()


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["articles", "import", "missing.xml"], "Error: cannot import missing.xml: no such file"),
        (
            ["subscribers", "import", "missing.csv", "--status", "pending"],
            "Error: cannot read missing.csv: No such file or directory",
        ),
        (
            ["subscribers", "import", ".", "--status", "pending"],
            "Error: cannot read .: Is a directory",
        ),
    ],
)
def test_a_missing_file(instance: Path, command: list[str], expected: str) -> None:
    assert one_error_line(newsletter(*command, instance=instance)) == expected


@pytest.mark.parametrize(
    ("command", "expected"),
    [
        (["articles", "import"], "Error: cannot import {path}: cannot read the file: "),
        (["subscribers", "import", "--status", "pending"], "Error: cannot read {path}: "),
    ],
)
def test_an_unreadable_file(
    instance: Path, unreadable: Path, command: list[str], expected: str
) -> None:
    # The file argument goes right after the command's name.
    arguments = [*command[:2], str(unreadable), *command[2:]]
    line = one_error_line(newsletter(*arguments, instance=instance, obey_permissions=True))
    assert line == expected.format(path=unreadable) + "Permission denied"


@pytest.mark.parametrize("command", [["db", "upgrade"], ["subscribers", "stats"]])
def test_a_database_file_in_a_missing_folder(tmp_path: Path, command: list[str]) -> None:
    url = f"sqlite:///{tmp_path / 'no-such-folder' / 'newsletter.db'}"
    result = newsletter(
        *command, instance=tmp_path / "instance", settings={"NEWSLETTER_DATABASE_URL": url}
    )
    assert one_error_line(result) == (
        f"Error: cannot open the database {url}: unable to open database file "
        "(its folder must exist and be writable)"
    )


@pytest.mark.parametrize(
    "command", [["db", "upgrade"], ["db", "current"], ["digest", "status", "1"]]
)
def test_an_unreachable_postgresql(tmp_path: Path, command: list[str]) -> None:
    port = free_port()
    url = f"postgresql+psycopg://news:hunter2@127.0.0.1:{port}/newsletter"
    result = newsletter(
        *command, instance=tmp_path / "instance", settings={"NEWSLETTER_DATABASE_URL": url}
    )
    line = one_error_line(result)
    assert line.startswith(
        f"Error: cannot open the database postgresql+psycopg://news:***@127.0.0.1:{port}/"
        "newsletter: connection failed: "
    )
    assert "Connection refused" in line and "hunter2" not in line


def test_a_read_only_new_instance_folder(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    folder.mkdir(mode=0o555)
    result = newsletter("db", "upgrade", instance=folder, obey_permissions=True)
    line = one_error_line(result)
    assert line.startswith(f"Error: cannot write {folder}/")
    assert line.endswith(
        ": Permission denied; the instance folder (NEWSLETTER_INSTANCE_PATH) must be writable"
    )


@pytest.mark.parametrize("command", [["subscribers", "stats"], ["articles", "import", FEED]])
def test_a_read_only_instance_folder_with_its_database(tmp_path: Path, command: list[str]) -> None:
    folder = tmp_path / "instance"
    assert newsletter("db", "upgrade", instance=folder).returncode == 0
    folder.chmod(0o555)
    try:
        result = newsletter(*command, instance=folder, obey_permissions=True)
    finally:
        folder.chmod(0o755)
    assert one_error_line(result) == (
        f"Error: cannot open the database sqlite:///{folder / 'newsletter.db'}: attempt to "
        "write a readonly database (the file and its folder must be writable)"
    )


def test_a_schema_from_a_newer_version(tmp_path: Path) -> None:
    folder = tmp_path / "instance"
    assert newsletter("db", "upgrade", instance=folder).returncode == 0
    engine = create_db_engine(f"sqlite:///{folder / 'newsletter.db'}")
    with engine.begin() as connection:
        connection.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    engine.dispose()
    line = one_error_line(newsletter("db", "upgrade", instance=folder))
    assert line.startswith(
        "Error: the database schema is at revision 9999, which this version of newsletter "
        "does not know (its newest is "
    )


@pytest.mark.parametrize("command", [["db", "upgrade"], ["articles", "import", FEED]])
def test_a_command_leaves_everything_in_the_database_file(
    tmp_path: Path, command: list[str]
) -> None:
    # SQLite folds its write-ahead log back into the file when the last connection closes; a
    # command that exits with its connections open leaves its work in a -wal file beside it,
    # which a copy of the database file alone would lose.
    folder = tmp_path / "instance"
    if command[0] != "db":
        assert newsletter("db", "upgrade", instance=folder).returncode == 0
    assert newsletter(*command, instance=folder).returncode == 0
    assert not (folder / "newsletter.db-wal").exists()
    assert not (folder / "newsletter.db-shm").exists()
