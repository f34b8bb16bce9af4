"""A person in a real browser (Debian's Chromium through Playwright): the form, its errors,
a successful signup, and the confirmation link from the outbox; axe-core checks each page."""

from __future__ import annotations

from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from tests.conftest import axe_violations
from tests.support.browser import live_server, watch_policy_violations
from tests.support.mailbox import find_link
from tests.support.records import events, subscriber

pytestmark = pytest.mark.browser

ERROR_RED = "rgb(176, 0, 32)"


def test_person_signs_up_fixes_errors_and_confirms(
    app: Flask, page: Any, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    violations = watch_policy_violations(page)
    with live_server(app) as base:
        page.goto(f"{base}/subscribe")
        expect(page.get_by_role("heading", name="Sign up for updates")).to_be_visible()
        expect(page.get_by_text("* mandatory fields")).to_be_visible()
        first = page.get_by_label("First name")
        last = page.get_by_label("Last name")
        email = page.get_by_label("Email address")
        consent = page.get_by_role("checkbox", name="By signing up you will receive news")
        for field in (first, last, email, consent):
            expect(field).to_be_visible()
        expect(page.locator("#website")).to_be_hidden()
        assert axe_violations(page) == []

        # The keyboard goes from field to field and never into the hidden honeypot.
        first.focus()
        visited = []
        for _ in range(4):
            page.keyboard.press("Tab")
            visited.append(
                page.evaluate("document.activeElement.id || document.activeElement.tagName")
            )
        assert visited == ["last_name", "email", "consent", "BUTTON"]

        # Sending it empty: every field says what it needs, and the summary is announced.
        page.get_by_role("button", name="Sign up").click()
        expect(page.get_by_role("alert")).to_contain_text("Please correct the fields marked below.")
        expect(first).to_have_attribute("aria-invalid", "true")
        expect(first).to_be_focused()
        expect(first).to_have_accessible_description("First name is required.")
        expect(last).to_have_accessible_description("Last name is required.")
        expect(email).to_have_accessible_description("Email address is required.")
        expect(consent).to_have_accessible_description(
            "Tick the box to agree to receive our emails."
        )
        # A field to correct has a red border, not the grey of the others.
        for field in (first, last, email):
            expect(field).to_have_css("border-top-color", ERROR_RED)
            expect(field).to_have_css("border-top-width", "2px")
        # The summary lists each message as a link that takes the visitor to its field.
        summary = page.get_by_role("alert")
        expect(summary.get_by_role("link")).to_have_count(4)
        summary.get_by_role("link", name="Email address is required.").click()
        expect(email).to_be_focused()
        page.emulate_media(color_scheme="dark")
        expect(first).to_have_css("border-top-color", "rgb(255, 138, 128)")
        page.emulate_media(color_scheme="light")
        assert axe_violations(page) == []

        # Names given, a wrong address and no tick: what was typed stays.
        first.fill("Ada")
        last.fill("Lovelace")
        email.fill("ada@")
        page.get_by_role("button", name="Sign up").click()
        expect(email).to_have_accessible_description(
            "Enter a valid email address: There must be something after the @-sign."
        )
        expect(email).to_be_focused()
        expect(first).to_have_value("Ada")
        expect(last).to_have_value("Lovelace")
        expect(email).to_have_value("ada@")
        expect(first).not_to_have_attribute("aria-invalid", "true")
        expect(first).not_to_have_css("border-top-color", ERROR_RED)
        expect(consent).to_have_attribute("aria-invalid", "true")
        assert axe_violations(page) == []
        assert subscriber(app, "ada@example.org") is None

        email.fill("ada@example.org")
        consent.check()
        page.get_by_role("button", name="Sign up").click()
        page.wait_for_url(f"{base}/subscribe/thanks")
        expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        assert axe_violations(page) == []

        # The link from the email in the outbox opens a page with one button.
        [message] = sent_mail()
        link = find_link(message, "/confirm/").replace("https://news.example.org", base)
        page.goto(link)
        expect(page.get_by_role("heading", name="Confirm your subscription")).to_be_visible()
        expect(page.get_by_role("button")).to_have_count(1)
        assert axe_violations(page) == []
        stored = subscriber(app, "ada@example.org")
        assert stored is not None and stored.status == "pending"

        page.get_by_role("button", name="Confirm").click()
        expect(page.get_by_role("heading", name="You are subscribed")).to_be_visible()
        assert axe_violations(page) == []

    stored = subscriber(app, "ada@example.org")
    assert stored is not None and stored.status == "active"
    assert [event.kind for event in events(app)] == ["given", "confirmed"]
    assert events(app)[0].source_url == f"{base}/subscribe"
    assert "HeadlessChrome" in (events(app)[0].user_agent or "")
    assert violations == []


def test_error_and_link_pages_pass_axe(app: Flask, page: Any) -> None:
    violations = watch_policy_violations(page)
    with live_server(app) as base:
        page.goto(f"{base}/no-such-page")
        expect(page.get_by_role("heading", name="Page not found")).to_be_visible()
        assert axe_violations(page) == []
        page.goto(f"{base}/confirm/not-a-valid-token")
        expect(page.get_by_role("heading", name="This link cannot be used")).to_be_visible()
        assert axe_violations(page) == []
    assert violations == []
