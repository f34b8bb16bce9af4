"""The signup form: validation, CSRF, honeypot, rate limits, consent proof, enumeration,
security headers, error pages and the health check (each test on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from datetime import timedelta
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from flask import Flask, abort
from flask.testing import FlaskClient
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import select, text, update
from sqlalchemy.engine import make_url
from werkzeug.test import TestResponse

from newsletter.app_db import get_engine, get_session, session_factory
from newsletter.db import utcnow
from newsletter.models import (
    FORM_SIGNUP,
    ConsentStatement,
    Delivery,
    Subscriber,
    SubscriberStatus,
)
from newsletter.runtime import get_runtime
from newsletter.services.confirmations import read_confirmation
from newsletter.services.consent import Evidence
from newsletter.services.subscriptions import SignupDetails, sign_up
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import csrf_token, post_signup
from tests.support.html import parse_page
from tests.support.mailbox import find_link, read_maildir
from tests.support.records import all_rows, count, deliveries, events, statements, subscriber
from tests.support.smtp import free_port

FORM_EXPIRED = "This form expired; please send it again"
DEFAULT_STATEMENT = (
    "By signing up you will receive news about Open Rights Watch's work and how you can "
    "support it. You can unsubscribe at any time."
)
TYPED = {"first_name": "Ada", "last_name": "Lovelace", "email": "ada@example.org"}


def text_of(response: TestResponse) -> str:
    return response.get_data(as_text=True)


def assert_nothing_stored(app: Flask) -> None:
    assert count(app, Subscriber) == 0
    assert count(app, Delivery) == 0
    assert events(app) == []


def mail_of(app: Flask, outbox_path: Path) -> list[EmailMessage]:
    get_dispatcher(app).drain()
    return read_maildir(outbox_path)


# --- the form -------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/", "/subscribe"])
def test_form_has_every_field_labelled_and_marked_mandatory(client: FlaskClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 200
    html = text_of(response)
    page = parse_page(html)
    assert "Sign up for updates" in page.texts["main"]
    assert "* mandatory fields" in page.texts["main"]
    for name, label in [
        ("first_name", "First name"),
        ("last_name", "Last name"),
        ("email", "Email address"),
    ]:
        assert (
            f'<label for="{name}">{label} <span class="required" aria-hidden="true">*</span>'
            in (html)
        )
        assert page.inputs[name]["id"] == name
        assert "required" in page.inputs[name]
    assert page.inputs["email"]["type"] == "email"
    assert page.inputs["consent"]["type"] == "checkbox"
    assert '<label for="consent">' in html
    assert DEFAULT_STATEMENT.replace("'", "&#39;") in html
    assert "csrf_token" in page.inputs
    # The honeypot is hidden from people and skipped by the keyboard.
    assert page.inputs["website"]["tabindex"] == "-1"
    assert re.search(r'<div class="field hp">\s*<label for="website">', html)
    assert "role" not in page.roles or "alert" not in page.roles


# --- every validation path ------------------------------------------------------------------

MARKUP = "cannot contain markup"
WEB = "cannot contain a web address"
OVERLONG_EMAIL = "a" * 64 + "@" + ".".join(["b" * 60] * 3) + ".example.org"

INVALID = [
    pytest.param({"first_name": None}, "first_name", "First name is required.", id="first-missing"),
    pytest.param({"first_name": "   "}, "first_name", "First name is required.", id="first-blank"),
    pytest.param({"last_name": None}, "last_name", "Last name is required.", id="last-missing"),
    pytest.param({"last_name": " \t "}, "last_name", "Last name is required.", id="last-blank"),
    pytest.param({"email": None}, "email", "Email address is required.", id="email-missing"),
    pytest.param({"email": "  "}, "email", "Email address is required.", id="email-blank"),
    pytest.param({"consent": None}, "consent", "Tick the box", id="unticked"),
    pytest.param({"email": "ada@"}, "email", "Enter a valid email address", id="no-domain"),
    pytest.param({"email": "ada.example.org"}, "email", "must have an @-sign", id="no-at"),
    pytest.param({"email": "ada@@example.org"}, "email", "Enter a valid email", id="two-ats"),
    pytest.param({"email": "ada @example.org"}, "email", "invalid characters", id="space"),
    pytest.param({"first_name": "A" * 101}, "first_name", "at most 100", id="first-long"),
    pytest.param({"last_name": "L" * 101}, "last_name", "at most 100", id="last-long"),
    pytest.param({"email": OVERLONG_EMAIL}, "email", "at most 254", id="email-long"),
    pytest.param(
        {"first_name": "Ada\r\nBcc: x@example.org"}, "first_name", "not allowed", id="f-crlf"
    ),
    pytest.param({"first_name": "Ada\x00"}, "first_name", "not allowed", id="first-nul"),
    pytest.param({"last_name": "Love\rlace"}, "last_name", "not allowed", id="last-cr"),
    pytest.param({"last_name": "Love\nlace"}, "last_name", "not allowed", id="last-lf"),
    pytest.param({"last_name": "Love\x00lace"}, "last_name", "not allowed", id="last-nul"),
    pytest.param(
        {"email": "ada@example.org\nBcc: x@example.org"}, "email", "not allowed", id="e-lf"
    ),
    pytest.param({"email": "ada@example.org\r"}, "email", "not allowed", id="email-cr"),
    pytest.param({"first_name": "Ada\n"}, "first_name", "not allowed", id="first-trailing-lf"),
    pytest.param({"last_name": "\rLovelace"}, "last_name", "not allowed", id="last-leading-cr"),
    pytest.param({"email": "ada\x00@example.org"}, "email", "not allowed", id="email-nul"),
    pytest.param({"first_name": "<script>alert(1)</script>"}, "first_name", MARKUP, id="script"),
    pytest.param({"first_name": "Ada <b>"}, "first_name", MARKUP, id="tag"),
    pytest.param({"last_name": "Love > lace"}, "last_name", MARKUP, id="greater-than"),
    pytest.param({"first_name": "=?utf-8?q?a=0D=0ABcc:x?="}, "first_name", MARKUP, id="rfc2047"),
    pytest.param({"last_name": "visit http://evil.example/x"}, "last_name", WEB, id="url"),
    pytest.param({"last_name": "see HTTPS://EVIL.EXAMPLE"}, "last_name", WEB, id="url-upper"),
    pytest.param({"first_name": "www.evil.example"}, "first_name", WEB, id="www"),
    pytest.param({"first_name": "Win at evil.example"}, "first_name", WEB, id="bare-domain"),
    pytest.param({"first_name": "bit.ly/free"}, "first_name", WEB, id="short-link"),
    pytest.param({"last_name": "CHEAP-PILLS.COM"}, "last_name", WEB, id="upper-domain"),
    pytest.param({"last_name": "at evil.com."}, "last_name", WEB, id="domain-full-stop"),
    pytest.param({"last_name": "EVIL.EXAMPLE/x"}, "last_name", WEB, id="upper-path"),
    pytest.param({"last_name": "mail spam@evil.example"}, "last_name", WEB, id="address"),
    pytest.param({"first_name": "xn--80ak6aa92e.com"}, "first_name", WEB, id="punycode"),
]


@pytest.mark.parametrize(("fields", "field", "message"), INVALID)
def test_invalid_value_gives_form_again_with_message_beside_field(
    app: Flask,
    client: FlaskClient,
    outbox_path: Path,
    fields: dict[str, Any],
    field: str,
    message: str,
) -> None:
    response = post_signup(client, **fields)

    assert response.status_code == 400
    html = text_of(response)
    page = parse_page(html)
    error_id = f"{field}-error"
    assert message in page.texts[error_id]
    assert page.inputs[field]["aria-invalid"] == "true"
    assert page.inputs[field]["aria-describedby"] == error_id
    # The message sits inside the field's own block, right before its input.
    block = re.search(
        rf'<p class="field-error" id="{error_id}">.*?<input[^>]*id="{field}"', html, re.S
    )
    assert block is not None
    assert page.roles["alert"] and "correct the field" in page.roles["alert"][0]
    # Only the bad field is flagged, and it takes the focus.
    flagged = {name for name, attrs in page.inputs.items() if attrs.get("aria-invalid")}
    assert flagged == {field}
    focused = {name for name, attrs in page.inputs.items() if "autofocus" in attrs}
    assert focused == {field}
    # Every value typed is given back, the bad one included.
    for name, value in {**TYPED, **fields}.items():
        if name == "consent":
            continue
        shown = page.value(name)
        if value is None:
            assert not shown
        elif "\r" in value:
            # Browsers send a line break in a field as CR LF; HTML reads any line break as LF.
            assert shown is not None and shown.replace("\r\n", "\n") == value.replace("\r\n", "\n")
        else:
            assert shown == value
    assert page.checked("consent") == (fields.get("consent", "y") is not None)
    assert_nothing_stored(app)
    assert mail_of(app, outbox_path) == []


@pytest.mark.parametrize(
    "posted", ["False", "false", "FALSE", "0", "off", "no", " ", "", "on", "yes", "Y", "y "]
)
def test_consent_counts_only_with_the_boxs_own_value(
    app: Flask, client: FlaskClient, posted: str
) -> None:
    response = post_signup(client, consent=posted)

    assert response.status_code == 400
    page = parse_page(text_of(response))
    assert "Tick the box" in page.texts["consent-error"]
    assert not page.checked("consent")
    assert page.value("email") == "ada@example.org"
    assert_nothing_stored(app)


def test_the_box_posts_the_value_that_counts(app: Flask, client: FlaskClient) -> None:
    page = parse_page(text_of(client.get("/subscribe")))
    assert post_signup(client, consent=page.inputs["consent"]["value"]).status_code == 303
    assert count(app, Subscriber) == 1


def test_all_errors_at_once_are_each_beside_their_field(app: Flask, client: FlaskClient) -> None:
    response = post_signup(client, first_name="", last_name=" ", email="nope", consent=None)
    assert response.status_code == 400
    page = parse_page(text_of(response))
    for field in ("first_name", "last_name", "email", "consent"):
        assert page.texts[f"{field}-error"]
        assert page.inputs[field]["aria-describedby"] == f"{field}-error"
    assert "correct the fields marked below" in page.roles["alert"][0]
    assert page.value("email") == "nope"
    assert [name for name, attrs in page.inputs.items() if "autofocus" in attrs] == ["first_name"]
    assert_nothing_stored(app)


@pytest.mark.parametrize(
    ("typed", "message"),
    [
        ("ada.example.org", "An email address must have an @-sign."),
        ("ada@", "Enter a valid email address: There must be something after the @-sign."),
        (
            "ada@example",
            "Enter a valid email address: The part after the @-sign is not valid. "
            "It should have a period.",
        ),
        (
            "ada @example.org",
            "The email address contains invalid characters before the @-sign: SPACE.",
        ),
    ],
)
def test_an_address_problem_names_the_address_once(
    client: FlaskClient, typed: str, message: str
) -> None:
    page = parse_page(text_of(post_signup(client, email=typed)))
    assert page.texts["email-error"] == message


def test_error_summary_links_to_each_field_to_correct(client: FlaskClient) -> None:
    response = post_signup(client, first_name="", email="nope", consent=None)
    assert response.status_code == 400
    summary = re.search(r'<div class="error-summary".*?</div>', text_of(response), re.S)
    assert summary is not None
    links = re.findall(r'<a href="#([a-z_]+)">([^<]+)</a>', summary.group(0))
    assert links == [
        ("first_name", "First name is required."),
        ("email", "An email address must have an @-sign."),
        ("consent", "Tick the box to agree to receive our emails."),
    ]


def test_email_is_normalised_and_names_trimmed(app: Flask, client: FlaskClient) -> None:
    response = post_signup(
        client, first_name="  Ada ", last_name=" Lovelace  ", email="  Ada.L@EXAMPLE.Org "
    )
    assert response.status_code == 303
    stored = subscriber(app, "ada.l@example.org")
    assert stored is not None
    assert (stored.first_name, stored.last_name) == ("Ada", "Lovelace")
    assert stored.email == "Ada.L@example.org"
    assert stored.email_key == "ada.l@example.org"


def test_international_names_and_addresses_are_welcome(app: Flask, client: FlaskClient) -> None:
    response = post_signup(
        client, first_name="Zoë", last_name="Ødegård-Ñúñez", email="zoë@exämple.org"
    )
    assert response.status_code == 303
    stored = subscriber(app, "zoë@exämple.org")
    assert stored is not None
    assert stored.last_name == "Ødegård-Ñúñez"


REAL_NAMES = [
    ("Seán", "O'Brien"),
    ("Jean-Luc", "Picard-Ørsted"),
    ("J. R.", "Hartley"),
    ("J.R.R.", "Tolkien"),
    ("Ma. Teresa", "St. John"),
    ("Dr.", "St.John-Smythe"),
    ("Mary-Kate", "D’Angelo"),
    ("小明", "王"),
    ("محمد", "عبد الله"),
    ("Иван", "Петров"),
    ("Ngũgĩ", "wa Thiong'o"),
    ("Ada & Bob", "Lovelace (née Byron)"),
    ("Dr.med. Anna", "Dipl.-Ing. Weiß"),
    ("3.14", "Pi"),
]


@pytest.mark.parametrize(("first_name", "last_name"), REAL_NAMES)
def test_real_names_are_never_taken_for_web_addresses_or_markup(
    app: Flask, client: FlaskClient, first_name: str, last_name: str
) -> None:
    response = post_signup(client, first_name=first_name, last_name=last_name)
    assert response.status_code == 303, text_of(response)
    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    assert (stored.first_name, stored.last_name) == (first_name, last_name)


# --- CSRF -----------------------------------------------------------------------------------


def _expired_csrf_token(client: FlaskClient, app: Flask, age: int = 2 * 3600) -> str:
    """The visitor's own form token, as if the form had been opened ``age`` seconds ago."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(time.time()) - age

    client.get("/subscribe")
    with client.session_transaction() as cookie_session:
        raw = cookie_session["csrf_token"]
    serializer = URLSafeTimedSerializer(
        app.config["SECRET_KEY"], salt="wtf-csrf-token", signer=PastSigner
    )
    return str(serializer.dumps(raw))


