"""Take the screenshots of docs/embedding.md: each style of signup box on the sample article
page (examples/article.html), in Debian's Chromium through Playwright; then, for
docs/topics.md, our own form once topics exist and a reader's preferences page on a phone.

    .venv/bin/python scripts/screenshots.py      # after `bash scripts/test.sh` set things up

The app runs on a throw-away SQLite database and the article page on another site, as in
the browser tests; nothing is sent anywhere (mail goes to a maildir in a temporary folder).
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.sync_api import sync_playwright  # noqa: E402
from sqlalchemy import select  # noqa: E402

from newsletter import create_app  # noqa: E402
from newsletter.addresses import email_key  # noqa: E402
from newsletter.app_db import get_engine  # noqa: E402
from newsletter.app_db import get_session as app_session  # noqa: E402
from newsletter.links import preferences_url  # noqa: E402
from newsletter.migrate import upgrade  # noqa: E402
from newsletter.models import Subscriber, SubscriberTopic  # noqa: E402
from newsletter.people import Person  # noqa: E402
from newsletter.runtime import get_runtime  # noqa: E402
from newsletter.services.topics import find_topic  # noqa: E402
from tests.support.article_site import (  # noqa: E402
    article_page,
    host_policy,
    running_article_site,
    without_script,
)
from tests.support.browser import CHROMIUM, CHROMIUM_ARGS, live_server  # noqa: E402
from tests.support.smtp import free_port  # noqa: E402

IMAGES = ROOT / "docs" / "images"
WIDTH = 680
PHONE = 320


def _fill(page: Any, email: str, tick: bool = True) -> None:
    page.get_by_label("First name").fill("Dalia")
    page.get_by_label("Email address").fill(email)
    if tick:
        page.get_by_role("checkbox").check()


def _with_errors(page: Any) -> None:
    _fill(page, "dalia.osei@", tick=False)
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("alert").wait_for()


def _done(page: Any) -> None:
    _fill(page, "dalia.osei@example.org")
    page.get_by_label("Last name").fill("Osei")
    page.get_by_role("button", name="Sign up").click()
    page.get_by_role("status").wait_for()


def _frame_fitted(page: Any) -> None:
    page.frame_locator("iframe").get_by_role("button", name="Sign up").wait_for()
    page.wait_for_function("document.querySelector('iframe').style.height !== ''")


# Added after the boxes are taken, which show the form as it is without topics.
TOPICS = [("asylum", "Asylum"), ("north-korea", "North Korea"), ("press-freedom", "Press freedom")]

SHOTS: list[tuple[str, str, Callable[[Any], None] | None]] = [
    ("embed-html.png", "html", None),
    ("embed-script-errors.png", "script", _with_errors),
    ("embed-script-done.png", "script", _done),
    ("embed-iframe.png", "iframe", _frame_fitted),
]


def _preferences(app: Any, page: Any, base: str) -> None:
    """A reader's preferences page on a phone, as the link in every email opens it."""
    with app.app_context():
        session = app_session()
        session.add(
            Subscriber(
                email="amira@example.org",
                email_key=email_key("amira@example.org"),
                first_name="Amira",
                last_name="Haddad",
                status="active",
            )
        )
        session.commit()
        amira = session.scalars(
            select(Subscriber).where(Subscriber.email_key == email_key("amira@example.org"))
        ).one()
        session.add(
            SubscriberTopic(subscriber_id=amira.id, topic_id=find_topic(session, "asylum").id)
        )
        session.commit()
        person = Person(amira.id, amira.token_nonce, amira.email, amira.first_name, amira.last_name)
        url = preferences_url(get_runtime(app).site, person)
    page.set_viewport_size({"width": PHONE, "height": 900})
    assert url.startswith(base)
    page.goto(url)
    page.screenshot(path=str(IMAGES / "preferences.png"), full_page=True)
    print(f"wrote {IMAGES / 'preferences.png'}")


def main() -> None:
    with tempfile.TemporaryDirectory() as folder, running_article_site() as site:
        port = free_port()
        base = f"http://127.0.0.1:{port}"
        app = create_app(
            {
                "INSTANCE_PATH": folder,
                "BASE_URL": base,
                "ORGANISATION": "Harbourside Rights Trust",
                "EMBED_ORIGINS": site.origin,
                "PRIVACY_URL": "https://example.org/privacy",
                "MAIL_URL": f"maildir://{folder}/outbox",
                "SIGNUP_MIN_SECONDS": 0,
            }
        )
        upgrade(get_engine(app))
        runner = app.test_cli_runner()
        printed = {
            style: runner.invoke(args=["embed", "--style", style]).stdout
            for style in ("html", "iframe")
        }
        boxes = {
            "html": without_script(printed["html"]),
            "script": printed["html"],
            "iframe": printed["iframe"],
        }
        with live_server(app, port), sync_playwright() as playwright:
            browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            page = browser.new_page(viewport={"width": WIDTH, "height": 1000})
            for image, style, action in SHOTS:
                headers = {"Content-Security-Policy": host_policy(base)}
                page.goto(site.put(f"/news/{image}.html", article_page(boxes[style]), headers))
                if action is not None:
                    action(page)
                # The end of the article and the box below it, as a reader scrolls to it.
                top = page.locator("article p").last.bounding_box()
                bottom = page.locator("section.signup").bounding_box()
                assert top is not None and bottom is not None
                clip = {
                    "x": 0,
                    "y": top["y"] - 16,
                    "width": WIDTH,
                    "height": bottom["y"] + bottom["height"] - top["y"] + 32,
                }
                page.screenshot(path=str(IMAGES / image), clip=clip, full_page=True)
                print(f"wrote {IMAGES / image}")
            for slug, name in TOPICS:
                runner.invoke(args=["topics", "add", slug, "--name", name])
            # As a link from a topic's page opens it: that topic ticked already.
            page.goto(f"{base}/subscribe?topic=north-korea")
            page.screenshot(path=str(IMAGES / "signup-topics.png"), full_page=True)
            print(f"wrote {IMAGES / 'signup-topics.png'}")
            _preferences(app, page, base)
            browser.close()


if __name__ == "__main__":
    main()
