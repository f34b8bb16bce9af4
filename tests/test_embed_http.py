"""The signup box on the organisation's pages, over HTTP: which pages may post a signup
(Origin, else Referer), CORS for /embed.js, the box in a frame and its form token, where a
signup goes back to, and the honeypot and limits on cross-site posts (SQLite and PostgreSQL)."""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.test import TestResponse

from newsletter.app_db import session_factory
from newsletter.embed_script import script
from newsletter.form_tokens import FormTokens
from newsletter.models import Delivery, Subscriber
from newsletter.services.consent import statement_hash, statement_version
from tests.conftest import csrf_token
from tests.support.html import parse_page
from tests.support.records import count, deliveries, events, statements, subscriber

SITE = "https://www.example.org"
ARTICLE = f"{SITE}/news/court-halts-eviction"
OWN = "http://localhost"
SECRET_KEY = "test-secret-key-of-reasonable-length"
PERSON = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org", "consent": "y"}
FORM_EXPIRED = "This form expired; please send it again."


@pytest.fixture
def app(make_app: Callable[..., Flask]) -> Flask:
    return make_app(EMBED_ORIGINS=f"{SITE} https://example.org")


def post_box(
    client: FlaskClient, headers: dict[str, str] | None = None, **fields: str | None
) -> TestResponse:
    """Send the plain-HTML box as a browser does from the article page (no cookie, no token),
    unless ``headers`` say otherwise; a field given as None is left out."""
    data = {**PERSON, "box_style": "html", **fields}
    sent = {name: value for name, value in data.items() if value is not None}
    return client.post(
        "/subscribe", data=sent, headers={"Origin": SITE, "Referer": f"{SITE}/"} | (headers or {})
    )


def assert_nothing_stored(app: Flask, mail: list[EmailMessage]) -> None:
    assert count(app, Subscriber) == 0
    assert count(app, Delivery) == 0
    assert events(app) == []
    assert mail == []


def text_of(response: TestResponse) -> str:
    return response.get_data(as_text=True)


# --- who may post ---------------------------------------------------------------------------


def test_a_box_on_a_listed_page_signs_up_without_cookie_or_token(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    response = post_box(client, source=ARTICLE)

    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/thanks"
    assert "Set-Cookie" not in response.headers
    stored = subscriber(app, "ada@example.org")
    assert stored is not None and stored.status == "pending"
    [message] = sent_mail()
    assert message["To"] == "ada@example.org"
    [event] = events(app)
    assert (event.kind, event.source_url, event.box_style) == ("given", ARTICLE, "html")


@pytest.mark.parametrize(
    ("headers", "source", "recorded"),
    [
        pytest.param({"Origin": SITE, "Referer": ARTICLE}, None, ARTICLE, id="referer-in-full"),
        pytest.param({"Origin": SITE, "Referer": f"{SITE}/"}, ARTICLE, ARTICLE, id="source-field"),
        pytest.param({"Origin": SITE}, None, SITE, id="origin-alone"),
        pytest.param({"Referer": ARTICLE}, None, ARTICLE, id="referer-alone"),
        pytest.param({"Origin": "https://example.org"}, None, "https://example.org", id="other"),
        # A source on another site is not taken for the article's address.
        pytest.param(
            {"Origin": SITE, "Referer": f"{SITE}/"}, "https://evil.example/x", f"{SITE}/", id="bad"
        ),
    ],
)
def test_origin_or_referer_on_a_listed_site_is_accepted_and_the_page_recorded(
    app: Flask,
    client: FlaskClient,
    headers: dict[str, str],
    source: str | None,
    recorded: str,
) -> None:
    response = client.post(
        "/subscribe",
        data={**PERSON, "box_style": "html", **({"source": source} if source else {})},
        headers=headers,
    )
    assert response.status_code == 303
    [event] = events(app)
    assert event.source_url == recorded


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="neither"),
        pytest.param({"Origin": "null"}, id="null"),
        pytest.param({"Origin": "null", "Referer": ARTICLE}, id="null-with-referer"),
        pytest.param({"Origin": "https://evil.example"}, id="unlisted"),
        pytest.param({"Origin": "https://www.example.org.evil.example"}, id="suffix"),
        pytest.param({"Origin": "https://evil.example", "Referer": ARTICLE}, id="forged-referer"),
        pytest.param({"Origin": "http://www.example.org"}, id="other-scheme"),
        pytest.param({"Origin": "https://www.example.org:8443"}, id="other-port"),
        pytest.param({"Origin": "https://WWW.example.org"}, id="not-as-browsers-write-it"),
        pytest.param({"Origin": "https://www.example.org/news"}, id="with-a-path"),
        pytest.param({"Referer": "https://evil.example/www.example.org/"}, id="unlisted-referer"),
        pytest.param({"Referer": "www.example.org"}, id="malformed-referer"),
    ],
)
def test_anywhere_else_is_refused_with_403_and_one_log_line(
    app: Flask,
    client: FlaskClient,
    sent_mail: Callable[[], list[EmailMessage]],
    caplog: pytest.LogCaptureFixture,
    headers: dict[str, str],
) -> None:
    caplog.set_level(logging.INFO, logger="newsletter")
    response = client.post("/subscribe", data={**PERSON, "box_style": "html"}, headers=headers)

    assert response.status_code == 403
    assert "This form cannot be sent from there" in text_of(response)
    assert "Access-Control-Allow-Origin" not in response.headers
    assert_nothing_stored(app, sent_mail())
    [line] = [record.getMessage() for record in caplog.records if record.name.startswith("newsl")]
    assert line.startswith("signup refused (403), nothing stored: ")
    assert "\n" not in line


