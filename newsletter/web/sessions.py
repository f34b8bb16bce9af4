"""The signed session cookie (it carries our form's CSRF token), with its signer made once.

Flask builds a new serializer for every request, twice when the session is saved: the keys
list, and a trial ``dumps`` to tell whether the serializer writes text. For a signup (the form
page sets the cookie, its POST reads it) that was a tenth of the requests' own work. The
serializer holds nothing but the keys, so one serves every request while they stay the same.
"""

from __future__ import annotations

from flask import Flask
from flask.sessions import SecureCookieSessionInterface
from itsdangerous import URLSafeTimedSerializer

__all__ = ["KeptSignerSessions", "init_app"]


class KeptSignerSessions(SecureCookieSessionInterface):
    """Flask's own signed-cookie sessions, reusing the serializer while the keys are the same."""

    def __init__(self) -> None:
        self._kept: tuple[tuple[object, ...], URLSafeTimedSerializer | None] | None = None

    def get_signing_serializer(self, app: Flask) -> URLSafeTimedSerializer | None:
        keys = (app.secret_key, *app.config["SECRET_KEY_FALLBACKS"])
        kept = self._kept
        if kept is None or kept[0] != keys:
            kept = self._kept = (keys, super().get_signing_serializer(app))
        return kept[1]


def init_app(app: Flask) -> None:
    app.session_interface = KeptSignerSessions()
