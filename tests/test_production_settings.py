"""Settings for running behind proxies and in production."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from newsletter import ConfigError, create_app
from newsletter.app_db import session_factory
from newsletter.models import ConsentEvent
from tests.conftest import post_signup


def consent_ips(app: Flask) -> list[str | None]:
    with session_factory(app)() as session:
        return list(session.scalars(select(ConsentEvent.ip).order_by(ConsentEvent.id)))


def test_a_forged_forwarded_for_is_ignored_without_trusted_proxies(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app()
    assert post_signup(app.test_client()).status_code == 303
    forged = app.test_client()
    forged.environ_base["HTTP_X_FORWARDED_FOR"] = "203.0.113.7"
    assert post_signup(forged, email="grace@example.org").status_code == 303
    assert consent_ips(app) == ["127.0.0.1", "127.0.0.1"]


def test_behind_one_trusted_proxy_the_visitors_address_is_recorded(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(TRUSTED_PROXIES=1)
    client = app.test_client()
    client.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.20"
    assert post_signup(client).status_code == 303
    assert consent_ips(app) == ["198.51.100.20"]


def test_rate_limits_count_the_visitor_behind_the_proxy(make_app: Callable[..., Flask]) -> None:
    app = make_app(TRUSTED_PROXIES=1, SIGNUP_RATE_LIMIT="2 per minute")
    first, second = app.test_client(), app.test_client()
    first.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.1"
    second.environ_base["HTTP_X_FORWARDED_FOR"] = "198.51.100.2"
    assert [post_signup(first, email=f"a{n}@example.org").status_code for n in range(3)] == [
        303,
        303,
        429,
    ]
    assert post_signup(second, email="b@example.org").status_code == 303


def test_production_refuses_the_generated_key(tmp_path: Path, base_config: dict[str, Any]) -> None:
    config = {**base_config, "PRODUCTION": True}
    del config["SECRET_KEY"]
    with pytest.raises(ConfigError, match="NEWSLETTER_SECRET_KEY"):
        create_app(config)
    app = create_app({**config, "SECRET_KEY": "a-real-production-key-from-the-operator"})
    assert app.config["PRODUCTION"] is True


def test_trusted_proxies_must_be_a_count(base_config: dict[str, Any]) -> None:
    with pytest.raises(ConfigError, match="NEWSLETTER_TRUSTED_PROXIES"):
        create_app({**base_config, "TRUSTED_PROXIES": "two"})
