"""Behind a reverse proxy: take the client's address and scheme from the proxy's headers.

Rate limits and consent records need the visitor's own address, not the proxy's. The headers
are trusted only from as many proxies as ``NEWSLETTER_PROXY_COUNT`` says, since any client can
send them.
"""

from __future__ import annotations

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

__all__ = ["init_app"]


def init_app(app: Flask) -> None:
    hops: int = app.config["PROXY_COUNT"]
    if hops:
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=hops, x_proto=hops)  # type: ignore[method-assign]
