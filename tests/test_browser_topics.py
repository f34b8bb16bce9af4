"""Choosing topics in a real browser (Chromium through Playwright): two ticked on /subscribe
are stored; axe-core finds nothing wrong with the form that offers them."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect
from sqlalchemy.orm import Session

from newsletter.app_db import session_factory
from newsletter.services.topics import topics_of
from tests.conftest import axe_violations
from tests.support.browser import live_server, watch_policy_violations
from tests.support.records import subscriber
from tests.support.topics import make_topic

pytestmark = pytest.mark.browser


def test_person_ticks_two_topics_and_holds_them(app: Flask, page: Any, session: Session) -> None:
    for slug in ["asylum", "north-korea", "prisons"]:
        make_topic(session, slug)
    violations = watch_policy_violations(page)
    with live_server(app) as base:
        page.goto(f"{base}/subscribe")
        topics = page.get_by_role("group", name="What would you like to hear about?")
        expect(topics).to_be_visible()
        expect(topics.get_by_role("checkbox")).to_have_count(3)
        assert axe_violations(page) == []

        page.get_by_label("First name").fill("Ada")
        page.get_by_label("Last name").fill("Lovelace")
        page.get_by_label("Email address").fill("ada@example.org")
        topics.get_by_role("checkbox", name="North Korea").check()
        topics.get_by_role("checkbox", name="Prisons").check()
        page.get_by_role("checkbox", name="By signing up you will receive news").check()
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()

    person = subscriber(app, "ada@example.org")
    assert person is not None
    with session_factory(app)() as check:
        assert topics_of(check, [person.id]) == {person.id: ("north-korea", "prisons")}
    assert violations == []
