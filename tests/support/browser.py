"""A live server thread for the app and a headless Chromium driven by Playwright."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from flask import Flask
from werkzeug.serving import BaseWSGIServer, make_server

__all__ = [
    "CHROMIUM",
    "CHROMIUM_ARGS",
    "chromium_profile",
    "live_server",
    "watch_policy_violations",
]

CHROMIUM = "/usr/bin/chromium"
# Without these, Chromium tries to reach outside services that this machine cannot reach.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@contextmanager
def live_server(app: Flask, port: int = 0) -> Iterator[str]:
    """Serve ``app`` on 127.0.0.1 and ``port`` (a free one by default) in a thread; yield its
    base URL."""
    server: BaseWSGIServer = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join(timeout=5)


@contextmanager
def chromium_profile(playwright: Any, folder: Path, *, third_party_cookies: bool) -> Iterator[Any]:
    """A Chromium of its own, whose profile allows or blocks third-party cookies.

    The profile preference ``profile.cookie_controls_mode`` is what chrome://settings/cookies
    sets: 0 allows third-party cookies, 1 blocks them. Playwright's ordinary contexts are
    incognito-like and block them already, which is why a persistent profile says which.
    """
    (folder / "Default").mkdir(parents=True)
    preferences = {"profile": {"cookie_controls_mode": 0 if third_party_cookies else 1}}
    (folder / "Default" / "Preferences").write_text(json.dumps(preferences))
    context = playwright.chromium.launch_persistent_context(
        str(folder), executable_path=CHROMIUM, args=CHROMIUM_ARGS
    )
    try:
        yield context
    finally:
        context.close()


def watch_policy_violations(page: Any) -> list[str]:
    """Content-Security-Policy violations the browser reports (the page's and its frames'),
    collected as they happen."""
    violations: list[str] = []

    def note(message: Any) -> None:
        if "Content Security Policy" in message.text:
            violations.append(message.text)

    page.on("console", note)
    return violations
