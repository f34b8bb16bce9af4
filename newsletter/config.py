"""Settings: defaults, then ``NEWSLETTER_*`` environment variables, then a mapping from tests.

Every setting is checked once at start-up so that a bad value stops the service with one line
naming the setting, instead of failing on the first request or the first email.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from flask import Flask
from limits import parse_many
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError, NoSuchModuleError

from newsletter import csp
from newsletter.branding import parse_colour, parse_web_address
from newsletter.mail.bounce_mailbox import parse_mailbox_url
from newsletter.mail.dkim_keys import DkimKeyError, load_ed25519_key, load_rsa_key, valid_selector
from newsletter.mail.urls import MailURLError, parse_mail_url
from newsletter.origins import parse_origins
from newsletter.schedule import ScheduleError, parse_rhythm, parse_schedule, parse_zone
from newsletter.signatures import load_sendgrid_key
from newsletter.site import DkimKeys
from newsletter.validation import InvalidValue, clean_email

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
    "SIGNUP_MIN_SECONDS": 0.1,
    "TRUSTED_PROXIES": 0,
    "PRODUCTION": False,
    "LOG_ADDRESSES": False,
    "LOG_LEVEL": "INFO",
    # The signup box on the organisation's own pages, and the brand it wears.
    "EMBED_ORIGINS": "",
    "PRIVACY_URL": "",
    "LOGO_URL": "",
    "BRAND_COLOUR": "#0b5cad",
    # DKIM: with a key file and a selector, every message is signed for the sender's domain.
    "DKIM_KEY_FILE": "",
    "DKIM_SELECTOR": "",
    "DKIM_ED25519_KEY_FILE": "",
    "DKIM_ED25519_SELECTOR": "",
    # Automatic digests (``newsletter digest auto``) and the welcome email.
    "AUTOMATION": True,
    "FEEDS": "",
    "SCHEDULE": "weekly mon 09:00",
    "TIMEZONE": "UTC",
    "ARTICLE_SETTLE_MINUTES": 30,
    "DEFAULT_RHYTHM": "each",
    "WELCOME": False,
    # Where replies to any message go, when not to the sender.
    "REPLY_TO": "",
    # Bounces and complaints: the VERP return path, the mailbox reports arrive in, and the
    # credentials of each provider's webhook (an empty one leaves that webhook off).
    "BOUNCE_ADDRESS": "",
    "BOUNCE_MAILBOX": "",
    "SOFT_BOUNCE_LIMIT": 3,
    "WEBHOOK_TOKEN": "",
    "WEBHOOK_RATE_LIMIT": "600 per minute",
    "POSTMARK_WEBHOOK_CREDENTIALS": "",
    "MAILGUN_SIGNING_KEY": "",
    "SENDGRID_PUBLIC_KEY": "",
    "SNS_TOPIC_ARNS": "",
}

BOOLEAN_SETTINGS = (
    "DOUBLE_OPT_IN",
    "CHECK_DELIVERABILITY",
    "PRODUCTION",
    "LOG_ADDRESSES",
    "AUTOMATION",
    "WELCOME",
)


@dataclass(frozen=True)
class Bounds:
    """What a number setting may be: whole or not, its least and greatest value."""

    kind: type[int] | type[float]
    low: int
    high: int | None = None
    noun: str = "whole number"

    @property
    def expected(self) -> str:
        if self.high is not None:
            return f"{self.noun} between {self.low} and {self.high}"
        if self.low == 1:
            return f"a positive {self.noun}"
        return f"a {self.noun} ({self.low} or more)"


NUMBER_SETTINGS = {
    "SEND_LEASE": Bounds(int, 1),
    "CONFIRMATIONS_PER_DAY": Bounds(int, 1),
    "SMTP_TIMEOUT": Bounds(int, 1),
    "TRUSTED_PROXIES": Bounds(int, 0),
    "SIGNUP_MIN_SECONDS": Bounds(float, 0, 10, noun="seconds"),
    "ARTICLE_SETTLE_MINUTES": Bounds(int, 0, 10080),
    "SOFT_BOUNCE_LIMIT": Bounds(int, 1),
}

# Text settings are taken from the environment as typed: Flask would read
# NEWSLETTER_ORGANISATION=1984 as a number, or a secret key such as "12e45" as a float.
TEXT_SETTINGS = (
    "DATABASE_URL",
    "MAIL_URL",
    "BASE_URL",
    "SENDER",
    "ORGANISATION",
    "POSTAL_ADDRESS",
    "CONSENT_STATEMENT",
    "SECRET_KEY",
    "SECRET_KEY_FALLBACKS",
    "SIGNUP_RATE_LIMIT",
    "RATELIMIT_STORAGE_URI",
    "FRAME_ANCESTORS",
    "EMBED_ORIGINS",
    "PRIVACY_URL",
    "LOGO_URL",
    "BRAND_COLOUR",
    "DKIM_KEY_FILE",
    "DKIM_SELECTOR",
    "DKIM_ED25519_KEY_FILE",
    "DKIM_ED25519_SELECTOR",
    "FEEDS",
    "SCHEDULE",
    "TIMEZONE",
    "DEFAULT_RHYTHM",
    "REPLY_TO",
    "BOUNCE_ADDRESS",
    "BOUNCE_MAILBOX",
    "WEBHOOK_TOKEN",
    "WEBHOOK_RATE_LIMIT",
    "POSTMARK_WEBHOOK_CREDENTIALS",
    "MAILGUN_SIGNING_KEY",
    "SENDGRID_PUBLIC_KEY",
    "SNS_TOPIC_ARNS",
)


class ConfigError(ValueError):
    """A setting has a value the service cannot run with."""


def load_config(app: Flask, overrides: Mapping[str, Any] | None) -> None:
    """Fill ``app.config`` from defaults, the environment and ``overrides``, then check it."""
    app.config.update(DEFAULTS)
    app.config.from_prefixed_env(PREFIX)
    for name in TEXT_SETTINGS:
        if _setting(name) in os.environ:
            app.config[name] = os.environ[_setting(name)]
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
    """Generate a key once per instance folder so that links survive restarts.

    Several workers may start at once on a fresh instance: the key is written to a private
    file and then linked into place, so exactly one key wins and nobody reads a half-written one.
    """
    path = instance / "secret_key"
    if not path.exists():
        draft = instance / f".secret_key.{os.getpid()}.{secrets.token_hex(4)}"
        fd = os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(secrets.token_urlsafe(48))
        try:
            os.link(draft, path)
        except FileExistsError:
            pass  # another worker's key won
        finally:
            draft.unlink()
    key = path.read_text().strip()
    if not key:
        raise ConfigError(f"{_setting('SECRET_KEY')}: the key file {path} is empty; delete it")
    return key


def _setting(name: str) -> str:
    return f"{PREFIX}_{name}"


def _check(config: dict[str, Any]) -> None:
    _check_database_url(str(config["DATABASE_URL"]))
    try:
        parse_mail_url(str(config["MAIL_URL"]))
    except MailURLError as error:
        raise ConfigError(f"{_setting('MAIL_URL')}: {error}") from None
    for name in BOOLEAN_SETTINGS:
        config[name] = _as_bool(name, config[name])
    for name in NUMBER_SETTINGS:
        config[name] = _as_number(name, config[name])
    base_url = str(config["BASE_URL"]).rstrip("/")
    if not base_url.startswith(("http://", "https://")):
        message = f"{_setting('BASE_URL')}: must start with http:// or https://, got {base_url!r}"
        raise ConfigError(message)
    config["BASE_URL"] = base_url
    for name in ("SENDER", "ORGANISATION", "POSTAL_ADDRESS"):
        value = str(config[name])
        if "\r" in value or "\n" in value:
            raise ConfigError(f"{_setting(name)}: must be one line")
    _check_rate_limit("SIGNUP_RATE_LIMIT", str(config["SIGNUP_RATE_LIMIT"]))
    _check_rate_limit("WEBHOOK_RATE_LIMIT", str(config["WEBHOOK_RATE_LIMIT"]))
    level = str(config["LOG_LEVEL"]).upper()
    if level not in {"DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"}:
        raise ConfigError(f"{_setting('LOG_LEVEL')}: expected DEBUG, INFO, WARNING or ERROR")
    config["LOG_LEVEL"] = level
    if config["PRODUCTION"] and config.get("SECRET_KEY_GENERATED"):
        message = (
            f"{_setting('SECRET_KEY')}: production needs a key of its own, not the generated "
            "development key; set it to the output of "
            "`python3 -c 'import secrets; print(secrets.token_urlsafe(48))'`"
        )
        raise ConfigError(message)
    config["FRAME_ANCESTORS"] = _check_frame_ancestors(str(config["FRAME_ANCESTORS"]))
    _check_embedding(config)
    config["DKIM_KEYS"] = _dkim_keys(config)
    _check_automation(config)


def _check_automation(config: dict[str, Any]) -> None:
    """The schedule, its time zone, the default rhythm and the feeds of ``digest auto``."""
    try:
        zone = parse_zone(str(config["TIMEZONE"]))
    except ScheduleError as error:
        raise ConfigError(f"{_setting('TIMEZONE')}: {error}") from None
    try:
        config["DIGEST_SCHEDULE"] = parse_schedule(str(config["SCHEDULE"]), zone)
    except ScheduleError as error:
        raise ConfigError(f"{_setting('SCHEDULE')}: {error}") from None
    try:
        config["DEFAULT_RHYTHM"] = parse_rhythm(str(config["DEFAULT_RHYTHM"]))
    except ScheduleError as error:
        raise ConfigError(f"{_setting('DEFAULT_RHYTHM')}: {error}") from None
    feeds = config["FEEDS"]
    config["FEEDS"] = feeds.split() if isinstance(feeds, str) else [str(feed) for feed in feeds]
    config["REPLY_TO"] = _check_reply_to(str(config["REPLY_TO"]))
    _check_bounces(config)


def _check_bounces(config: dict[str, Any]) -> None:
    """The bounce address, the bounce mailbox and the webhooks' keys."""
    for name in (
        "BOUNCE_ADDRESS",
        "BOUNCE_MAILBOX",
        "WEBHOOK_TOKEN",
        "POSTMARK_WEBHOOK_CREDENTIALS",
        "MAILGUN_SIGNING_KEY",
        "SENDGRID_PUBLIC_KEY",
        "SNS_TOPIC_ARNS",
    ):
        config[name] = str(config[name]).strip()
        if "\r" in config[name] or "\n" in config[name]:
            raise ConfigError(f"{_setting(name)}: must be one line")
    address = config["BOUNCE_ADDRESS"]
    if address and not _usable_bounce_address(address):
        message = (
            f"{_setting('BOUNCE_ADDRESS')}: expected an address without '+', such as "
            f"bounces@news.example.org, got {address!r}"
        )
        raise ConfigError(message)
    if config["BOUNCE_MAILBOX"]:
        try:
            parse_mailbox_url(config["BOUNCE_MAILBOX"])
        except ValueError as error:
            raise ConfigError(f"{_setting('BOUNCE_MAILBOX')}: {error}") from None
    credentials = config["POSTMARK_WEBHOOK_CREDENTIALS"]
    if credentials and ":" not in credentials:
        message = f"{_setting('POSTMARK_WEBHOOK_CREDENTIALS')}: expected USER:PASSWORD"
        raise ConfigError(message)
    if config["SENDGRID_PUBLIC_KEY"]:
        try:
            load_sendgrid_key(config["SENDGRID_PUBLIC_KEY"])
        except ValueError as error:
            raise ConfigError(f"{_setting('SENDGRID_PUBLIC_KEY')}: {error}") from None


