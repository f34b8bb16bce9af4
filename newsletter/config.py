"""Settings: defaults, then ``NEWSLETTER_*`` environment variables, then a mapping from tests.

Every setting is checked once at start-up so that a bad value stops the service with one line
naming the setting, instead of failing on the first request or the first email.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from newsletter.mail.urls import MailURLError, parse_mail_url

__all__ = ["ConfigError", "DEFAULTS", "load_config"]

PREFIX = "NEWSLETTER"

DEFAULT_CONSENT_STATEMENT = (
    "By signing up you will receive news about {organisation}'s work and how you can "
    "support it. You can unsubscribe at any time."
)

DEFAULTS: dict[str, Any] = {
    "DATABASE_URL": None,  # derived from the instance folder
    "MAIL_URL": None,  # derived from the instance folder
    "BASE_URL": "http://localhost:5000",
    "SENDER": "Newsletter <news@localhost>",
    "ORGANISATION": "Our organisation",
    "POSTAL_ADDRESS": "",
    "DOUBLE_OPT_IN": True,
    "CONSENT_STATEMENT": DEFAULT_CONSENT_STATEMENT,
    "SIGNUP_RATE_LIMIT": "10 per minute",
    "RATELIMIT_STORAGE_URI": "memory://",
    "SEND_LEASE": 30,
    "CHECK_DELIVERABILITY": False,
    "CONFIRMATIONS_PER_DAY": 3,
    "FRAME_ANCESTORS": "'self'",
    "SMTP_TIMEOUT": 30,
    "SECRET_KEY_FALLBACKS": [],
    "TRUSTED_PROXIES": 0,
    "PRODUCTION": False,
    "LOG_ADDRESSES": False,
    "LOG_LEVEL": "INFO",
}

BOOLEAN_SETTINGS = ("DOUBLE_OPT_IN", "CHECK_DELIVERABILITY", "PRODUCTION", "LOG_ADDRESSES")
POSITIVE_INT_SETTINGS = ("SEND_LEASE", "CONFIRMATIONS_PER_DAY", "SMTP_TIMEOUT")


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def load_config(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    """Fill ``app.config`` from defaults, the environment and ``overrides``, then check it."""
    app.config.update(DEFAULTS)
    app.config.from_prefixed_env(PREFIX)
    if overrides:
        app.config.update(overrides)
    instance = Path(app.instance_path)
    instance.mkdir(parents=True, exist_ok=True)
    _fill_derived(app.config, instance)
    _check(app.config)


def _fill_derived(config: dict[str, Any], instance: Path) -> None:
    if not config.get("DATABASE_URL"):
        config["DATABASE_URL"] = f"sqlite:///{instance / 'newsletter.db'}"
    if not config.get("MAIL_URL"):
        config["MAIL_URL"] = f"maildir://{instance / 'outbox'}"
    if not config.get("SECRET_KEY"):
        config["SECRET_KEY"] = _instance_secret_key(instance)
        config["SECRET_KEY_GENERATED"] = True
    fallbacks = config.get("SECRET_KEY_FALLBACKS") or []
    if isinstance(fallbacks, str):
        fallbacks = [key.strip() for key in fallbacks.split(",") if key.strip()]
    config["SECRET_KEY_FALLBACKS"] = list(fallbacks)
    config["CONSENT_STATEMENT"] = str(config["CONSENT_STATEMENT"]).replace(
        "{organisation}", str(config["ORGANISATION"])
    )


def _instance_secret_key(instance: Path) -> str:
    """Generate a key once per instance folder so that links survive restarts."""
    path = instance / "secret_key"
    if path.exists():
        return path.read_text().strip()
    key = secrets.token_urlsafe(48)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(key)
    return key


def _setting(name: str) -> str:
    return f"{PREFIX}_{name}"


def _check(config: dict[str, Any]) -> None:
    try:
        make_url(str(config["DATABASE_URL"]))
    except ArgumentError as error:
        message = f"{_setting('DATABASE_URL')}: cannot parse {config['DATABASE_URL']!r} ({error})"
        raise ConfigError(message) from None
    try:
        parse_mail_url(str(config["MAIL_URL"]))
    except MailURLError as error:
        raise ConfigError(f"{_setting('MAIL_URL')}: {error}") from None
    for name in BOOLEAN_SETTINGS:
        config[name] = _as_bool(name, config[name])
    for name in POSITIVE_INT_SETTINGS:
        config[name] = _as_positive_int(name, config[name])
    base_url = str(config["BASE_URL"]).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        message = f"{_setting('BASE_URL')}: must start with http:// or https://, got {base_url!r}"
        raise ConfigError(message)
    config["BASE_URL"] = base_url
    for name in ("SENDER", "ORGANISATION", "POSTAL_ADDRESS"):
        value = str(config[name])
        if "\r" in value or "\n" in value:
            raise ConfigError(f"{_setting(name)}: must be one line")
    _check_rate_limit(str(config["SIGNUP_RATE_LIMIT"]))
    level = str(config["LOG_LEVEL"]).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"{_setting('LOG_LEVEL')}: expected DEBUG, INFO, WARNING or ERROR")
    config["LOG_LEVEL"] = level
    config["TRUSTED_PROXIES"] = _as_count("TRUSTED_PROXIES", config["TRUSTED_PROXIES"])
    if config["PRODUCTION"] and config.get("SECRET_KEY_GENERATED"):
        message = (
            f"{_setting('SECRET_KEY')}: production needs a key of its own, not the generated "
            "development key; set it to the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
        raise ConfigError(message)


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{_setting(name)}: expected true or false, got {value!r}")


def _as_positive_int(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = 0
    if isinstance(value, bool) or number <= 0:
        raise ConfigError(f"{_setting(name)}: expected a positive whole number, got {value!r}")
    return number


def _as_count(name: str, value: Any) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        number = -1
    if isinstance(value, bool) or number < 0:
        raise ConfigError(f"{_setting(name)}: expected a whole number (0 or more), got {value!r}")
    return number


def _check_rate_limit(value: str) -> None:
    try:
        parse_many(value)
    except ValueError:
        message = f"{_setting('SIGNUP_RATE_LIMIT')}: cannot parse {value!r} (try '10 per minute')"
        raise ConfigError(message) from None
