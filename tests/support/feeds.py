"""Feeds for tests: building RSS, Atom and JSON Feed documents, and a web server on 127.0.0.1
that serves them, slowly, hugely or not at all."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from email.utils import format_datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from ipaddress import ip_network
from typing import Any
from xml.sax.saxutils import escape

from newsletter.outbound import AddressPolicy

__all__ = ["FeedServer", "Item", "atom", "feed_server", "json_feed", "rss"]


@dataclass
class Item:
    guid: str
    title: str
    published: datetime
    link: str = ""
    description: str = ""
    content: str = ""
    image: str = ""
    categories: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return self.link or f"https://example.org/news/{self.guid}"


def rss(items: list[Item], title: str = "Example news") -> bytes:
    """An RSS 2.0 document with ``content:encoded`` and Media RSS images."""
    parts = [
        '<?xml version="1.0" encoding="UTF-8"?>',
        '<rss version="2.0" xmlns:content="http://purl.org/rss/1.0/modules/content/" '
        'xmlns:media="http://search.yahoo.com/mrss/">',
        f"<channel><title>{escape(title)}</title><link>https://example.org/</link>",
        "<description>News</description>",
    ]
    for item in items:
        parts.append("<item>")
        parts.append(f"<title>{escape(item.title)}</title>")
        parts.append(f"<link>{escape(item.url)}</link>")
        parts.append(f'<guid isPermaLink="false">{escape(item.guid)}</guid>')
        parts.append(f"<pubDate>{format_datetime(item.published)}</pubDate>")
        if item.description:
            parts.append(f"<description>{escape(item.description)}</description>")
        if item.content:
            parts.append(f"<content:encoded>{escape(item.content)}</content:encoded>")
        if item.image:
            parts.append(f'<media:content url="{escape(item.image)}" medium="image"/>')
        parts.extend(f"<category>{escape(name)}</category>" for name in item.categories)
        parts.append("</item>")
    parts.append("</channel></rss>")
    return "\n".join(parts).encode()


def atom(items: list[Item], title: str = "Example news") -> bytes:
    """An Atom 1.0 document with HTML summaries and content."""
    parts = [
        '<?xml version="1.0" encoding="utf-8"?>',
        '<feed xmlns="http://www.w3.org/2005/Atom">',
        f"<title>{escape(title)}</title><id>urn:example:feed</id>",
        "<updated>2025-03-28T09:00:00Z</updated>",
    ]
    for item in items:
        parts.append("<entry>")
        parts.append(f'<title type="text">{escape(item.title)}</title>')
        parts.append(f'<link rel="alternate" href="{escape(item.url)}"/>')
        parts.append(f"<id>{escape(item.guid)}</id>")
        parts.append(f"<updated>{item.published.isoformat()}</updated>")
        parts.append(f"<published>{item.published.isoformat()}</published>")
        if item.description:
            parts.append(f'<summary type="html">{escape(item.description)}</summary>')
        if item.content:
            parts.append(f'<content type="html">{escape(item.content)}</content>')
        parts.extend(f'<category term="{escape(name)}"/>' for name in item.categories)
        parts.append("</entry>")
    parts.append("</feed>")
    return "\n".join(parts).encode()


def json_feed(items: list[dict[str, Any]], title: str = "Example news") -> bytes:
    """A JSON Feed 1.1 document with the given items."""
    document = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": title,
        "home_page_url": "https://example.org/",
        "feed_url": "https://example.org/feed.json",
        "items": items,
    }
    return json.dumps(document).encode()


Route = Callable[[BaseHTTPRequestHandler], None]


@dataclass
class FeedServer:
    """Routes by path; ``requests`` lists every path asked for."""

    host: str = "127.0.0.1"
    port: int = 0
    base: str = ""
    routes: dict[str, Route] = field(default_factory=dict)
    requests: list[str] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def url(self, path: str) -> str:
        return f"{self.base}{path}"

    @property
    def policy(self) -> AddressPolicy:
        """Downloads may reach this server's address, and no other loopback or private one
        (the production default reaches none)."""
        return AddressPolicy(allowed=(ip_network(self.host),))

    def serve(self, path: str, body: bytes, content_type: str = "application/rss+xml") -> str:
        def route(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", content_type)
            handler.send_header("Content-Length", str(len(body)))
            handler.end_headers()
            handler.wfile.write(body)

        self.routes[path] = route
        return self.url(path)

    def trickle(self, path: str, seconds: float) -> str:
        """A feed that sends one byte every 0.1 s for ``seconds``."""

        def route(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            handler.end_headers()
            until = time.monotonic() + seconds
            while time.monotonic() < until and not self.stop.is_set():
                handler.wfile.write(b" ")
                handler.wfile.flush()
                time.sleep(0.1)

        self.routes[path] = route
        return self.url(path)

    def silent(self, path: str, seconds: float) -> str:
        """A server that accepts the request and says nothing for ``seconds``."""

        def route(handler: BaseHTTPRequestHandler) -> None:
            self.stop.wait(seconds)

        self.routes[path] = route
        return self.url(path)

    def endless(self, path: str, total: int, declare: int | None = None) -> str:
        """``total`` bytes of feed-looking data, with an optional declared Content-Length."""

        def route(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(200)
            handler.send_header("Content-Type", "application/rss+xml")
            if declare is not None:
                handler.send_header("Content-Length", str(declare))
            handler.end_headers()
            handler.wfile.write(b'<rss version="2.0"><channel><title>big</title>')
            chunk = b"<!-- padding -->" * 4096
            sent = 0
            while sent < total and not self.stop.is_set():
                handler.wfile.write(chunk)
                sent += len(chunk)

        self.routes[path] = route
        return self.url(path)

    def redirect(self, path: str, location: str) -> str:
        def route(handler: BaseHTTPRequestHandler) -> None:
            handler.send_response(302)
            handler.send_header("Location", location)
            handler.send_header("Content-Length", "0")
            handler.end_headers()

        self.routes[path] = route
        return self.url(path)


@contextmanager
def feed_server(host: str = "127.0.0.1") -> Iterator[FeedServer]:
    """A threaded web server on ``host`` (any address of 127.0.0.0/8 works on Linux) and a
    free port, stopped afterwards."""
    state = FeedServer(host=host)

    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.0"

        def do_GET(self) -> None:
            state.requests.append(self.path)
            route = state.routes.get(self.path)
            if route is None:
                self.send_error(404, "Not Found")
                return
            try:
                route(self)
            except (BrokenPipeError, ConnectionResetError):
                # The client gave up (size or time limit): that is what the test wanted.
                return

        def log_message(self, format: str, *args: Any) -> None:
            return None

    server = ThreadingHTTPServer((host, 0), Handler)
    server.daemon_threads = True
    state.port = server.server_port
    state.base = f"http://{host}:{state.port}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield state
    finally:
        state.stop.set()
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