def _dkim_keys(config: dict[str, Any]) -> DkimKeys | None:
    """The DKIM keys, read and parsed now, so a bad key stops start-up rather than a send."""
    rsa_pem = _key_and_selector(config, "DKIM_KEY_FILE", "DKIM_SELECTOR", load_rsa_key)
    ed25519 = _key_and_selector(
        config, "DKIM_ED25519_KEY_FILE", "DKIM_ED25519_SELECTOR", load_ed25519_key
    )
    if rsa_pem is None:
        if ed25519 is not None:
            message = (
                f"{_setting('DKIM_KEY_FILE')}: needed with {_setting('DKIM_ED25519_KEY_FILE')}"
            )
            raise ConfigError(message)
        return None
    selector = rsa_pem[1]
    if ed25519 is not None and ed25519[1] == selector:
        message = (
            f"{_setting('DKIM_ED25519_SELECTOR')}: must differ from {_setting('DKIM_SELECTOR')}; "
            "each key is published under a selector of its own"
        )
        raise ConfigError(message)
    return DkimKeys(
        selector=selector,
        rsa_pem=rsa_pem[0],
        ed25519_pem=ed25519[0] if ed25519 else None,
        ed25519_selector=ed25519[1] if ed25519 else None,
    )


def _key_and_selector(
    config: dict[str, Any], file_name: str, selector_name: str, load: Callable[[bytes], object]
) -> tuple[bytes, str] | None:
    """One key file and its selector: both or neither."""
    key_file = str(config[file_name]).strip()
    selector = str(config[selector_name]).strip()
    if not key_file and not selector:
        return None
    if not key_file:
        raise ConfigError(f"{_setting(file_name)}: needed with {_setting(selector_name)}")
    if not selector:
        raise ConfigError(f"{_setting(selector_name)}: needed with {_setting(file_name)}")
    if not valid_selector(selector):
        message = (
            f"{_setting(selector_name)}: expected a DNS name such as news2026, got {selector!r}"
        )
        raise ConfigError(message)
    return _read_key(file_name, key_file, load), selector


