"""newsletter: a self-hosted newsletter signup and digest mailing service."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from newsletter import app_db, cli, logs, runtime
from newsletter.config import ConfigError, load_config
from newsletter.resources import resource_path
from newsletter.web import (
    archive,
    branding,
    dispatch,
    embed,
    errors,
    health,
    limits,
    preferences,
    security,
    sessions,
    signup,
    unsubscribe,
    webhooks,
)

__all__ = ["ConfigError", "create_app"]


def create_app(config: Mapping[str, Any] | None = None) -> Flask:
    """Build the app from defaults, ``NEWSLETTER_*`` variables and ``config`` (for tests)."""
    app = Flask(
        __name__,
        instance_path=_instance_path(config),
        template_folder=str(resource_path("templates")),
    )
    load_config(app, config)
    logs.init_app(app)
    _register_proxy_fix(app)
    _register_database(app)
    _register_blueprints(app)
    _register_extensions(app)
    _register_errorhandlers(app)
    _register_commands(app)
    return app


def _instance_path(config: Mapping[str, Any] | None) -> str | None:
    chosen = (config or {}).get("INSTANCE_PATH") or os.environ.get("NEWSLETTER_INSTANCE_PATH")
    return str(Path(chosen).resolve()) if chosen else None


def _register_proxy_fix(app: Flask) -> None:
    """Behind N trusted proxies, take the client's address from X-Forwarded-For; with none,
    a forged header from a client is ignored."""
    proxies = app.config["TRUSTED_PROXIES"]
    if proxies:
        app.wsgi_app = ProxyFix(  # type: ignore[method-assign]
            app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies
        )


def _register_database(app: Flask) -> None:
    app_db.init_app(app)
    runtime.init_app(app)


def _register_blueprints(app: Flask) -> None:
    app.register_blueprint(signup.bp)
    app.register_blueprint(health.bp)
    app.register_blueprint(archive.bp)
    app.register_blueprint(unsubscribe.bp)
    app.register_blueprint(preferences.bp)
    app.register_blueprint(embed.bp)
    app.register_blueprint(branding.bp)
    app.register_blueprint(webhooks.bp)


def _register_extensions(app: Flask) -> None:
    dispatch.init_app(app, runtime.get_runtime(app).outbox())
    limits.init_app(app)
    sessions.init_app(app)
    security.init_app(app)
    embed.init_app(app)
    webhooks.init_app(app)


def _register_errorhandlers(app: Flask) -> None:
    errors.init_app(app)


def _register_commands(app: Flask) -> None:
    cli.register_commands(app)
