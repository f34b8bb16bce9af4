"""The preferences page in a real browser (Chromium through Playwright) on a 320 px screen:
axe-core finds nothing wrong, nothing overflows, and a change is saved and shown."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.links import preferences_url
from newsletter.people import Person
from newsletter.runtime import get_runtime
from newsletter.services.topics import topics_of
from tests.conftest import axe_violations
from tests.support.browser import live_server, watch_policy_violations
from tests.support.people import add_subscriber
from tests.support.topics import choose, make_topic

pytestmark = pytest.mark.browser

NARROW = {"width": 320, "height": 800}


def test_preferences_page_on_a_narrow_screen(app: Flask, page: Any, session: Session) -> None:
    for slug in ["asylum", "north-korea", "prisons"]:
        make_topic(session, slug)
    ada = add_subscriber(session, "ada@example.org", "Ada", "Lovelace")
    choose(session, ada, ["prisons"])
    person = Person(ada.id, ada.token_nonce, ada.email, ada.first_name, ada.last_name)
    path = preferences_url(get_runtime(app).site, person).split("/preferences/", 1)[1]
    violations = watch_policy_violations(page)
    page.set_viewport_size(NARROW)
    with live_server(app) as base:
        page.goto(f"{base}/preferences/{path}")
        expect(page.get_by_role("heading", name="Your preferences")).to_be_visible()
        assert axe_violations(page) == []
        # Nothing wider than the screen: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth") <= NARROW["width"]

        topics = page.get_by_role("group", name="What would you like to hear about?")
        expect(topics.get_by_role("checkbox", name="Prisons")).to_be_checked()
        topics.get_by_role("checkbox", name="Asylum").check()
        page.get_by_role("button", name="Save my preferences").click()
        expect(page.get_by_role("status")).to_contain_text("Added: Asylum")
        assert axe_violations(page) == []

    with session_factory(app)() as check:
        assert topics_of(check, [ada.id]) == {ada.id: ("asylum", "prisons")}
    assert violations == []