def _read_key(name: str, path: str, load: Callable[[bytes], object]) -> bytes:
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        raise ConfigError(
            f"{_setting(name)}: cannot read {path}: {error.strerror or error}"
        ) from None
    try:
        load(data)
    except DkimKeyError as error:
        raise ConfigError(f"{_setting(name)}: {path}: {error}") from None
    return data


def _usable_bounce_address(address: str) -> bool:
    """A bare address with no '+' (VERP adds its own): it becomes every message's envelope
    sender, so one the mail server would refuse (angle brackets, quotes, a second '@') would
    fail every send."""
    try:
        clean_email(address)
    except InvalidValue:
        return False
    return "+" not in address.rpartition("@")[0]


def _check_reply_to(value: str) -> str:
    """One mailbox, ``Name <address>`` or a bare address, or empty for none."""
    name = _setting("REPLY_TO")
    if "\r" in value or "\n" in value:
        raise ConfigError(f"{name}: must be one line")
    text = value.strip()
    if not text:
        return ""
    mailboxes = getaddresses([text])
    if len(mailboxes) > 1:
        raise ConfigError(f"{name}: expected one address, got {text!r}")
    example = "Our office <office@example.org>"
    address = mailboxes[0][1] if mailboxes else ""
    try:
        clean_email(address)
    except InvalidValue:
        message = f"{name}: expected an address such as {example}, got {text!r}"
        raise ConfigError(message) from None
    return text


