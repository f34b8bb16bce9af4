"""The built wheel carries templates, migrations and static files, and works once installed
into a plain virtual environment, from any directory."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SHIPPED = [
    "newsletter/templates/signup.html",
    "newsletter/templates/thanks.html",
    "newsletter/templates/email/confirm.html",
    "newsletter/templates/email/confirm.txt",
    "newsletter/migrations/env.py",
    "newsletter/migrations/script.py.mako",
    "newsletter/migrations/versions/0001_initial_schema.py",
    "newsletter/static/style.css",
]

# Serves the form and a signup from the installed package, with no source tree in sight.
SMOKE = """
import re, sys
import newsletter
from newsletter import create_app
assert "site-packages" in newsletter.__file__, newsletter.__file__
app = create_app()
client = app.test_client()
page = client.get("/subscribe")
assert page.status_code == 200 and b"Sign up for updates" in page.data
assert client.get("/static/style.css").status_code == 200
token = re.search(rb'name="csrf_token" type="hidden" value="([^"]+)"', page.data).group(1)
answer = client.post("/subscribe", data={
    "csrf_token": token.decode(), "first_name": "Ada", "last_name": "Lovelace",
    "email": "ada@example.org", "consent": "y",
})
assert answer.status_code == 303, answer.status_code
print("served from", newsletter.__file__)
"""


def run(
    command: list[str], env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, capture_output=True, text=True, timeout=600, check=False, env=env, cwd=cwd
    )


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("wheel")
    built = run(
        [sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "-w", str(folder), str(ROOT)]
    )
    assert built.returncode == 0, built.stderr
    [found] = folder.glob("newsletter-*.whl")
    return found


def test_wheel_contains_templates_migrations_and_static_files(wheel: Path) -> None:
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
    missing = [name for name in SHIPPED if name not in names]
    assert missing == []
    assert not [name for name in names if "__pycache__" in name or name.endswith(".pyc")]
    entry_points = next(name for name in names if name.endswith("entry_points.txt"))
    with zipfile.ZipFile(wheel) as archive:
        assert "newsletter = newsletter.cli.main:main" in archive.read(entry_points).decode()


def test_installed_wheel_runs_from_any_directory(wheel: Path, tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    created = run([sys.executable, "-m", "venv", str(venv)])
    assert created.returncode == 0, created.stderr
    environment = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("NEWSLETTER_") and key not in {"PYTHONPATH", "VIRTUAL_ENV"}
    }
    installed = run(
        [str(venv / "bin" / "python"), "-m", "pip", "install", "-q", str(wheel)],
        env=environment,
    )
    assert installed.returncode == 0, installed.stderr

    elsewhere = tmp_path / "somewhere-else"
    elsewhere.mkdir()
    environment["NEWSLETTER_INSTANCE_PATH"] = str(tmp_path / "instance")
    upgrade = run(
        [
            str(
                venv / "bin" / "newsletter",
            ),
            "db",
            "upgrade",
        ],
        env=environment,
        cwd=elsewhere,
    )
    assert upgrade.returncode == 0, upgrade.stdout + upgrade.stderr
    assert "Database upgraded from empty to" in upgrade.stdout
    assert (tmp_path / "instance" / "newsletter.db").exists()

    again = run([str(venv / "bin" / "newsletter"), "db", "upgrade"], env=environment, cwd=elsewhere)
    assert again.returncode == 0
    assert "Database is up to date" in again.stdout

    served = run([str(venv / "bin" / "python"), "-c", SMOKE], env=environment, cwd=elsewhere)
    assert served.returncode == 0, served.stdout + served.stderr
    assert str(venv) in served.stdout
    outbox = tmp_path / "instance" / "outbox" / "new"
    assert len(list(outbox.glob("*.eml"))) == 1
