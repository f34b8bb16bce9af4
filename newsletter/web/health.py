"""``GET /healthz`` (readiness: the database answers) and ``GET /livez`` (liveness: the
process answers) for load balancers and monitors."""

from __future__ import annotations

import logging

from flask import Blueprint
from sqlalchemy import text
from sqlalchemy.exc import SQLAlchemyError

from newsletter.app_db import get_session

__all__ = ["bp"]

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__)


@bp.get("/healthz")
def healthz() -> tuple[dict[str, str], int]:
    try:
        get_session().execute(text("SELECT 1"))
    except SQLAlchemyError as error:
        log.warning("health check: database unreachable: %s", error)
        return {"status": "error", "database": "unreachable"}, 503
    return {"status": "ok", "database": "ok"}, 200


@bp.get("/livez")
def livez() -> tuple[str, int, dict[str, str]]:
    """The process serves requests; touches nothing else, so a database outage does not get
    healthy workers restarted."""
    return "ok", 200, {"Content-Type": "text/plain; charset=utf-8", "Cache-Control": "no-store"}