def _check_embedding(config: dict[str, Any]) -> None:
    """The signup box on the organisation's pages, and the organisation's look."""
    origins = config["EMBED_ORIGINS"]
    text = origins if isinstance(origins, str) else " ".join(origins)
    try:
        config["EMBED_ORIGINS"] = parse_origins(text)
    except ValueError as error:
        raise ConfigError(f"{_setting('EMBED_ORIGINS')}: {error}") from None
    # The pages that carry the box may show it in a frame, unless framing is forbidden outright.
    sources = config["FRAME_ANCESTORS"].split()
    if sources != ["'none'"]:
        added = [origin for origin in config["EMBED_ORIGINS"] if origin not in sources]
        config["FRAME_ANCESTORS"] = " ".join([*sources, *added])
    try:
        config["BRAND_COLOUR"] = parse_colour(str(config["BRAND_COLOUR"]))
    except ValueError as error:
        raise ConfigError(f"{_setting('BRAND_COLOUR')}: {error}") from None
    for name in ("PRIVACY_URL", "LOGO_URL"):
        try:
            config[name] = parse_web_address(str(config[name]))
        except ValueError as error:
            raise ConfigError(f"{_setting(name)}: {error}") from None


def _check_database_url(value: str) -> None:
    name = _setting("DATABASE_URL")
    try:
        url = make_url(value)
    except ArgumentError as error:
        raise ConfigError(f"{name}: cannot parse {value!r} ({error})") from None
    # Messages show the address without its password: they end up in terminals and logs.
    shown = url.render_as_string(hide_password=True)
    try:
        dialect = url.get_dialect()
        dialect.import_dbapi()
    except NoSuchModuleError:
        message = (
            f"{name}: unknown database in {shown!r}; use sqlite:///… or postgresql+psycopg://…"
        )
        raise ConfigError(message) from None
    except ImportError as error:
        message = (
            f"{name}: the driver for {url.drivername!r} is not installed ({error}); "
            "for PostgreSQL use postgresql+psycopg://…"
        )
        raise ConfigError(message) from None


def _as_bool(name: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in {"1", "true", "yes", "on"}:
        return True
    if text in {"0", "false", "no", "off"}:
        return False
    raise ConfigError(f"{_setting(name)}: expected true or false, got {value!r}")


def _as_number(name: str, value: Any) -> int | float:
    """A number setting within its bounds (``NUMBER_SETTINGS``), as its type."""
    rule = NUMBER_SETTINGS[name]
    try:
        number = rule.kind(value)
    except (TypeError, ValueError):
        number = None
    # True would pass for 1; NaN fails every comparison, so the bounds are checked positively.
    if (
        isinstance(value, bool)
        or number is None
        or not rule.low <= number
        or (rule.high is not None and not number <= rule.high)
    ):
        raise ConfigError(f"{_setting(name)}: expected {rule.expected}, got {value!r}")
    return number


def _check_frame_ancestors(value: str) -> str:
    # It goes into the Content-Security-Policy header: one directive's sources, nothing more.
    try:
        return " ".join(csp.sources(value))
    except csp.InvalidSource as error:
        message = (
            f"{_setting('FRAME_ANCESTORS')}: expected sources separated by spaces, such as "
            f"\"'self' https://www.example.org\", got {value.strip()!r} ({error})"
        )
        raise ConfigError(message) from None


def _check_rate_limit(name: str, value: str) -> None:
    try:
        parse_many(value)
    except ValueError:
        message = f"{_setting(name)}: cannot parse {value!r} (try '10 per minute')"
        raise ConfigError(message) from None
