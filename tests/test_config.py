"""Settings: defaults, NEWSLETTER_* variables, test mappings, and one clear line for a bad value."""

from __future__ import annotations

import multiprocessing
import stat
from pathlib import Path
from typing import Any

import pytest

from newsletter import ConfigError, create_app
from newsletter.app_db import get_engine
from newsletter.runtime import get_runtime
from newsletter.tokens import Purpose, TokenData
from tests.support.console import newsletter


@pytest.fixture
def instance(tmp_path: Path) -> Path:
    return tmp_path / "instance"


def build(instance: Path, **settings: Any) -> Any:
    app = create_app({"INSTANCE_PATH": str(instance), **settings})
    get_engine(app).dispose()
    return app


@pytest.mark.parametrize(
    ("setting", "value", "explains"),
    [
        ("DATABASE_URL", "not a url at all", "cannot parse"),
        ("DATABASE_URL", "nosuchdb://somewhere/data", "unknown database"),
        ("DATABASE_URL", "mysql://db.example.org/news", "driver for 'mysql' is not installed"),
        ("MAIL_URL", "bogus://x", "unknown scheme"),
        ("MAIL_URL", "smtp://", "names no host"),
        ("MAIL_URL", "smtps://:25", "names no host"),
        ("MAIL_URL", "maildir://", "names no folder"),
        ("MAIL_URL", "smtp://mail.example.org:port", "port that is not a number"),
        ("MAIL_URL", "smtp://mail.example.org?timeout=soon", "timeout must be a number"),
        ("MAIL_URL", "smtp://mail.example.org?timeout=-1", "timeout must be a number"),
        ("DOUBLE_OPT_IN", "perhaps", "expected true or false"),
        ("CHECK_DELIVERABILITY", "2", "expected true or false"),
        ("SIGNUP_RATE_LIMIT", "lots", "cannot parse 'lots'"),
        ("SIGNUP_RATE_LIMIT", "10 per fortnight", "cannot parse"),
        ("CONFIRMATIONS_PER_DAY", "0", "positive whole number"),
        ("SEND_LEASE", "soon", "positive whole number"),
        ("SMTP_TIMEOUT", "-5", "positive whole number"),
        ("BASE_URL", "news.example.org", "must start with http:// or https://"),
        ("SENDER", "News <news@example.org>\r\nBcc: all@example.org", "must be one line"),
        ("ORGANISATION", "Line\nbreak", "must be one line"),
        ("FRAME_ANCESTORS", "'self'; script-src *", "sources separated by spaces"),
        ("FRAME_ANCESTORS", "", "sources separated by spaces"),
        ("FRAME_ANCESTORS", "'self' https://bücher.example", "xn-- form"),
        ("SIGNUP_MIN_SECONDS", "-1", "seconds between 0 and 10"),
        ("SIGNUP_MIN_SECONDS", "slow", "seconds between 0 and 10"),
        ("TRUSTED_PROXIES", "-1", "whole number (0 or more)"),
        ("TRUSTED_PROXIES", "1.5", "whole number (0 or more)"),
        ("SIGNUP_MIN_SECONDS", "11", "seconds between 0 and 10"),
        ("SIGNUP_MIN_SECONDS", "nan", "seconds between 0 and 10"),
        ("SMTP_TIMEOUT", "true", "positive whole number"),
        ("RATELIMIT_STORAGE_URI", "bogus://x", "unknown storage scheme"),
        ("SCHEDULE", "every monday", "'daily HH:MM' or 'weekly DAY HH:MM'"),
        ("SCHEDULE", "daily 25:00", "HH:MM"),
        ("SCHEDULE", "weekly someday 09:00", "unknown day 'someday'"),
        ("TIMEZONE", "Mars/Olympus", "unknown time zone 'Mars/Olympus'"),
        ("ARTICLE_SETTLE_MINUTES", "-1", "whole number between 0 and 10080"),
        ("ARTICLE_SETTLE_MINUTES", "soon", "whole number between 0 and 10080"),
        ("DEFAULT_RHYTHM", "hourly", "expected each, weekly or monthly"),
        ("AUTOMATION", "maybe", "expected true or false"),
        ("WELCOME", "2", "expected true or false"),
    ],
)
def test_bad_setting_names_itself(instance: Path, setting: str, value: str, explains: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(instance, **{setting: value})
    message = str(raised.value)
    assert message.startswith(f"NEWSLETTER_{setting}: ")
    assert explains in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("MAIL_URL", "smtp://news:hunter2@:25"),
        ("DATABASE_URL", "nosuchdb://news:hunter2@db.example.org/news"),
    ],
)
def test_bad_url_message_hides_the_password(instance: Path, setting: str, value: str) -> None:
    with pytest.raises(ConfigError) as raised:
        build(instance, **{setting: value})
    assert "hunter2" not in str(raised.value)
    assert "news:***@" in str(raised.value)