@pytest.mark.parametrize("case", ["missing", "garbage", "expired", "other-visitor"])
def test_missing_or_expired_csrf_token_stores_nothing(
    app: Flask, client: FlaskClient, outbox_path: Path, case: str
) -> None:
    if case == "missing":
        token = None
    elif case == "garbage":
        token = "not-a-token"
    elif case == "expired":
        token = _expired_csrf_token(client, app)
    else:
        token = csrf_token(app.test_client().get("/subscribe"))

    # From our own page, as a browser says with every POST.
    response = post_signup(client, csrf_token=token, headers={"Origin": "http://localhost"})

    assert response.status_code == 400
    page = parse_page(text_of(response))
    assert FORM_EXPIRED in page.roles["alert"][0]
    assert page.value("first_name") == "Ada"
    assert page.value("email") == "ada@example.org"
    assert page.checked("consent")
    assert_nothing_stored(app)
    assert mail_of(app, outbox_path) == []
    # The form comes back with a fresh token, so sending it again works.
    data = {**TYPED, "consent": "y", "csrf_token": csrf_token(response)}
    assert client.post("/subscribe", data=data).status_code == 303
    assert count(app, Subscriber) == 1


def test_form_lifetime_is_a_setting(
    make_app: Callable[..., Flask], monkeypatch: pytest.MonkeyPatch
) -> None:
    default = make_app()
    client = default.test_client()
    ten_minutes_old = _expired_csrf_token(client, default, age=600)
    assert post_signup(client, csrf_token=ten_minutes_old).status_code == 303

    monkeypatch.setenv("NEWSLETTER_WTF_CSRF_TIME_LIMIT", "300")
    short = make_app()
    client = short.test_client()
    response = post_signup(client, csrf_token=_expired_csrf_token(client, short, age=600))
    assert response.status_code == 400
    assert FORM_EXPIRED in response.get_data(as_text=True)


