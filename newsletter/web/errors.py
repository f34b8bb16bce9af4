"""Friendly error pages; no traceback ever reaches a visitor."""

from __future__ import annotations

import logging

from flask import Flask, render_template
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.datastructures import Headers
from werkzeug.exceptions import HTTPException, InternalServerError

from newsletter.app_db import get_engine
from newsletter.database_errors import explain, schema_problem

__all__ = ["DATABASE_RETRY_SECONDS", "init_app"]

log = logging.getLogger(__name__)

DATABASE_RETRY_SECONDS = 60

MESSAGES = {
    400: ("Something was wrong with that request", "Please go back and try again."),
    403: (
        "This form cannot be sent from there",
        "The page it was on is not one of ours. Please sign up with the form below.",
    ),
    404: ("Page not found", "The page you asked for is not here."),
    405: ("Not allowed", "That page cannot be used this way."),
    429: ("Too many attempts", "Please wait a minute and try again."),
    500: ("Something went wrong on our side", "Please try again in a little while."),
    503: ("We cannot take requests just now", "Please try again in a few minutes."),
}

Page = tuple[str, int, Headers]


def _page(status: int, headers: Headers | None = None) -> Page:
    title, detail = MESSAGES.get(status, MESSAGES[500] if status >= 500 else MESSAGES[400])
    page = render_template("error.html", title=title, detail=detail, status=status)
    return page, status, headers or Headers()


def _kept_headers(error: HTTPException) -> Headers:
    """The exception's own headers (Allow on 405, Retry-After on 429), without its body type."""
    return Headers([(k, v) for k, v in error.get_headers() if k.lower() != "content-type"])


def init_app(app: Flask) -> None:
    @app.errorhandler(HTTPException)
    def _http_error(error: HTTPException) -> Page:
        return _page(error.code or 500, _kept_headers(error))

    @app.errorhandler(InternalServerError)
    def _server_error(error: InternalServerError) -> Page:
        # Flask has already logged the traceback of an unhandled exception.
        log.error("answered 500: %s", error.original_exception or error)
        return _page(500)

    @app.errorhandler(OperationalError)
    @app.errorhandler(PoolTimeout)
    def _database_unavailable(error: SQLAlchemyError) -> Page:
        # The database is down, overloaded or has no tables yet: say so, and when to come back.
        log.error("database unavailable: %s", explain(error, get_engine()))
        return _page(503, Headers({"Retry-After": str(DATABASE_RETRY_SECONDS)}))

    @app.errorhandler(ProgrammingError)
    def _schema_missing(error: ProgrammingError) -> Page:
        # PostgreSQL's "no such table" before `newsletter db upgrade`; any other programming
        # error is a bug, and goes on to the 500 page with its traceback in the log.
        if schema_problem(get_engine()) is None:
            raise error
        return _database_unavailable(error)