@pytest.mark.parametrize(
    ("setting", "value"),
    [
        ("MAIL_URL", "bogus://x"),
        ("DATABASE_URL", "nosuchdb://x"),
        ("DOUBLE_OPT_IN", "perhaps"),
        ("SIGNUP_RATE_LIMIT", "lots"),
        ("SCHEDULE", "fortnightly"),
        ("TIMEZONE", "Nowhere/Town"),
    ],
)
@pytest.mark.parametrize("command", [["db", "upgrade"], ["outbox", "flush"], ["--help"]])
def test_console_script_reports_bad_setting_in_one_line(
    tmp_path: Path, setting: str, value: str, command: list[str]
) -> None:
    result = newsletter(
        *command, instance=tmp_path / "instance", settings={f"NEWSLETTER_{setting}": value}
    )
    assert "Traceback" not in result.stdout + result.stderr
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"Error: NEWSLETTER_{setting}: ")
    # Even help stops: every command would fail the same way, `run` included.
    assert result.returncode != 0
    assert result.stdout == ""


def test_defaults_live_in_the_instance_folder(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NEWSLETTER_SIGNUP_MIN_SECONDS")
    app = build(instance)
    assert app.config["DATABASE_URL"] == f"sqlite:///{instance / 'newsletter.db'}"
    assert app.config["MAIL_URL"] == f"maildir://{instance / 'outbox'}"
    assert app.config["BASE_URL"] == "http://localhost:5000"
    assert app.config["SENDER"] == "Newsletter <news@localhost>"
    assert app.config["DOUBLE_OPT_IN"] is True
    assert app.config["CHECK_DELIVERABILITY"] is False
    assert app.config["SIGNUP_RATE_LIMIT"] == "10 per minute"
    assert app.config["RATELIMIT_STORAGE_URI"] == "memory://"
    assert app.config["CONFIRMATIONS_PER_DAY"] == 3
    assert app.config["FRAME_ANCESTORS"] == "'self'"
    assert app.config["SIGNUP_MIN_SECONDS"] == 0.1
    assert app.config["TRUSTED_PROXIES"] == 0
    assert app.config["CONSENT_STATEMENT"] == (
        "By signing up you will receive news about Our organisation's work and how you can "
        "support it. You can unsubscribe at any time."
    )


def test_settings_come_from_the_environment(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    database = instance / "elsewhere.db"
    for name, value in {
        "DATABASE_URL": f"sqlite:///{database}",
        "MAIL_URL": "console://",
        "BASE_URL": "https://news.example.org/",
        "ORGANISATION": "1984",
        "SENDER": "News <news@example.org>",
        "POSTAL_ADDRESS": "10 Main Street",
        "DOUBLE_OPT_IN": "false",
        "CHECK_DELIVERABILITY": "yes",
        "CONFIRMATIONS_PER_DAY": "5",
        "SIGNUP_RATE_LIMIT": "3 per hour",
        "SECRET_KEY": "12e45",
        "SECRET_KEY_FALLBACKS": "older-key, oldest-key",
        "FRAME_ANCESTORS": "'self' https://www.example.org",
        "CONSENT_STATEMENT": "Yes, {organisation} may email me.",
        "SIGNUP_MIN_SECONDS": "0.25",
        "TRUSTED_PROXIES": "1",
        "FEEDS": "https://example.org/feed.xml  /srv/site/other.json",
        "SCHEDULE": "weekly Friday 17:30",
        "TIMEZONE": "Europe/London",
        "ARTICLE_SETTLE_MINUTES": "45",
        "DEFAULT_RHYTHM": "weekly",
        "AUTOMATION": "off",
        "WELCOME": "true",
    }.items():
        monkeypatch.setenv(f"NEWSLETTER_{name}", value)
    app = build(instance)
    config = app.config
    assert config["DATABASE_URL"] == f"sqlite:///{database}"
    assert config["MAIL_URL"] == "console://"
    assert config["BASE_URL"] == "https://news.example.org"
    # Text stays text, even when it looks like a number.
    assert config["ORGANISATION"] == "1984"
    assert config["SECRET_KEY"] == "12e45"
    assert config["SENDER"] == "News <news@example.org>"
    assert config["POSTAL_ADDRESS"] == "10 Main Street"
    assert config["DOUBLE_OPT_IN"] is False
    assert config["CHECK_DELIVERABILITY"] is True
    assert config["CONFIRMATIONS_PER_DAY"] == 5
    assert config["SIGNUP_RATE_LIMIT"] == "3 per hour"
    assert config["SECRET_KEY_FALLBACKS"] == ["older-key", "oldest-key"]
    assert config["FRAME_ANCESTORS"] == "'self' https://www.example.org"
    assert config["CONSENT_STATEMENT"] == "Yes, 1984 may email me."
    assert config["SIGNUP_MIN_SECONDS"] == 0.25
    assert config["TRUSTED_PROXIES"] == 1
    assert config["FEEDS"] == ["https://example.org/feed.xml", "/srv/site/other.json"]
    assert config["DIGEST_SCHEDULE"].describe() == "weekly fri 17:30 Europe/London"
    assert config["ARTICLE_SETTLE_MINUTES"] == 45
    assert config["DEFAULT_RHYTHM"] == "weekly"
    assert config["AUTOMATION"] is False
    assert config["WELCOME"] is True
    assert not (instance / "secret_key").exists()
    site = get_runtime(app).site
    assert site.organisation == "1984"
    assert site.double_opt_in is False
    assert site.welcome is True
    assert site.default_rhythm == "weekly"


def test_a_mapping_from_tests_wins_over_the_environment(
    instance: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_ORGANISATION", "From the environment")
    monkeypatch.setenv("NEWSLETTER_DOUBLE_OPT_IN", "false")
    app = build(instance, ORGANISATION="From the mapping")
    assert app.config["ORGANISATION"] == "From the mapping"
    assert app.config["DOUBLE_OPT_IN"] is False


def test_instance_path_comes_from_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("NEWSLETTER_INSTANCE_PATH", str(tmp_path / "from-env"))
    app = create_app()
    get_engine(app).dispose()
    assert app.instance_path == str(tmp_path / "from-env")
    assert (tmp_path / "from-env" / "secret_key").exists()


def test_generated_secret_key_persists_across_app_instances(instance: Path) -> None:
    first = build(instance)
    second = build(instance)
    key_file = instance / "secret_key"
    assert first.config["SECRET_KEY"] == second.config["SECRET_KEY"]
    assert first.config["SECRET_KEY"] == key_file.read_text()
    assert len(first.config["SECRET_KEY"]) >= 32
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    # A link signed before a restart still works after it.
    token = get_runtime(first).site.tokens.make(Purpose.CONFIRM, TokenData(1, "nonce", 2))
    assert get_runtime(second).site.tokens.read(Purpose.CONFIRM, token) == TokenData(1, "nonce", 2)
    # Another instance folder has its own key.
    other = build(instance.parent / "other")
    assert other.config["SECRET_KEY"] != first.config["SECRET_KEY"]


def _start_worker(instance: Path, start: Any, keys: Any) -> None:
    start.wait(timeout=30)
    try:
        keys.put(build(instance).config["SECRET_KEY"])
    except BaseException as problem:  # reported by the test, with what went wrong
        keys.put(f"failed: {problem!r}")


def test_workers_starting_together_agree_on_one_key(instance: Path) -> None:
    # Processes, as gunicorn's workers are, all starting on a fresh instance folder at once.
    instance.mkdir()
    processes = multiprocessing.get_context("fork")
    start = processes.Barrier(8)
    keys = processes.Queue()
    workers = [
        processes.Process(target=_start_worker, args=(instance, start, keys)) for _ in range(8)
    ]
    for worker in workers:
        worker.start()
    found = [keys.get(timeout=60) for _ in workers]
    for worker in workers:
        worker.join(timeout=30)
    assert [key for key in found if key.startswith("failed")] == []
    assert set(found) == {(instance / "secret_key").read_text()}
    assert sorted(path.name for path in instance.iterdir()) == ["secret_key"]


def test_empty_key_file_is_reported(instance: Path) -> None:
    instance.mkdir()
    (instance / "secret_key").write_text("")
    with pytest.raises(ConfigError, match="^NEWSLETTER_SECRET_KEY: the key file .* is empty"):
        build(instance)