def test_only_the_forms_own_fields_are_bound(app: Flask, client: FlaskClient) -> None:
    response = post_signup(
        client,
        status="active",
        id="999",
        email_key="someone-else@example.org",
        token_nonce="chosen",
        confirmed_at="2020-01-01T00:00:00",
        created_at="2000-01-01T00:00:00",
    )
    assert response.status_code == 303
    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    assert stored.status == SubscriberStatus.PENDING
    assert stored.id != 999
    assert stored.token_nonce != "chosen"
    assert stored.confirmed_at is None
    assert stored.created_at > utcnow() - timedelta(minutes=5)
    assert subscriber(app, "someone-else@example.org") is None


# --- honeypot -------------------------------------------------------------------------------


@pytest.mark.parametrize("csrf", [True, False])
def test_filled_honeypot_is_thanked_and_forgotten(
    app: Flask, client: FlaskClient, outbox_path: Path, csrf: bool
) -> None:
    fields: dict[str, Any] = {"website": "http://spam.example.com"}
    if not csrf:
        fields["csrf_token"] = None
    response = post_signup(client, headers={"Origin": "http://localhost"}, **fields)
    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/thanks"
    assert_nothing_stored(app)
    assert mail_of(app, outbox_path) == []


# --- rate limits ----------------------------------------------------------------------------


