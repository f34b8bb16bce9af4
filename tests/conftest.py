"""Fixtures: an app on a fresh database (SQLite and PostgreSQL), its client, CLI runner and
session, the maildir outbox, and a real SMTP server."""

from __future__ import annotations

import re
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session
from werkzeug.test import TestResponse

from newsletter import create_app
from newsletter.app_db import get_engine
from newsletter.db import create_db_engine
from newsletter.migrate import upgrade
from newsletter.web.dispatch import get_dispatcher
from tests.support.mailbox import read_maildir
from tests.support.postgres import running_postgres
from tests.support.smtp import SERVER_KINDS, MailServer, SMTPServer

DATABASES = ["sqlite", "postgresql"]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    engine = create_db_engine(f"sqlite:///{path}")
    upgrade(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    with running_postgres() as url:
        yield url


@pytest.fixture(scope="session")
def postgres_template(postgres_server: str) -> str:
    admin = create_engine(postgres_server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text("DROP DATABASE IF EXISTS newsletter_template"))
        connection.execute(text("CREATE DATABASE newsletter_template"))
    admin.dispose()
    template_url = make_url(postgres_server).set(database="newsletter_template")
    engine = create_db_engine(template_url.render_as_string(hide_password=False))
    upgrade(engine)
    engine.dispose()
    return "newsletter_template"


@pytest.fixture(params=DATABASES)
def database_url(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[str]:
    """A fresh, migrated database for one test, on each database in turn."""
    if request.param == "sqlite":
        path = tmp_path / "newsletter.db"
        shutil.copy(sqlite_template, path)
        yield f"sqlite:///{path}"
        return
    server: str = request.getfixturevalue("postgres_server")
    template: str = request.getfixturevalue("postgres_template")
    with scratch_database(server, template) as url:
        yield url


@pytest.fixture(params=DATABASES)
def empty_database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A database with nothing in it, not even the schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'empty.db'}"
        return
    server: str = request.getfixturevalue("postgres_server")
    with scratch_database(server) as url:
        yield url


@contextmanager
def scratch_database(server: str, template: str | None = None) -> Iterator[str]:
    """A new PostgreSQL database on ``server`` (a copy of ``template``, if given), dropped
    afterwards."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    copy = f' TEMPLATE "{template}"' if template else ""
    admin = create_engine(server, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"{copy}'))
    try:
        yield make_url(server).set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture(scope="session")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A Redis server for the session, started the first time a test asks for it."""
    from tests.support.redis import running_redis

    with running_redis(tmp_path_factory.mktemp("redis")) as url:
        yield url


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The session's Redis, emptied for this test."""
    from tests.support.redis import flush

    flush(redis_server)
    return redis_server


@pytest.fixture(scope="session")
def imap_server() -> Iterator[Any]:
    """Dovecot for the session, started the first time a test asks for it."""
    from tests.support.dovecot import running_dovecot

    with running_dovecot() as server:
        yield server


@pytest.fixture
def outbox_path(tmp_path: Path) -> Path:
    return tmp_path / "outbox"


@pytest.fixture
def base_config(tmp_path: Path, database_url: str, outbox_path: Path) -> dict[str, Any]:
    return {
        "TESTING": True,
        "INSTANCE_PATH": str(tmp_path / "instance"),
        "DATABASE_URL": database_url,
        "MAIL_URL": f"maildir://{outbox_path}",
        "SECRET_KEY": "test-secret-key-of-reasonable-length",
        "SIGNUP_RATE_LIMIT": "10000 per minute",
        "BASE_URL": "https://news.example.org",
        "ORGANISATION": "Open Rights Watch",
        "POSTAL_ADDRESS": "1 Example Street, Example City",
        "SENDER": "Open Rights Watch <news@example.org>",
    }


@pytest.fixture
def make_app(base_config: dict[str, Any]) -> Iterator[Callable[..., Flask]]:
    """Build an app on this test's database; keyword arguments override settings."""
    apps: list[Flask] = []

    def build(**overrides: Any) -> Flask:
        app = create_app({**base_config, **overrides})
        apps.append(app)
        return app

    yield build
    for app in apps:
        get_dispatcher(app).close()
        get_engine(app).dispose()


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app()


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def runner(app: Flask) -> FlaskCliRunner:
    return app.test_cli_runner()


@pytest.fixture
def session(database_url: str) -> Iterator[Session]:
    """A session for the test's own look at the database. On SQLite its transactions start
    deferred, so reading between requests never holds the write lock the app needs."""
    engine = create_db_engine(database_url, sqlite_immediate=False)
    with Session(engine, expire_on_commit=False) as db_session:
        yield db_session
    engine.dispose()


@pytest.fixture
def sent_mail(app: Flask, outbox_path: Path) -> Callable[[], list[EmailMessage]]:
    """The messages in the maildir outbox, once the background sender has finished."""

    def read() -> list[EmailMessage]:
        get_dispatcher(app).drain()
        return read_maildir(outbox_path)

    return read


@pytest.fixture
def smtp_server() -> Iterator[SMTPServer]:
    server = SMTPServer()
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=list(SERVER_KINDS))
def mail_server(request: pytest.FixtureRequest) -> Iterator[MailServer]:
    """Each kind of real SMTP server in turn: aiosmtpd offering PIPELINING, and the asyncio
    server offering PIPELINING and CHUNKING."""
    server = SERVER_KINDS[request.param]()
    server.start()
    yield server
    server.stop()


