"""The long-lived objects one app instance works with: site values, renderer, mail transport."""

from __future__ import annotations

from flask import Flask, current_app

from newsletter.app_db import session_factory
from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import transport_from_url
from newsletter.services.confirmations import Outbox
from newsletter.services.mailroom import Mailroom
from newsletter.site import Site

__all__ = ["Runtime", "get_runtime", "init_app"]


class Runtime(Mailroom):
    """The app's mailroom, and its outbox."""

    __slots__ = ()

    def outbox(self) -> Outbox:
        return Outbox(self)


def init_app(app: Flask) -> None:
    app.extensions["newsletter.runtime"] = Runtime(
        site=Site.from_config(app.config),
        sessions=session_factory(app),
        renderer=EmailRenderer(),
        transport=transport_from_url(app.config["MAIL_URL"], app.config["SMTP_TIMEOUT"]),
    )


def get_runtime(app: Flask | None = None) -> Runtime:
    runtime: Runtime = (app or current_app).extensions["newsletter.runtime"]
    return runtime