def test_our_own_form_still_needs_its_csrf_token(app: Flask, client: FlaskClient) -> None:
    """From our own origin, without the token, the form has expired as before."""
    response = post_box(client, headers={"Origin": OWN, "Referer": f"{OWN}/subscribe"})
    assert response.status_code == 400
    assert FORM_EXPIRED in parse_page(text_of(response)).roles["alert"][0]
    assert count(app, Subscriber) == 0
    # With the token it goes through, recorded as our own page.
    page = client.get("/subscribe")
    data = {**PERSON, "csrf_token": csrf_token(page)}
    assert client.post("/subscribe", data=data, headers={"Origin": OWN}).status_code == 303
    [event] = events(app)
    assert event.box_style == "page"


def test_our_base_url_is_our_own_origin_too(app: Flask, client: FlaskClient) -> None:
    """Behind a proxy the app may see another host than the public one."""
    page = client.get("/subscribe")
    data = {**PERSON, "csrf_token": csrf_token(page)}
    headers = {"Origin": "https://news.example.org"}
    assert client.post("/subscribe", data=data, headers=headers).status_code == 303


# --- after the signup -----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("posted", "location"),
    [
        (f"{SITE}/news/thank-you", f"{SITE}/news/thank-you"),
        ("https://example.org/thanks?from=box", "https://example.org/thanks?from=box"),
        ("https://evil.example/phish", "/subscribe/thanks"),
        ("//evil.example/phish", "/subscribe/thanks"),
        ("/subscribe/thanks/../../elsewhere", "/subscribe/thanks"),
        ("javascript:alert(1)", "/subscribe/thanks"),
        (f"{SITE}.evil.example/", "/subscribe/thanks"),
        ("https://www.example.org\r\nSet-Cookie: x=1", "/subscribe/thanks"),
    ],
)
def test_return_goes_only_to_an_allowed_origin(
    app: Flask, client: FlaskClient, posted: str, location: str
) -> None:
    response = post_box(client, **{"return": posted})
    assert response.status_code == 303
    assert response.headers["Location"] == location
    assert count(app, Subscriber) == 1


