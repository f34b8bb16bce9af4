"""Security headers on every response, and the site's Content-Security-Policy."""

from __future__ import annotations

from flask import Flask, current_app
from werkzeug.wrappers import Response

from newsletter import csp

__all__ = ["SITE_POLICY", "init_app", "policy_with"]

# No script anywhere, styles and images from this site only; frame-ancestors comes from the
# settings (NEWSLETTER_FRAME_ANCESTORS).
SITE_POLICY: csp.Policy = {
    "default-src": ["'none'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
}
EXTENSION = "newsletter.content_security_policy"


def init_app(app: Flask) -> None:
    frame_ancestors = csp.sources(app.config["FRAME_ANCESTORS"])
    directives = csp.extend(SITE_POLICY, {"frame-ancestors": frame_ancestors})
    app.extensions[EXTENSION] = directives
    policy = csp.header(directives)

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


def policy_with(changes: csp.Policy) -> str:
    """The site's policy with some directives replaced, for pages that need other sources."""
    directives: csp.Policy = current_app.extensions[EXTENSION]
    return csp.header({**directives, **changes})
