"""Rate limits per client address: on signup POSTs, and on the bounce webhooks."""

from __future__ import annotations

from typing import cast

from flask import Flask, current_app
from flask.typing import RouteCallable
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from limits.errors import ConfigurationError

from newsletter.config import ConfigError

__all__ = ["init_app"]

LIMITED_ENDPOINTS = ("signup.subscribe", "signup.renew_confirmation")
WEBHOOK_ENDPOINTS = ("webhooks.receive",)


def _signup_limit() -> str:
    return str(current_app.config["SIGNUP_RATE_LIMIT"])


def _webhook_limit() -> str:
    return str(current_app.config["WEBHOOK_RATE_LIMIT"])


def init_app(app: Flask) -> None:
    """One limiter per app, so each app (and each test) has its own counters and storage."""
    try:
        limiter = Limiter(
            get_remote_address,
            app=app,
            storage_uri=app.config["RATELIMIT_STORAGE_URI"],
            default_limits=[],
        )
    except ConfigurationError as error:
        # An unknown scheme, or redis:// without the redis package installed.
        raise ConfigError(f"NEWSLETTER_RATELIMIT_STORAGE_URI: {error}") from None
    for endpoints, limit in (
        (LIMITED_ENDPOINTS, _signup_limit),
        (WEBHOOK_ENDPOINTS, _webhook_limit),
    ):
        for endpoint in endpoints:
            # Flask-Limiter checks a decorated limit in the wrapper it returns, so the wrapper
            # must replace the view; the limit is never checked otherwise.
            view = app.view_functions[endpoint]
            limited = limiter.limit(limit, methods=["POST"])(view)
            app.view_functions[endpoint] = cast(RouteCallable, limited)
    app.extensions["newsletter.limiter"] = limiter
