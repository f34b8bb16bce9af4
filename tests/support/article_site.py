"""The organisation's own site for browser tests: static pages on 127.0.0.1, visited as
``http://localhost:PORT``, which a browser takes for another site than the app on
``http://127.0.0.1:OTHER`` (and ``http://127.0.0.1:PORT`` for a third, unlisted one).

Pages are ``examples/article.html`` with the box the test pastes into it, served with the
Content-Security-Policy that docs/embedding.md tells the organisation to send.
"""

from __future__ import annotations

import http.server
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "ArticleSite",
    "article_page",
    "host_policy",
    "running_article_site",
    "without_script",
]

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
BOX = re.compile(r"(<!-- newsletter box -->\n).*?(\n<!-- /newsletter box -->)", re.S)


def article_page(box: str) -> str:
    """The sample article page with ``box`` pasted where its signup box goes."""
    page = (EXAMPLES / "article.html").read_text()
    return BOX.sub(lambda match: f"{match.group(1)}{box.strip()}{match.group(2)}", page)


def without_script(box: str) -> str:
    """The plain box alone: the printed box without its optional script line."""
    return "\n".join(line for line in box.splitlines() if "<script" not in line)


def host_policy(app_base: str) -> str:
    """The Content-Security-Policy docs/embedding.md gives for a site that carries the box."""
    return (
        f"default-src 'self'; script-src 'self' {app_base}; connect-src 'self' {app_base}; "
        f"frame-src {app_base}; form-action 'self' {app_base}"
    )


@dataclass
class ArticleSite:
    port: int
    pages: dict[str, tuple[str, dict[str, str]]] = field(default_factory=dict)

    @property
    def origin(self) -> str:
        return f"http://localhost:{self.port}"

    @property
    def unlisted_origin(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def put(self, path: str, html: str, headers: dict[str, str] | None = None) -> str:
        """Serve ``html`` at ``path``; return its address on the site."""
        self.pages[path] = (html, headers or {})
        return f"{self.origin}{path}"


def _handler(site: ArticleSite) -> type[http.server.BaseHTTPRequestHandler]:
    class Handler(http.server.BaseHTTPRequestHandler):
        def log_message(self, format: str, *args: object) -> None:
            return None

        def do_GET(self) -> None:
            path = self.path.split("?", 1)[0]
            if path.endswith("/article.css"):
                self._send((EXAMPLES / "article.css").read_bytes(), "text/css", {})
            elif path == "/cookie-probe":
                # A cookie a framed page of another site may set only if third-party cookies
                # are allowed.
                headers = {"Set-Cookie": "probe=1; Path=/; SameSite=None; Secure"}
                self._send(b"<!doctype html><title>probe</title>", "text/html", headers)
            elif path in site.pages:
                html, headers = site.pages[path]
                self._send(html.encode(), "text/html; charset=utf-8", headers)
            else:
                self._send(b"not here", "text/plain", {}, status=404)

        def _send(
            self, body: bytes, content_type: str, headers: dict[str, str], status: int = 200
        ) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

    return Handler


@contextmanager
def running_article_site() -> Iterator[ArticleSite]:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _handler(ArticleSite(0)))
    site = ArticleSite(server.server_port)
    server.RequestHandlerClass = _handler(site)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield site
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
