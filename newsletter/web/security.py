"""Security headers on every response, and the site's Content-Security-Policy."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from flask import Flask, current_app
from werkzeug.wrappers import Response

from newsletter import csp
from newsletter.origins import origin_of

__all__ = ["SITE_POLICY", "init_app", "page_policy", "policy_with"]

# No script anywhere, styles and images from this site only; frame-ancestors comes from the
# settings (NEWSLETTER_FRAME_ANCESTORS, with the origins of NEWSLETTER_EMBED_ORIGINS).
SITE_POLICY: csp.Policy = {
    "default-src": ["'none'"],
    "style-src": ["'self'"],
    "img-src": ["'self'", "data:"],
    "form-action": ["'self'"],
    "base-uri": ["'none'"],
}
EXTENSION = "newsletter.content_security_policy"
# Our own script files, and nothing else: the box in a frame tells its height to the page
# around it.
OWN_SCRIPTS: csp.Policy = {"script-src": ["'self'"]}


def site_directives(config: Mapping[str, Any]) -> dict[str, tuple[str, ...]]:
    """The policy of our pages for these settings.

    The form may send the person back to the organisation's pages after a signup from a box
    there, and the logo may live on the organisation's site.
    """
    logo = origin_of(config["LOGO_URL"])
    return csp.extend(
        SITE_POLICY,
        {
            "form-action": list(config["EMBED_ORIGINS"]),
            "img-src": [logo] if logo else [],
            "frame-ancestors": csp.sources(config["FRAME_ANCESTORS"]),
        },
    )


def init_app(app: Flask) -> None:
    directives = site_directives(app.config)
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


def page_policy(*, scripts: bool = False) -> str:
    """The site's policy, letting our own script files run when ``scripts``."""
    return policy_with(OWN_SCRIPTS if scripts else {})
