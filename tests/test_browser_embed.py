"""The signup box on the organisation's own article pages, in a real Chromium.

The article page is served on ``http://localhost:A`` and the app on ``http://127.0.0.1:B``:
two sites to the browser, as the organisation's site and ours are. Each box the command
prints is pasted into ``examples/article.html``, served with the Content-Security-Policy
docs/embedding.md recommends. Confirmation emails go to a real SMTP server. Every signup
is made twice: in a Chromium whose profile allows third-party cookies and in one whose
profile blocks them (``profile.cookie_controls_mode`` 1, see tests/support/browser.py).
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask
from playwright.sync_api import expect

from newsletter.models import Subscriber
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import axe_violations
from tests.support.article_site import (
    ArticleSite,
    article_page,
    host_policy,
    running_article_site,
    without_script,
)
from tests.support.browser import chromium_profile, live_server, watch_policy_violations
from tests.support.records import count, events, subscriber
from tests.support.smtp import SMTPServer, free_port

pytestmark = pytest.mark.browser

STATEMENT = re.compile("By signing up you will receive news about Open Rights Watch")
PEOPLE = {
    "allowed": ("Ada", "Lovelace", "ada@example.org"),
    "blocked": ("Grace", "Hopper", "grace@example.org"),
}
ERROR_RED = "rgb(176, 0, 32)"


@pytest.fixture(scope="module")
def article_site() -> Iterator[ArticleSite]:
    with running_article_site() as site:
        yield site


@pytest.fixture(scope="module")
def profiles(playwright: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    """Two Chromiums for the module: one allows third-party cookies, one blocks them."""
    with ExitStack() as stack:
        yield {
            name: stack.enter_context(
                chromium_profile(
                    playwright,
                    tmp_path_factory.mktemp(f"chromium-{name}"),
                    third_party_cookies=name == "allowed",
                )
            )
            for name in PEOPLE
        }


@dataclass
class Sites:
    app: Flask
    base: str
    article_site: ArticleSite
    smtp: SMTPServer

    def box(self, style: str, *args: str) -> str:
        """The box as `newsletter embed` prints it; the html style without its script line."""
        styled = {"html": "html", "script": "html", "iframe": "iframe"}[style]
        printed = self.app.test_cli_runner().invoke(args=["embed", "--style", styled, *args])
        assert printed.exit_code == 0, printed.output
        return without_script(printed.stdout) if style == "html" else str(printed.stdout)

    def article(self, path: str, box: str, *, fill_source: bool = False) -> str:
        """Put the article page with ``box`` on the organisation's site; return its address.

        ``fill_source`` does what a site's templates may do for the plain box: write the
        page's own address into its ``source`` field.
        """
        address = f"{self.article_site.origin}{path}"
        if fill_source:
            box = box.replace('name="source" value=""', f'name="source" value="{address}"')
        headers = {"Content-Security-Policy": host_policy(self.base)}
        return self.article_site.put(path, article_page(box), headers)

    def sent_to(self) -> list[str]:
        get_dispatcher(self.app).drain()
        return sorted(recipient for mail in self.smtp.received for recipient in mail.recipients)


@pytest.fixture
def sites(
    make_app: Callable[..., Flask], article_site: ArticleSite, smtp_server: SMTPServer
) -> Iterator[Sites]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    app = make_app(BASE_URL=base, EMBED_ORIGINS=article_site.origin, MAIL_URL=smtp_server.url)
    with live_server(app, port):
        yield Sites(app, base, article_site, smtp_server)


def fields(scope: Any) -> tuple[Any, Any, Any, Any]:
    return (
        scope.get_by_label("First name"),
        scope.get_by_label("Last name"),
        scope.get_by_label("Email address"),
        scope.get_by_role("checkbox", name=STATEMENT),
    )


def fill(scope: Any, first: str, last: str, email: str) -> None:
    first_field, last_field, email_field, consent = fields(scope)
    first_field.fill(first)
    last_field.fill(last)
    email_field.fill(email)
    consent.check()


def test_the_two_profiles_allow_and_block_third_party_cookies(
    article_site: ArticleSite, profiles: dict[str, Any]
) -> None:
    """What the other tests rest on: the blocking profile really refuses a framed page of
    another site its cookie, and the allowing one lets it set it."""
    frame = f"{article_site.unlisted_origin}/cookie-probe"
    probe = article_site.put(
        "/probe.html",
        f'<!doctype html><html lang="en"><title>Probe</title><iframe title="probe" src="{frame}">'
        "</iframe></html>",
    )
    for name, context in profiles.items():
        page = context.new_page()
        page.goto(probe)
        expect(page.frame_locator("iframe").locator("title")).to_have_count(1)
        cookies = [cookie["name"] for cookie in context.cookies(article_site.unlisted_origin)]
        page.close()
        context.clear_cookies()
        assert cookies == (["probe"] if name == "allowed" else []), name


def frame_fits(page: Any, scope: Any, frame: Any, seconds: float = 5.0) -> bool:
    deadline = time.monotonic() + seconds
    while True:
        inner = scope.locator("html").evaluate("html => html.scrollHeight")
        if inner <= frame.evaluate("frame => frame.clientHeight") + 1:
            return True
        if time.monotonic() > deadline:
            return False
        page.wait_for_timeout(50)


@pytest.mark.parametrize("style", ["html", "script", "iframe"])
def test_each_box_signs_people_up_from_the_article_page(
    sites: Sites, profiles: dict[str, Any], style: str
) -> None:
    article = sites.article(f"/news/{style}.html", sites.box(style), fill_source=style == "html")
    for profile, (first, last, email) in PEOPLE.items():
        page = profiles[profile].new_page()
        violations = watch_policy_violations(page)
        page.goto(article)
        scope = page.frame_locator("iframe.nl-frame") if style == "iframe" else page
        expect(scope.get_by_text("* mandatory fields")).to_be_visible()
        expect(scope.locator("input[name=website]")).to_be_hidden()
        if profile == "allowed":
            assert axe_violations(page) == []
        fill(scope, first, last, email)
        scope.get_by_role("button", name="Sign up").click()

        if style == "html":
            page.wait_for_url(f"{sites.base}/subscribe/thanks")
            expect(page.get_by_role("heading", name="Check your inbox")).to_be_visible()
        elif style == "script":
            expect(page.get_by_role("status")).to_contain_text("Check your inbox")
        else:
            expect(scope.get_by_role("heading", name="Check your inbox")).to_be_visible()
            # The frame is as tall as the box: /embed.js set its height from the box's message.
            frame = page.locator("iframe.nl-frame")
            expect(frame).to_have_attribute("style", re.compile(r"height: \d+px"))
            # The height arrives by postMessage after the page has shown, so give it a moment.
            assert frame_fits(page, scope, frame), "the frame scrolls"
        if style != "html":
            assert page.url == article
        page.close()
        assert violations == [], profile

    assert sites.sent_to() == ["ada@example.org", "grace@example.org"]
    for _first, _last, email in PEOPLE.values():
        person = subscriber(sites.app, email)
        assert person is not None and person.status == "pending"
    assert [(event.source_url, event.box_style) for event in events(sites.app)] == [
        (article, style),
        (article, style),
    ]


def test_the_script_box_shows_errors_inside_with_values_kept(
    sites: Sites, profiles: dict[str, Any]
) -> None:
    article = sites.article("/news/script.html", sites.box("script"))
    page = profiles["blocked"].new_page()
    violations = watch_policy_violations(page)
    page.goto(article)
    first, last, email, consent = fields(page)
    first.fill("Ada")
    email.fill("ada@")
    page.get_by_role("button", name="Sign up").click()

    box = page.locator("form.nl-box")
    expect(box.get_by_role("alert")).to_contain_text("Please correct the fields marked below.")
    expect(last).to_have_accessible_description("Last name is required.")
    expect(email).to_have_accessible_description(
        "Enter a valid email address: There must be something after the @-sign."
    )
    expect(consent).to_have_accessible_description("Tick the box to agree to receive our emails.")
    expect(last).to_be_focused()
    expect(first).not_to_have_attribute("aria-invalid", "true")
    expect(email).to_have_attribute("aria-invalid", "true")
    expect(email).to_have_css("border-top-color", ERROR_RED)
    expect(first).to_have_value("Ada")
    expect(email).to_have_value("ada@")
    assert page.url == article
    assert axe_violations(page) == []
    box.get_by_role("link", name="Tick the box to agree to receive our emails.").click()
    expect(consent).to_be_focused()
    assert count(sites.app, Subscriber) == 0

    last.fill("Lovelace")
    email.fill("ada@example.org")
    consent.check()
    page.get_by_role("button", name="Sign up").click()
    expect(box.get_by_role("status")).to_contain_text("Check your inbox")
    expect(box.get_by_role("alert")).to_have_count(0)
    # The answer takes the form's place, whatever display the site's CSS gives its parts.
    for field in (first, last, email, consent):
        expect(field).to_be_hidden()
    page.close()
    assert violations == []
    assert sites.sent_to() == ["ada@example.org"]
    [event] = events(sites.app)
    assert (event.source_url, event.box_style) == (article, "script")


def test_the_plain_box_with_errors_goes_on_at_our_form_page(
    sites: Sites, profiles: dict[str, Any]
) -> None:
    article = sites.article("/news/html.html", sites.box("html"), fill_source=True)
    page = profiles["blocked"].new_page()
    page.goto(article)
    # The browser finds nothing wrong with this address; email-validator does.
    fill(page, "Ada", "Lovelace", "ada@example")
    page.get_by_role("button", name="Sign up").click()

    page.wait_for_url(f"{sites.base}/subscribe")
    first, last, email, consent = fields(page)
    expect(email).to_have_accessible_description(
        "Enter a valid email address: The part after the @-sign is not valid. "
        "It should have a period."
    )
    expect(first).to_have_value("Ada")
    expect(last).to_have_value("Lovelace")
    expect(email).to_have_value("ada@example")
    expect(consent).to_be_checked()
    assert axe_violations(page) == []
    email.fill("ada@example.org")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{sites.base}/subscribe/thanks")
    page.close()

    assert sites.sent_to() == ["ada@example.org"]
    [event] = events(sites.app)
    assert (event.source_url, event.box_style) == (article, "html")


def test_a_box_on_an_unlisted_site_is_refused_and_nothing_stored(
    sites: Sites, profiles: dict[str, Any]
) -> None:
    sites.article("/news/html.html", sites.box("html"))
    sites.article("/news/script.html", sites.box("script"))
    unlisted = sites.article_site.unlisted_origin
    page = profiles["allowed"].new_page()

    page.goto(f"{unlisted}/news/html.html")
    fill(page, "Ada", "Lovelace", "ada@example.org")
    with page.expect_response(f"{sites.base}/subscribe") as answer:
        page.get_by_role("button", name="Sign up").click()
    assert answer.value.status == 403
    expect(page.get_by_role("heading", name="This form cannot be sent from there")).to_be_visible()

    page.goto(f"{unlisted}/news/script.html")
    fill(page, "Ada", "Lovelace", "ada@example.org")
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_contain_text("We could not reach the signup service.")
    page.close()

    assert count(sites.app, Subscriber) == 0
    assert events(sites.app) == []
    assert sites.sent_to() == []


def test_a_return_address_on_another_site_is_not_followed(
    sites: Sites, profiles: dict[str, Any]
) -> None:
    back = sites.article_site.put(
        "/newsletter/thanks.html",
        '<!doctype html><html lang="en"><title>Thank you</title><h1>Thank you</h1></html>',
    )
    box = sites.box("html", "--return", back)
    sites.article("/news/returns.html", box)
    sites.article("/news/tampered.html", box.replace(back, "https://elsewhere.example/"))
    page = profiles["blocked"].new_page()

    page.goto(f"{sites.article_site.origin}/news/returns.html")
    fill(page, "Ada", "Lovelace", "ada@example.org")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(back)

    page.goto(f"{sites.article_site.origin}/news/tampered.html")
    fill(page, "Grace", "Hopper", "grace@example.org")
    page.get_by_role("button", name="Sign up").click()
    page.wait_for_url(f"{sites.base}/subscribe/thanks")
    page.close()

    assert sites.sent_to() == ["ada@example.org", "grace@example.org"]


def test_the_frame_page_alone_passes_axe_with_and_without_errors(
    sites: Sites, profiles: dict[str, Any]
) -> None:
    page = profiles["blocked"].new_page()
    violations = watch_policy_violations(page)
    page.goto(f"{sites.base}/embed")
    expect(page.get_by_role("heading", name=re.compile("Sign up for updates"))).to_be_visible()
    assert axe_violations(page) == []
    page.get_by_role("button", name="Sign up").click()
    expect(page.get_by_role("alert")).to_contain_text("Please correct the fields marked below.")
    expect(page.get_by_label("First name")).to_have_css("border-top-color", ERROR_RED)
    assert axe_violations(page) == []
    page.close()
    assert violations == []
    assert count(sites.app, Subscriber) == 0
