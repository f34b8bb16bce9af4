"""The organisation's look on our pages: its colour (``/brand.css``), logo and privacy notice."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, current_app
from werkzeug.wrappers import Response

__all__ = ["bp"]

bp = Blueprint("branding", __name__)

# The address carries the colour, so the sheet may be kept for as long as the address lives.
CACHE = "public, max-age=31536000, immutable"


@bp.get("/brand.css")
def stylesheet() -> Response:
    # The colour was checked to be #rrggbb at start-up: nothing else can reach the sheet.
    colour = current_app.config["BRAND_COLOUR"]
    response = current_app.response_class(f":root {{ --accent: {colour}; }}\n", mimetype="text/css")
    response.headers["Cache-Control"] = CACHE
    return response


@bp.app_context_processor
def _brand() -> dict[str, Any]:
    config = current_app.config
    return {
        "brand": {
            "colour": config["BRAND_COLOUR"],
            "logo_url": config["LOGO_URL"],
            "privacy_url": config["PRIVACY_URL"],
        }
    }
