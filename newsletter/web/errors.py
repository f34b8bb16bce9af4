"""Friendly error pages; no traceback ever reaches a visitor."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from werkzeug.exceptions import HTTPException, InternalServerError

__all__ = ["init_app"]

log = logging.getLogger(__name__)

MESSAGES = {
    400: ("Something was wrong with that request", "Please go back and try again."),
    404: ("Page not found", "The page you asked for is not here."),
    405: ("Not allowed", "That page cannot be used this way."),
    429: ("Too many attempts", "Please wait a minute and try again."),
    500: ("Something went wrong on our side", "Please try again in a little while."),
}


def _page(status: int) -> tuple[str, int]:
    title, detail = MESSAGES.get(status, MESSAGES[500] if status >= 500 else MESSAGES[400])
    return render_template("error.html", title=title, detail=detail, status=status), status


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> tuple[str, int]:
        return _page(error.code or 500)

    @app.errorhandler(InternalServerError)
    def _server_error(error: InternalServerError) -> tuple[str, int]:
        log.error("unhandled error: %s", error.original_exception or error)
        return _page(500)