def test_signups_are_rate_limited_per_client(make_app: Callable[..., Flask]) -> None:
    app = make_app(SIGNUP_RATE_LIMIT="2 per minute")
    client = app.test_client()
    for number in range(2):
        assert post_signup(client, email=f"person{number}@example.org").status_code == 303
    # Looking at the form is not limited; sending it is.
    assert client.get("/subscribe").status_code == 200
    response = post_signup(client, email="person2@example.org")

    assert response.status_code == 429
    html = text_of(response)
    assert "Too many attempts" in html
    assert "Please wait a minute and try again." in html
    assert "Traceback" not in html
    assert "Content-Security-Policy" in response.headers
    assert count(app, Subscriber) == 2

    other = app.test_client()
    other.environ_base["REMOTE_ADDR"] = "192.0.2.7"
    assert post_signup(other, email="person3@example.org").status_code == 303


def test_forwarded_address_is_trusted_only_behind_a_configured_proxy(
    make_app: Callable[..., Flask],
) -> None:
    direct = make_app(SIGNUP_RATE_LIMIT="1 per minute")
    client = direct.test_client()
    spoofed = {"X-Forwarded-For": "198.51.100.1"}
    assert post_signup(client, email="a@example.org").status_code == 303
    # Without a proxy in front, anyone could send the header: it does not dodge the limit.
    page = client.get("/subscribe")
    response = client.post(
        "/subscribe",
        data={**TYPED, "email": "b@example.org", "consent": "y", "csrf_token": csrf_token(page)},
        headers=spoofed,
    )
    assert response.status_code == 429
    assert [event.ip for event in events(direct)] == ["127.0.0.1"]