CSRF_FIELD = re.compile(r'name="csrf_token" type="hidden" value="([^"]+)"')


def csrf_token(page: TestResponse | str) -> str:
    html = page if isinstance(page, str) else page.get_data(as_text=True)
    match = CSRF_FIELD.search(html)
    assert match, "no CSRF token on the page"
    return match.group(1)


def post_signup(
    client: FlaskClient, headers: dict[str, str] | None = None, **fields: Any
) -> TestResponse:
    """Open the form and send it like a browser, with the given field values (None leaves a
    field out) and request ``headers``."""
    page = client.get("/subscribe")
    data = {
        "csrf_token": csrf_token(page),
        "first_name": "Ada",
        "last_name": "Lovelace",
        "email": "ada@example.org",
        "consent": "y",
    }
    data.update({key: value for key, value in fields.items() if value is not None})
    for key in [key for key, value in fields.items() if value is None]:
        data.pop(key, None)
    return client.post("/subscribe", data=data, headers=headers)


@pytest.fixture(scope="session")
def playwright() -> Iterator[Any]:
    """Playwright, started once for the session (it runs one at a time)."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as started:
        yield started


@pytest.fixture(scope="session")
def browser(playwright: Any) -> Iterator[Any]:
    """One headless Chromium for the session (Debian's, driven by Playwright)."""
    from tests.support.browser import CHROMIUM, CHROMIUM_ARGS

    chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
    yield chromium
    chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    context = browser.new_context()
    tab = context.new_page()
    yield tab
    context.close()


def axe_violations(page: Any) -> list[str]:
    """axe-core's violations on the page, as readable lines (empty when there are none)."""
    from axe_playwright_python.sync_playwright import Axe

    results = Axe().run(page)
    return [
        f"{violation['id']}: {violation['help']} ({len(violation['nodes'])} nodes)"
        for violation in results.response["violations"]
    ]


@pytest.fixture(autouse=True)
def _no_signup_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    """Signups answer at once in tests; a test that checks the floor sets it itself."""
    monkeypatch.setenv("NEWSLETTER_SIGNUP_MIN_SECONDS", "0")


@pytest.fixture
def frozen_token_clock(monkeypatch: pytest.MonkeyPatch) -> None:
    """Tokens signed in one test carry one timestamp, so two renderings of a person agree.

    A token holds the second it was signed at; without this, a test that builds the same
    message twice fails whenever the clock ticks between the two.
    """
    from itsdangerous.timed import TimestampSigner

    now = int(time.time())
    monkeypatch.setattr(TimestampSigner, "get_timestamp", lambda self: now)