def test_box_errors_show_our_form_page_and_the_retry_keeps_where_it_came_from(
    app: Flask, client: FlaskClient
) -> None:
    back = f"{SITE}/news/thank-you"
    fields = {"source": ARTICLE, "return": back, "email": "ada@", "consent": None}

    response = post_box(client, **fields)

    assert response.status_code == 400
    html = text_of(response)
    page = parse_page(html)
    assert page.texts["email-error"] == (
        "Enter a valid email address: There must be something after the @-sign."
    )
    assert "Tick the box" in page.texts["consent-error"]
    assert page.value("first_name") == "Ada"
    assert page.value("email") == "ada@"
    assert count(app, Subscriber) == 0
    # What the box said goes along, with a token for our own form this time.
    assert page.value("box_style") == "html"
    assert page.value("source") == ARTICLE
    assert page.value("return") == back
    carried = {name: page.value(name) for name in ("box_style", "source", "return")}

    retry = client.post(
        "/subscribe",
        data={**PERSON, **carried, "csrf_token": csrf_token(response)},
        headers={"Origin": OWN, "Referer": f"{OWN}/subscribe"},
    )
    assert retry.status_code == 303
    assert retry.headers["Location"] == back
    [event] = events(app)
    assert (event.source_url, event.box_style) == (ARTICLE, "html")