def test_client_address_comes_from_the_proxy_when_configured(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(SIGNUP_RATE_LIMIT="1 per minute", TRUSTED_PROXIES=1)
    client = app.test_client()
    for number, address in enumerate(["198.51.100.1", "198.51.100.2"]):
        page = client.get("/subscribe")
        response = client.post(
            "/subscribe",
            data={
                **TYPED,
                "email": f"p{number}@example.org",
                "consent": "y",
                "csrf_token": csrf_token(page),
            },
            headers={"X-Forwarded-For": address, "X-Forwarded-Proto": "https"},
        )
        assert response.status_code == 303
    assert [event.ip for event in events(app)] == ["198.51.100.1", "198.51.100.2"]


def test_one_address_gets_at_most_three_confirmations_a_day(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    spellings = [
        "ada@example.org",
        "ADA@example.org",
        "Ada@Example.ORG",
        "ada@example.org",
        "aDa@example.org",
    ]
    for spelling in spellings:
        response = post_signup(client, email=spelling)
        assert response.status_code == 303
        assert response.headers["Location"] == "/subscribe/thanks"
    assert count(app, Subscriber) == 1
    assert len(deliveries(app)) == 3
    assert len(sent_mail()) == 3
    # Every attempt is still evidence of consent given.
    assert len(events(app, "given")) == 5

    # A day later the address may be sent another one.
    with session_factory(app).begin() as db:
        db.execute(update(Delivery).values(created_at=utcnow() - timedelta(hours=25)))
    assert post_signup(client).status_code == 303
    assert len(deliveries(app)) == 4
    assert len(sent_mail()) == 4


# --- success and consent proof --------------------------------------------------------------


def test_signup_redirects_to_thanks_and_stores_pending_subscriber(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    response = post_signup(client)
    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/thanks"

    thanks = client.get("/subscribe/thanks")
    assert thanks.status_code == 200
    assert "Check your inbox" in text_of(thanks)

    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    assert stored.status == SubscriberStatus.PENDING
    assert (stored.first_name, stored.last_name) == ("Ada", "Lovelace")
    [delivery] = deliveries(app)
    assert delivery.kind == "confirm"
    [message] = sent_mail()
    assert message["To"] == "ada@example.org"


def test_consent_is_recorded_with_statement_and_how(make_app: Callable[..., Flask]) -> None:
    app = make_app(EMBED_ORIGINS="https://www.example.org")
    client = app.test_client()
    before = utcnow()
    page = client.get("/subscribe")
    response = client.post(
        "/subscribe",
        data={**TYPED, "consent": "y", "csrf_token": csrf_token(page)},
        headers={
            "User-Agent": "Mozilla/5.0 (X11; Linux) Test\x00Browser",
            "Referer": "https://www.example.org/news/a-story",
        },
        environ_base={"REMOTE_ADDR": "203.0.113.9"},
    )
    assert response.status_code == 303

    [event] = events(app)
    assert event.kind == "given"
    assert event.method == "web form"
    assert event.ip == "203.0.113.9"
    # A control character a client sends in a header is dropped, not stored.
    assert event.user_agent == "Mozilla/5.0 (X11; Linux) TestBrowser"
    assert event.source_url == "https://www.example.org/news/a-story"
    assert before <= event.at <= utcnow()
    [statement] = statements(app)
    assert event.statement_id == statement.id
    assert statement.text == DEFAULT_STATEMENT
    stored = subscriber(app, "ada@example.org")
    assert stored is not None and event.subscriber_id == stored.id


def test_without_referrer_the_form_address_is_the_source(app: Flask, client: FlaskClient) -> None:
    assert post_signup(client).status_code == 303
    [event] = events(app)
    assert event.source_url == "http://localhost/subscribe"


def test_changed_statement_is_a_new_version_and_old_wording_is_reused(
    make_app: Callable[..., Flask],
) -> None:
    first = make_app()
    assert post_signup(first.test_client(), email="one@example.org").status_code == 303

    changed = make_app(CONSENT_STATEMENT="{organisation} may email me its news.")
    client = changed.test_client()
    assert "Open Rights Watch may email me its news." in text_of(client.get("/subscribe"))
    assert post_signup(client, email="two@example.org").status_code == 303

    back = make_app()
    assert post_signup(back.test_client(), email="three@example.org").status_code == 303

    versions = statements(first)
    assert [statement.text for statement in versions] == [
        DEFAULT_STATEMENT,
        "Open Rights Watch may email me its news.",
    ]
    assert [event.statement_id for event in events(first)] == [
        versions[0].id,
        versions[1].id,
        versions[0].id,
    ]


def test_single_opt_in_makes_subscriber_active_at_once(
    make_app: Callable[..., Flask], outbox_path: Path
) -> None:
    app = make_app(DOUBLE_OPT_IN="false")
    assert post_signup(app.test_client()).status_code == 303
    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    assert stored.status == SubscriberStatus.ACTIVE
    assert [event.kind for event in events(app)] == ["given"]
    assert deliveries(app) == []
    assert mail_of(app, outbox_path) == []


# --- who is one person ----------------------------------------------------------------------

LOOK_ALIKES = [
    ("\ufb01ona@example.org", "Mallory", "Ligature"),
    ("fiona@example.org", "Fiona", "Real"),
    ("straße@example.org", "Max", "Sharp"),
    ("strasse@example.org", "Max", "Double"),
    ("JÜRGEN@example.org", "Jürgen", "Upper"),
    ("jürgen@example.org", "Jürgen", "Lower"),
]


def test_look_alike_addresses_are_different_people(app: Flask) -> None:
    site = get_runtime(app).site
    confirmations = []
    for email, first_name, last_name in LOOK_ALIKES:
        with session_factory(app).begin() as db:
            outcome = sign_up(
                db, site, SignupDetails(email, first_name, last_name), Evidence(FORM_SIGNUP)
            )
            assert outcome.confirmation_id is not None
            confirmations.append(outcome.confirmation_id)

    stored = all_rows(app, select(Subscriber).order_by(Subscriber.id))
    assert [(row.email, row.first_name, row.last_name) for row in stored] == LOOK_ALIKES
    # Each confirmation goes to the address typed, never to the look-alike signed up first.
    with session_factory(app)() as db:
        drafts = [
            read_confirmation(db, delivery_id, row[0])
            for delivery_id, row in zip(confirmations, LOOK_ALIKES, strict=True)
        ]
    assert [draft.person.email if draft else None for draft in drafts] == [
        row[0] for row in LOOK_ALIKES
    ]


def test_a_later_signup_never_changes_the_stored_name_or_address(
    app: Flask, client: FlaskClient
) -> None:
    assert post_signup(client, first_name="Ada", last_name="Lovelace").status_code == 303
    stranger = post_signup(client, first_name="Eve", last_name="Stranger", email="ADA@example.org")
    assert stranger.status_code == 303
    with session_factory(app).begin() as db:
        db.execute(update(Subscriber).values(status=SubscriberStatus.UNSUBSCRIBED))
    again = post_signup(client, first_name="Mallory", last_name="Other", email="Ada@Example.ORG")
    assert again.status_code == 303

    [stored] = all_rows(app, select(Subscriber))
    assert (stored.email, stored.first_name, stored.last_name) == (
        "ada@example.org",
        "Ada",
        "Lovelace",
    )
    # Each signup is still recorded as the consent it was.
    assert len(events(app, "given")) == 3


# --- the same answer whoever the address belongs to -----------------------------------------

CSRF_VALUE = re.compile(rb'(name="csrf_token" type="hidden" value=")[^"]+')


def _comparable(response: TestResponse) -> tuple[int, list[tuple[str, str]], bytes]:
    headers = [(name, value) for name, value in response.headers.items() if name != "Date"]
    return response.status_code, headers, CSRF_VALUE.sub(rb"\1", response.get_data())


def test_response_does_not_tell_whether_address_is_known(app: Flask, client: FlaskClient) -> None:
    for address in ["pending@example.org", "active@example.org", "left@example.org"]:
        assert post_signup(client, email=address).status_code == 303
    for address in ["limit@example.org"] * 3:
        assert post_signup(client, email=address).status_code == 303
    with session_factory(app).begin() as db:
        db.execute(
            update(Subscriber)
            .where(Subscriber.email_key == "active@example.org")
            .values(status=SubscriberStatus.ACTIVE)
        )
        db.execute(
            update(Subscriber)
            .where(Subscriber.email_key == "left@example.org")
            .values(status=SubscriberStatus.UNSUBSCRIBED)
        )

    answers = []
    for address in [
        "new@example.org",
        "pending@example.org",
        "active@example.org",
        "left@example.org",
        "limit@example.org",
    ]:
        visitor = app.test_client()
        posted = post_signup(visitor, email=address)
        thanks = visitor.get(posted.headers["Location"])
        answers.append((_comparable(posted), _comparable(thanks)))

    assert answers[0][0][0] == 303
    assert answers[0][1][0] == 200
    assert all(answer == answers[0] for answer in answers)


def test_every_accepted_signup_takes_the_minimum_time(make_app: Callable[..., Flask]) -> None:
    app = make_app(SIGNUP_MIN_SECONDS=0.3)
    client = app.test_client()
    assert post_signup(client, email="known@example.org").status_code == 303
    for fields in [
        {"email": "new@example.org"},
        {"email": "known@example.org"},
        {"email": "bot@example.org", "website": "spam"},
    ]:
        page = client.get("/subscribe")
        data = {**TYPED, "consent": "y", "csrf_token": csrf_token(page), **fields}
        started = time.monotonic()
        response = client.post("/subscribe", data=data)
        assert response.status_code == 303
        assert time.monotonic() - started >= 0.3


# --- headers and error pages ----------------------------------------------------------------


def _assert_security_headers(response: TestResponse, frame_ancestors: str = "'self'") -> None:
    policy = response.headers["Content-Security-Policy"]
    directives = dict(
        (part.strip().split(" ", 1) + [""])[:2] for part in policy.split(";") if part.strip()
    )
    assert directives["default-src"] == "'none'"
    assert "script-src" not in directives  # so no script at all, inline or not
    assert "unsafe-inline" not in policy
    assert directives["frame-ancestors"] == frame_ancestors
    assert directives["form-action"] == "'self'"
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Referrer-Policy"] == "strict-origin-when-cross-origin"
    if response.mimetype == "text/html":
        page = parse_page(response.get_data(as_text=True))
        assert "script" not in page.tags
        assert page.event_handlers == []
        assert "style" not in page.tags


def test_every_page_sends_security_headers(client: FlaskClient) -> None:
    responses = [
        client.get("/"),
        client.get("/subscribe"),
        post_signup(client, email="bad"),
        client.get("/subscribe/thanks"),
        client.get("/no-such-page"),
        client.get("/confirm/not-a-token"),
        client.get("/static/style.css"),
        client.get("/healthz"),
    ]
    assert [response.status_code for response in responses] == [
        200,
        200,
        400,
        200,
        404,
        400,
        200,
        200,
    ]
    for response in responses:
        _assert_security_headers(response)
        response.close()
    assert responses[0].headers["Cache-Control"] == "no-store"


def test_frame_ancestors_come_from_the_setting(make_app: Callable[..., Flask]) -> None:
    app = make_app(FRAME_ANCESTORS="'self' https://www.example.org")
    response = app.test_client().get("/subscribe")
    _assert_security_headers(response, "'self' https://www.example.org")


def _failing_app(make_app: Callable[..., Flask]) -> Flask:
    app = make_app(TESTING=False)

    @app.get("/test-only/broken")
    def broken() -> str:
        raise RuntimeError("secret internals: /srv/app/config.py line 42")

    @app.get("/test-only/bad-request")
    def bad_request() -> str:
        abort(400)

    return app


@pytest.mark.parametrize(
    ("path", "status", "title"),
    [
        ("/test-only/bad-request", 400, "Something was wrong with that request"),
        ("/nowhere", 404, "Page not found"),
        ("/test-only/broken", 500, "Something went wrong on our side"),
    ],
)
def test_error_pages_are_friendly(
    make_app: Callable[..., Flask],
    caplog: pytest.LogCaptureFixture,
    path: str,
    status: int,
    title: str,
) -> None:
    app = _failing_app(make_app)
    response = app.test_client().get(path)
    assert response.status_code == status
    html = text_of(response)
    assert f"<h1>{title}</h1>" in html
    assert 'href="/subscribe"' in html
    for leak in ("Traceback", "RuntimeError", "secret internals", "werkzeug"):
        assert leak not in html
    _assert_security_headers(response)
    if status == 500:
        # The details go to the log, for the people running the service.
        assert "secret internals" in caplog.text


def test_wrong_method_keeps_allow_header(client: FlaskClient) -> None:
    response = client.get("/confirm/abc/renew")
    assert response.status_code == 405
    assert "POST" in response.headers["Allow"]
    assert "Not allowed" in text_of(response)


def test_health_check_reports_database(client: FlaskClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.get_json() == {"status": "ok", "database": "ok"}


def _unreachable(database_url: str, tmp_path: Path) -> str:
    url = make_url(database_url)
    if url.get_backend_name() == "sqlite":
        return f"sqlite:///{tmp_path / 'missing-folder' / 'newsletter.db'}"
    down = url.set(port=free_port(), query={"connect_timeout": "3"})
    return down.render_as_string(hide_password=False)


def test_database_down_gives_friendly_pages_and_keeps_the_form(
    make_app: Callable[..., Flask], database_url: str, tmp_path: Path
) -> None:
    app = make_app(DATABASE_URL=_unreachable(database_url, tmp_path), TESTING=False)
    client = app.test_client()

    health = client.get("/healthz")
    assert health.status_code == 503
    assert health.get_json() == {"status": "error", "database": "unreachable"}

    response = post_signup(client)
    assert response.status_code == 503
    html = text_of(response)
    page = parse_page(html)
    assert "could not save your signup" in page.roles["alert"][0]
    assert page.value("first_name") == "Ada"
    assert page.value("email") == "ada@example.org"
    assert page.checked("consent")
    assert "Traceback" not in html

    link = client.get("/confirm/" + "x" * 40)
    assert link.status_code == 400  # a bad token is known bad without the database


def test_database_down_on_a_page_that_needs_it(
    make_app: Callable[..., Flask], database_url: str, tmp_path: Path, outbox_path: Path
) -> None:
    working = make_app()
    assert post_signup(working.test_client()).status_code == 303
    [message] = mail_of(working, outbox_path)
    link = find_link(message, "/confirm/").removeprefix("https://news.example.org")

    down = make_app(DATABASE_URL=_unreachable(database_url, tmp_path), TESTING=False)
    response = down.test_client().get(link)
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "60"
    html = text_of(response)
    assert "We cannot take requests just now" in html
    assert "Traceback" not in html
    _assert_security_headers(response)


def test_statement_row_is_stored_once(app: Flask, client: FlaskClient) -> None:
    for number in range(3):
        assert post_signup(client, email=f"n{number}@example.org").status_code == 303
    assert count(app, ConsentStatement) == 1


@pytest.mark.parametrize("with_addresses", [False, True])
def test_signups_are_logged_by_subscriber_id(
    make_app: Callable[..., Flask], caplog: pytest.LogCaptureFixture, with_addresses: bool
) -> None:
    app = make_app(LOG_ADDRESSES=with_addresses)
    client = app.test_client()
    caplog.set_level("INFO", logger="newsletter")
    assert post_signup(client).status_code == 303
    assert post_signup(client, website="spam").status_code == 303
    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    lines = [
        record.getMessage() for record in caplog.records if record.name.startswith("newsletter.web")
    ]
    who = f"subscriber {stored.id}" + (" <ada@example.org>" if with_addresses else "")
    assert f"signup: {who} is pending; confirmation email queued" in lines
    assert "signup turned away: the hidden field was filled in" in lines
    assert any("ada@example.org" in line for line in lines) is with_addresses


def test_every_request_gives_its_database_connection_back(
    make_app: Callable[..., Flask], outbox_path: Path
) -> None:
    app = make_app(TESTING=False)

    @app.get("/test-only/fails-mid-transaction")
    def fails_mid_transaction() -> str:
        get_session().execute(text("SELECT 1"))
        raise RuntimeError("after the session was opened")

    client = app.test_client()
    pool = get_engine(app).pool

    def after(response: TestResponse, status: int) -> None:
        assert response.status_code == status
        response.close()
        get_dispatcher(app).drain()
        assert pool.checkedout() == 0  # type: ignore[attr-defined]

    after(post_signup(client), 303)
    after(post_signup(client, email="bad"), 400)
    after(client.get("/healthz"), 200)
    after(client.get("/test-only/fails-mid-transaction"), 500)
    link = find_link(mail_of(app, outbox_path)[0], "/confirm/").removeprefix(
        "https://news.example.org"
    )
    page = client.get(link)
    after(page, 200)
    after(client.post(link, data={"csrf_token": csrf_token(page)}), 200)
    after(client.get("/confirm/not-a-token"), 400)
    # Nothing is left holding a lock either: another connection can write at once.
    with session_factory(app).begin() as db:
        db.execute(update(Subscriber).values(first_name="Augusta"))
