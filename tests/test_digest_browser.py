"""A real Chromium renders the digest email and its web version at phone and desktop widths."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.mail.digest import SAMPLE_RECIPIENT, prepare_digest
from newsletter.models import DigestStatus
from newsletter.runtime import get_runtime
from newsletter.services.digests import create_digest
from tests.conftest import axe_violations
from tests.support.articles import add_articles
from tests.support.browser import live_server

ARTIFACTS = Path(__file__).resolve().parent.parent / "test-artifacts"
IMAGE_URL = "https://example.org/media/wide-photo.png"
LONG_WORD = "Antidisestablishmentarianism" * 6
OVERFLOW = "document.documentElement.scrollWidth <= window.innerWidth"
PAGE_RULES = ("landmark-one-main:", "page-has-heading-one:", "region:")


def png(width: int, height: int) -> bytes:
    """A plain grey PNG of the given size, so layout meets a real wide image."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" + b"\x88\x88\x88" * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(row * height))
        + chunk(b"IEND", b"")
    )


WIDE_IMAGE = png(1200, 675)


def serve_images_only(tab: Any) -> None:
    """The test's picture for image requests; nothing else leaves the machine."""

    def handle(route: Any) -> None:
        if route.request.url == IMAGE_URL:
            route.fulfill(status=200, content_type="image/png", body=WIDE_IMAGE)
        elif route.request.url.startswith("http://127.0.0.1"):
            route.continue_()
        else:
            route.abort()

    tab.route("**/*", handle)


def hostile_digest(app: Flask, session: Session) -> Any:
    add_articles(session, [1, 2], image_url=IMAGE_URL)
    add_articles(
        session,
        [3],
        title=f"A title with a very long word {LONG_WORD}",
        summary=f"See https://example.org/{'very-long-path-segment-' * 8} and {LONG_WORD}.",
        url=f"https://example.org/{'x' * 300}",
    )
    digest = create_digest(session, get_runtime(app).site)
    session.commit()
    return digest


def check_layout(tab: Any, name: str) -> None:
    assert tab.evaluate(OVERFLOW), f"{name} overflows horizontally"
    images = tab.evaluate(
        "[...document.images].map(i => [i.naturalWidth, i.getBoundingClientRect().right])"
    )
    width = tab.evaluate("window.innerWidth")
    for natural, right in images:
        assert natural == 1200, "the picture was not loaded"
        assert right <= width
    ARTIFACTS.mkdir(exist_ok=True)
    tab.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


@pytest.mark.browser
@pytest.mark.parametrize("scheme", ["light", "dark"])
@pytest.mark.parametrize("width", [320, 600])
def test_email_fits_phone_and_desktop(
    app: Flask, session: Session, browser: Any, width: int, scheme: str
) -> None:
    runtime = get_runtime(app)
    digest = hostile_digest(app, session)
    html = prepare_digest(session, runtime.site, runtime.renderer, digest).html_for(
        SAMPLE_RECIPIENT
    )
    database = session.get_bind().dialect.name
    context = browser.new_context(viewport={"width": width, "height": 900}, color_scheme=scheme)
    try:
        tab = context.new_page()
        serve_images_only(tab)
        tab.set_content(html, wait_until="load")
        assert tab.get_by_text("Hello Alex,").is_visible()
        assert tab.get_by_role("link", name="Unsubscribe").is_visible()
        assert tab.get_by_role("link", name="View this email in your browser").is_visible()
        assert tab.get_by_role("link", name="View in browser", exact=True).is_visible()
        # Decorative: the title is beside it, so it is not read out again.
        picture = tab.locator("img.article-image").first
        assert picture.is_visible()
        assert picture.get_attribute("alt") == ""
        # An email is a fragment in a mail program's page, not a page: landmarks and a level-one
        # heading are the program's. Every other rule holds (a link that holds only a
        # decorative picture would have no name, say).
        problems = [line for line in axe_violations(tab) if not line.startswith(PAGE_RULES)]
        assert problems == []
        check_layout(tab, f"digest-email-{width}-{scheme}-{database}")
        background = tab.evaluate(
            "getComputedStyle(document.querySelector('.container')).backgroundColor"
        )
        expected = "rgb(30, 30, 30)" if scheme == "dark" else "rgb(255, 255, 255)"
        assert background == expected
    finally:
        context.close()


@pytest.mark.browser
@pytest.mark.parametrize("width", [320, 600])
def test_web_version_fits_and_is_accessible(
    app: Flask, session: Session, browser: Any, width: int
) -> None:
    digest = hostile_digest(app, session)
    digest.status = DigestStatus.SENT
    digest.sent_at = utcnow()
    session.commit()
    database = session.get_bind().dialect.name
    context = browser.new_context(viewport={"width": width, "height": 900})
    try:
        tab = context.new_page()
        serve_images_only(tab)
        with live_server(app) as base:
            tab.goto(f"{base}/digests/{digest.id}", wait_until="load")
            assert tab.get_by_role("heading", level=1).inner_text() == digest.subject
            assert tab.get_by_role("link", name="Article number 2", exact=True).is_visible()
            check_layout(tab, f"digest-web-{width}-{database}")
            assert axe_violations(tab) == []
    finally:
        context.close()