def test_filled_honeypot_on_a_cross_site_post_is_thanked_and_forgotten(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    for accept in ("text/html", "application/json"):
        response = post_box(client, headers={"Accept": accept}, website="http://spam.example")
        assert response.status_code in (200, 303)
    assert_nothing_stored(app, sent_mail())


def test_cross_site_posts_count_towards_the_limit_per_client(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(EMBED_ORIGINS=SITE, SIGNUP_RATE_LIMIT="2 per minute")
    client = app.test_client()
    for number in range(2):
        assert post_box(client, email=f"p{number}@example.org").status_code == 303
    response = post_box(client, email="p2@example.org", headers={"Accept": "application/json"})
    assert response.status_code == 429
    # The script on the article page can read the answer, and says so inside the box.
    assert response.headers["Access-Control-Allow-Origin"] == SITE
    assert count(app, Subscriber) == 2


def test_cross_site_posts_count_towards_the_limit_per_address(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    for _ in range(5):
        assert post_box(client).status_code == 303
    assert count(app, Subscriber) == 1
    assert len(deliveries(app)) == 3
    assert len(sent_mail()) == 3
    assert len(events(app, "given")) == 5


# --- the script's JSON and CORS -------------------------------------------------------------


def test_the_script_gets_json_with_cors_for_a_listed_origin(
    app: Flask, client: FlaskClient
) -> None:
    json_headers = {"Accept": "application/json", "Origin": SITE}
    bad = post_box(
        client, headers=json_headers, first_name="", email="ada.example.org", consent=None
    )
    assert bad.status_code == 400
    assert bad.headers["Access-Control-Allow-Origin"] == SITE
    assert "Origin" in bad.headers["Vary"]
    assert "Access-Control-Allow-Credentials" not in bad.headers
    assert bad.get_json() == {
        "ok": False,
        "message": "Please correct the fields marked below.",
        "errors": {
            "first_name": "First name is required.",
            "email": "An email address must have an @-sign.",
            "consent": "Tick the box to agree to receive our emails.",
        },
    }
    good = post_box(client, headers=json_headers, box_style="script", source=ARTICLE)
    assert good.status_code == 200
    assert good.headers["Access-Control-Allow-Origin"] == SITE
    body = good.get_json()
    assert body["ok"] is True and body["title"] == "Check your inbox"
    [event] = events(app)
    assert (event.source_url, event.box_style) == (ARTICLE, "script")


@pytest.mark.parametrize(
    ("origin", "allowed"),
    [(SITE, True), ("https://example.org", True), ("https://evil.example", False), ("null", False)],
)
def test_cors_preflight_is_answered_for_listed_origins_only(
    client: FlaskClient, origin: str, allowed: bool
) -> None:
    response = client.options(
        "/subscribe",
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "accept",
        },
    )
    assert response.status_code == 200
    assert "Origin" in response.headers["Vary"]
    if allowed:
        assert response.headers["Access-Control-Allow-Origin"] == origin
        assert response.headers["Access-Control-Allow-Methods"] == "POST"
        assert "Accept" in response.headers["Access-Control-Allow-Headers"]
        assert int(response.headers["Access-Control-Max-Age"]) > 0
    else:
        assert not any(name.startswith("Access-Control-") for name in response.headers.keys())


def test_no_cors_anywhere_else(client: FlaskClient) -> None:
    for path in ("/", "/embed", "/subscribe/thanks"):
        response = client.get(path, headers={"Origin": SITE})
        assert "Access-Control-Allow-Origin" not in response.headers


# --- the box in a frame ---------------------------------------------------------------------


def frame_fields(page: TestResponse) -> dict[str, str]:
    return {
        name: str(attributes.get("value") or "")
        for name, attributes in parse_page(text_of(page)).inputs.items()
        if attributes.get("type") == "hidden"
    }


def test_the_frame_page_is_a_compact_form_without_cookie(app: Flask, client: FlaskClient) -> None:
    response = client.get("/embed", headers={"Referer": ARTICLE})

    assert response.status_code == 200
    assert "Set-Cookie" not in response.headers
    assert response.headers["Cache-Control"] == "no-store"
    html = text_of(response)
    page = parse_page(html)
    assert "site-header" not in html
    assert "Sign up for updates on the work of Open Rights Watch" in page.texts["main"]
    assert "* mandatory fields" in page.texts["main"]
    hidden = frame_fields(response)
    assert set(hidden) == {"box_token", "box_style", "source"}
    assert hidden["box_style"] == "iframe"
    assert hidden["source"] == ARTICLE
    assert "csrf_token" not in page.inputs
    policy = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in [directive.strip() for directive in policy.split(";")]
    assert "frame-ancestors 'self' https://www.example.org https://example.org" in policy
    assert "unsafe-inline" not in policy
    assert page.event_handlers == []
    # Framed by a page of another site, the source is left out.
    other = client.get("/embed", headers={"Referer": "https://evil.example/"})
    assert "source" not in frame_fields(other)


def test_a_signup_in_the_frame_records_the_article_and_shows_thanks_in_the_frame(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    fields = frame_fields(client.get("/embed", headers={"Referer": ARTICLE}))
    response = client.post(
        "/subscribe",
        data={**PERSON, **fields},
        headers={"Origin": OWN, "Referer": f"{OWN}/embed"},
    )
    assert response.status_code == 303
    assert response.headers["Location"] == "/embed/thanks"
    assert "Set-Cookie" not in response.headers
    thanks = client.get("/embed/thanks")
    assert "Check your inbox" in text_of(thanks)
    assert "script-src 'self'" in thanks.headers["Content-Security-Policy"]
    assert len(sent_mail()) == 1
    [event] = events(app)
    assert (event.source_url, event.box_style) == (ARTICLE, "iframe")


@pytest.mark.parametrize(
    "token",
    [
        FormTokens(SECRET_KEY).make(now=time.time() - 3601),
        FormTokens("another-key-of-reasonable-length").make(),
        "forged",
    ],
    ids=["old", "other-key", "forged"],
)
def test_an_expired_or_forged_frame_token_gives_the_frame_form_again(
    app: Flask, client: FlaskClient, token: str
) -> None:
    response = client.post(
        "/subscribe",
        data={**PERSON, "box_token": token, "box_style": "iframe", "source": ARTICLE},
        headers={"Origin": OWN},
    )
    assert response.status_code == 400
    page = parse_page(text_of(response))
    assert FORM_EXPIRED in page.roles["alert"][0]
    assert page.value("first_name") == "Ada" and page.checked("consent")
    assert page.value("source") == ARTICLE
    fresh = frame_fields(response)["box_token"]
    assert fresh != token and FormTokens(SECRET_KEY).age(fresh) < 60
    assert count(app, Subscriber) == 0


def test_a_frame_form_sent_sooner_than_a_person_could_is_thanked_and_forgotten(
    make_app: Callable[..., Flask], sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    app = make_app(EMBED_ORIGINS=SITE, SIGNUP_MIN_SECONDS=0.5)
    client = app.test_client()
    quick = {**PERSON, "box_token": FormTokens(SECRET_KEY).make(), "box_style": "iframe"}
    response = client.post("/subscribe", data=quick, headers={"Origin": OWN})
    assert response.status_code == 303
    assert response.headers["Location"] == "/embed/thanks"
    assert count(app, Subscriber) == 0

    filled = {**quick, "box_token": FormTokens(SECRET_KEY).make(now=time.time() - 5)}
    assert client.post("/subscribe", data=filled, headers={"Origin": OWN}).status_code == 303
    assert count(app, Subscriber) == 1


def test_a_frame_token_from_an_unlisted_site_is_refused(app: Flask, client: FlaskClient) -> None:
    data = {**PERSON, "box_token": FormTokens(SECRET_KEY).make(now=time.time() - 5)}
    response = client.post("/subscribe", data=data, headers={"Origin": "https://evil.example"})
    assert response.status_code == 403
    assert count(app, Subscriber) == 0


# --- the wording the box showed -------------------------------------------------------------


def test_consent_records_the_wording_the_box_showed(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture
) -> None:
    old_wording = "Yes, Open Rights Watch may email me news."
    with session_factory(make_app()).begin() as session:
        statement_version(session, old_wording)
    app = make_app(EMBED_ORIGINS=SITE)
    client = app.test_client()
    current = app.config["CONSENT_STATEMENT"]

    for shown in (old_wording, current, "A wording nobody stored."):
        post_box(client, email=f"{len(shown)}@example.org", statement=statement_hash(shown))

    recorded = [event.statement_id for event in events(app)]
    by_text = {statement.text: statement.id for statement in statements(app)}
    assert recorded == [by_text[old_wording], by_text[current], by_text[current]]
    assert "a signup box shows a consent wording this database does not know" in caplog.text


# --- the script, the brand ------------------------------------------------------------------


def test_embed_js_is_cached_for_a_year_under_its_version(client: FlaskClient) -> None:
    body, version = script()
    versioned = client.get(f"/embed.js?v={version}")
    assert versioned.status_code == 200
    assert versioned.mimetype == "text/javascript"
    assert versioned.data == body
    assert versioned.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert versioned.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    # An address of an older version gets the current script, kept only briefly.
    for path in ("/embed.js", "/embed.js?v=0ld"):
        assert client.get(path).headers["Cache-Control"] == "public, max-age=300"
    etag = versioned.headers["ETag"]
    assert client.get("/embed.js", headers={"If-None-Match": etag}).status_code == 304
    # Small, and no framework.
    assert len(body) < 12_000
    assert b"import " not in body and b"require(" not in body


def test_brand_colour_logo_and_privacy_notice(make_app: Callable[..., Flask]) -> None:
    app = make_app(
        BRAND_COLOUR="#7a1f5c",
        LOGO_URL="https://www.example.org/logo.svg",
        PRIVACY_URL="https://www.example.org/privacy",
    )
    client = app.test_client()
    page = client.get("/subscribe")
    html = text_of(page)
    assert '<img class="site-logo" src="https://www.example.org/logo.svg" alt="">' in html
    sheet = re.search(r'href="(/brand\.css\?v=7a1f5c)"', html)
    assert sheet is not None
    brand = client.get(sheet.group(1))
    assert brand.mimetype == "text/css"
    assert brand.get_data(as_text=True) == ":root { --accent: #7a1f5c; }\n"
    policy = page.headers["Content-Security-Policy"]
    assert "img-src 'self' data: https://www.example.org;" in policy
    # The privacy notice is linked beside the consent statement, in the form and the frame.
    for response in (page, client.get("/embed")):
        consent_and_after = text_of(response).split('<label for="consent">', 1)[1]
        link = '<a href="https://www.example.org/privacy" target="_blank" rel="noopener">'
        assert link in consent_and_after


def test_json_error_answers_carry_no_html(app: Flask, client: FlaskClient) -> None:
    response = post_box(client, headers={"Accept": "application/json"}, email="<b>@")
    assert response.mimetype == "application/json"
    body: dict[str, Any] = json.loads(response.data)
    assert set(body["errors"]) == {"email"}
