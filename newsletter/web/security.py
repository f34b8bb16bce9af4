"""Security headers on every response."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask
from werkzeug.wrappers import Response

from newsletter.origins import origin_of

__all__ = ["init_app", "page_policy"]


def _policy(
    frame_ancestors: str,
    form_action: str = "'self'",
    img_src: str = "'self' data:",
    script_src: str | None = None,
) -> str:
    return "; ".join(
        [
            "default-src 'none'",
            *([f"script-src {script_src}"] if script_src else []),
            "style-src 'self'",
            f"img-src {img_src}",
            f"form-action {form_action}",
            "base-uri 'none'",
            f"frame-ancestors {frame_ancestors}",
        ]
    )


def page_policy(config: Mapping[str, Any], *, scripts: bool = False) -> str:
    """The Content-Security-Policy of our pages.

    The form may send the person back to the organisation's pages after a signup from a box
    there, and the logo may live on the organisation's site. ``scripts`` lets our own script
    files run, and nothing else: the box in a frame tells its height to the page around it.
    """
    logo = origin_of(config["LOGO_URL"])
    return _policy(
        config["FRAME_ANCESTORS"],
        form_action=" ".join(["'self'", *config["EMBED_ORIGINS"]]),
        img_src=" ".join(["'self'", "data:", *([logo] if logo else [])]),
        script_src="'self'" if scripts else None,
    )


def init_app(app: Flask) -> None:
    policy = page_policy(app.config)

    @app.after_request
    def _add_headers(response: Response) -> Response:
        response.headers.setdefault("Content-Security-Policy", policy)
        response.headers.setdefault("X-Content-Type-Options", "nosniff")
        response.headers.setdefault("Referrer-Policy", "strict-origin-when-cross-origin")
        response.headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if response.mimetype == "text/html":
            # Pages carry per-visitor CSRF tokens and links; never keep them in shared caches.
            response.headers.setdefault("Cache-Control", "no-store")
        return response
