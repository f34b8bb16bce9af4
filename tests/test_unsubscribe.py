"""Leaving with one click: the link, its pages, one-click POSTs, resubscribing, suppression."""

from __future__ import annotations

import email
import http.client
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from email.message import EmailMessage
from email.policy import default
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import delete, select

from newsletter.app_db import session_factory
from newsletter.links import confirm_url, list_headers, unsubscribe_url
from newsletter.models import (
    FORM_SIGNUP,
    ConsentEvent,
    ConsentKind,
    Delivery,
    DeliveryKind,
    DeliveryStatus,
    Digest,
    Subscriber,
    SubscriberStatus,
    Suppression,
)
from newsletter.people import Person
from newsletter.runtime import get_runtime
from newsletter.services.consent import Evidence, latest_given_event
from newsletter.services.errors import LinkNoLongerValid
from newsletter.services.subscriptions import SignupDetails, confirm, sign_up
from newsletter.services.unsubscribe import SKIPPED_REASON, unsubscribe
from newsletter.suppressions import (
    may_send_confirmation,
    record_hard_bounce,
    suppress,
    suppressed_since,
)
from newsletter.tokens import InvalidToken, Purpose, TokenData, Tokens
from newsletter.web.dispatch import get_dispatcher
from newsletter.web.unsubscribe import NOT_VALID, ONE_CLICK_METHOD, PAGE_METHOD, mask_email
from tests.conftest import csrf_token, post_signup
from tests.support.browser import live_server
from tests.support.mailbox import body_text, find_link, read_maildir

BASE = "https://news.example.org"
URLENCODED = "application/x-www-form-urlencoded"
ONE_CLICK_BODY = b"List-Unsubscribe=One-Click"
BOUNDARY = "----provider7MA4YWxkTrZu0gW"
MULTIPART = (
    f"--{BOUNDARY}\r\n"
    'Content-Disposition: form-data; name="List-Unsubscribe"\r\n'
    "\r\n"
    "One-Click\r\n"
    f"--{BOUNDARY}--\r\n"
).encode()
ONE_CLICK_FORMS = {
    "urlencoded": (URLENCODED, ONE_CLICK_BODY),
    "multipart": (f"multipart/form-data; boundary={BOUNDARY}", MULTIPART),
}


@dataclass(frozen=True)
class Member:
    """What a test keeps of a subscriber: enough to make their links."""

    id: int
    token_nonce: str
    email: str
    consent_event_id: int


def join(app: Flask, email_address: str = "jane@example.org", *, active: bool = True) -> Member:
    """Sign someone up through the service, and confirm them unless ``active`` is False."""
    site = get_runtime(app).site
    with session_factory(app)() as session:
        outcome = sign_up(
            session,
            site,
            SignupDetails(email_address, "Jane", "Doe"),
            Evidence(FORM_SIGNUP, ip="192.0.2.1", source_url=f"{BASE}/subscribe"),
        )
        subscriber = session.get_one(Subscriber, outcome.subscriber_id)
        given = latest_given_event(session, subscriber)
        assert given is not None
        if active:
            data = TokenData(subscriber.id, subscriber.token_nonce, given.id)
            confirm(session, data, Evidence("confirmation link"))
        session.commit()
        return Member(subscriber.id, subscriber.token_nonce, email_address, given.id)


def path_of(url: str) -> str:
    assert url.startswith(f"{BASE}/"), url
    return url.removeprefix(BASE)


def as_person(member: Member | Subscriber) -> Person:
    """What the links of ``member`` are made from (the name plays no part in them)."""
    return Person(member.id, member.token_nonce, member.email, "", "")


def unsubscribe_path(app: Flask, member: Member | Subscriber) -> str:
    return path_of(unsubscribe_url(get_runtime(app).site, as_person(member)))


def snapshot(app: Flask) -> dict[str, list[tuple[Any, ...]]]:
    """Every row an unsubscribe could touch, to prove that nothing changed."""
    with session_factory(app)() as session:
        return {
            "subscribers": [
                tuple(row)
                for row in session.execute(
                    select(
                        Subscriber.id,
                        Subscriber.status,
                        Subscriber.token_nonce,
                        Subscriber.updated_at,
                        Subscriber.confirmed_at,
                        Subscriber.unsubscribed_at,
                    ).order_by(Subscriber.id)
                )
            ],
            "consent": [
                tuple(row)
                for row in session.execute(
                    select(ConsentEvent.id, ConsentEvent.subscriber_id, ConsentEvent.kind).order_by(
                        ConsentEvent.id
                    )
                )
            ],
            "deliveries": [
                tuple(row)
                for row in session.execute(
                    select(Delivery.id, Delivery.status, Delivery.last_error).order_by(Delivery.id)
                )
            ],
            "suppressions": [
                tuple(row)
                for row in session.execute(select(Suppression.email_hash, Suppression.reason))
            ],
        }


def subscriber_row(app: Flask, subscriber_id: int) -> Subscriber:
    with session_factory(app)() as session:
        return session.get_one(Subscriber, subscriber_id)


def consent_kinds(app: Flask, subscriber_id: int) -> list[str]:
    with session_factory(app)() as session:
        return list(
            session.scalars(
                select(ConsentEvent.kind)
                .where(ConsentEvent.subscriber_id == subscriber_id)
                .order_by(ConsentEvent.id)
            )
        )


def withdrawals(app: Flask, subscriber_id: int) -> list[ConsentEvent]:
    with session_factory(app)() as session:
        return list(
            session.scalars(
                select(ConsentEvent).where(
                    ConsentEvent.subscriber_id == subscriber_id,
                    ConsentEvent.kind == ConsentKind.WITHDRAWN,
                )
            )
        )


def one_click(client: FlaskClient, path: str, form: str = "urlencoded", **headers: str) -> Any:
    content_type, body = ONE_CLICK_FORMS[form]
    return client.post(path, data=body, content_type=content_type, headers=headers)


def confirm_by_link(client: FlaskClient, url: str) -> Any:
    """Open a confirmation link and press its button, as a person would."""
    page = client.get(path_of(url))
    assert page.status_code == 200
    return client.post(path_of(url), data={"csrf_token": csrf_token(page)})


# --- the masked address -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("address", "masked"),
    [
        ("jane@example.org", "j•••@example.org"),
        ("J@example.org", "J•••@example.org"),
        ("first.last+news@mail.example.co.uk", "f•••@mail.example.co.uk"),
        ("renée@exämple.org", "r•••@exämple.org"),
        ("not-an-address", "•••"),
    ],
)
def test_mask_email_keeps_first_letter_and_domain(address: str, masked: str) -> None:
    assert mask_email(address) == masked


# --- the page and the POST ----------------------------------------------------------------


def test_get_shows_one_button_and_changes_nothing(app: Flask) -> None:
    jane = join(app)
    path = unsubscribe_path(app, jane)
    before = snapshot(app)
    client = app.test_client(use_cookies=False)

    for _ in range(2):
        page = client.get(path)
        assert page.status_code == 200
        html = page.get_data(as_text=True)
        assert "j•••@example.org" in html
        assert html.count("<button") == 1
        assert html.count("<form") == 1
        assert f'action="{path}"' in html
        assert 'href="/subscribe"' in html
        for personal in ("jane@example.org", "Jane", "Doe", "192.0.2.1"):
            assert personal not in html
        assert page.headers["Referrer-Policy"] == "no-referrer"
        assert "noindex" in page.headers["X-Robots-Tag"]

    assert snapshot(app) == before
    assert subscriber_row(app, jane.id).status == SubscriberStatus.ACTIVE


@pytest.mark.parametrize("form", sorted(ONE_CLICK_FORMS))
def test_one_click_post_without_cookie_jar(app: Flask, form: str) -> None:
    jane = join(app)
    client = app.test_client(use_cookies=False)

    response = one_click(client, unsubscribe_path(app, jane), form, **{"User-Agent": "MailBot/1.0"})

    assert response.status_code == 200
    assert "Location" not in response.headers
    assert "Set-Cookie" not in response.headers
    html = response.get_data(as_text=True)
    assert "You are unsubscribed" in html
    assert "j•••@example.org" in html
    assert 'href="/subscribe"' in html
    subscriber = subscriber_row(app, jane.id)
    assert subscriber.status == SubscriberStatus.UNSUBSCRIBED
    assert subscriber.unsubscribed_at is not None
    (event,) = withdrawals(app, jane.id)
    assert event.method == ONE_CLICK_METHOD
    assert event.user_agent == "MailBot/1.0"
    assert event.ip == "127.0.0.1"
    assert event.source_url is None
    assert event.statement_id is not None


def test_one_click_post_from_another_site_is_accepted(app: Flask) -> None:
    jane = join(app)
    client = app.test_client(use_cookies=False)
    response = one_click(client, unsubscribe_path(app, jane), Origin="https://mail.example.net")
    assert response.status_code == 200
    assert subscriber_row(app, jane.id).status == SubscriberStatus.UNSUBSCRIBED


def test_button_on_the_page_unsubscribes(app: Flask) -> None:
    jane = join(app)
    client = app.test_client()
    path = unsubscribe_path(app, jane)
    assert client.get(path).status_code == 200

    response = client.post(path)

    assert response.status_code == 200
    assert "You are unsubscribed" in response.get_data(as_text=True)
    (event,) = withdrawals(app, jane.id)
    assert event.method == PAGE_METHOD
    # Opening the link again says so instead of offering the button.
    again = client.get(path).get_data(as_text=True)
    assert "You are unsubscribed" in again
    assert "<button" not in again


def test_repeating_records_nothing_more(app: Flask) -> None:
    jane = join(app)
    client = app.test_client(use_cookies=False)
    path = unsubscribe_path(app, jane)
    assert one_click(client, path).status_code == 200
    after_first = snapshot(app)

    responses = [one_click(client, path), client.post(path), one_click(client, path, "multipart")]

    assert [response.status_code for response in responses] == [200, 200, 200]
    assert all("You are unsubscribed" in r.get_data(as_text=True) for r in responses)
    assert snapshot(app) == after_first
    assert len(withdrawals(app, jane.id)) == 1


def test_unsubscribing_sends_no_email(
    client: FlaskClient, app: Flask, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    post_signup(client, email="ada@example.org")
    (confirmation,) = sent_mail()
    confirm_by_link(client, find_link(confirmation, "/confirm/"))

    response = one_click(
        app.test_client(use_cookies=False), path_of(find_link(confirmation, "/unsubscribe/"))
    )

    assert response.status_code == 200
    assert len(sent_mail()) == 1


def test_no_global_csrf_protection(app: Flask) -> None:
    # A CSRFProtect on the whole app would refuse every one-click POST from a mail provider.
    assert "csrf" not in app.extensions
    html = app.test_client().get(unsubscribe_path(app, join(app))).get_data(as_text=True)
    assert "csrf_token" not in html


def test_one_click_is_not_rate_limited(make_app: Callable[..., Flask]) -> None:
    app = make_app(SIGNUP_RATE_LIMIT="2 per minute")
    jane = join(app)
    client = app.test_client(use_cookies=False)
    path = unsubscribe_path(app, jane)

    statuses = [one_click(client, path).status_code for _ in range(6)]

    assert statuses == [200] * 6
    # The limiter is on, for signups: the third one inside the minute is refused.
    browser = app.test_client()
    signups = []
    for number in range(3):
        signups.append(post_signup(browser, email=f"p{number}@example.org").status_code)
        get_dispatcher(app).drain()
    assert signups == [303, 303, 429]


# --- bad links ----------------------------------------------------------------------------

BAD_TOKEN_CASES = [
    "tampered signature",
    "tampered payload",
    "truncated",
    "confirm token",
    "another subscriber's id",
    "another subscriber's nonce",
    "no such subscriber",
    "erased subscriber",
    "unknown key",
    "not a token",
]


def bad_token(case: str, app: Flask, jane: Member, bob: Member) -> str:
    site = get_runtime(app).site
    good = site.tokens.make(Purpose.UNSUBSCRIBE, TokenData(jane.id, jane.token_nonce))
    payload, stamp, signature = good.split(".")
    if case == "tampered signature":
        return f"{payload}.{stamp}.{'B' if signature[0] == 'A' else 'A'}{signature[1:]}"
    if case == "tampered payload":
        bobs = site.tokens.make(Purpose.UNSUBSCRIBE, TokenData(bob.id, bob.token_nonce))
        return f"{bobs.split('.')[0]}.{stamp}.{signature}"
    if case == "truncated":
        return good[:-6]
    if case == "confirm token":
        data = TokenData(jane.id, jane.token_nonce, jane.consent_event_id)
        return site.tokens.make(Purpose.CONFIRM, data)
    if case == "another subscriber's id":
        return site.tokens.make(Purpose.UNSUBSCRIBE, TokenData(bob.id, jane.token_nonce))
    if case == "another subscriber's nonce":
        return site.tokens.make(Purpose.UNSUBSCRIBE, TokenData(jane.id, bob.token_nonce))
    if case == "no such subscriber":
        return site.tokens.make(Purpose.UNSUBSCRIBE, TokenData(bob.id + 1000, jane.token_nonce))
    if case == "erased subscriber":
        with session_factory(app).begin() as session:
            session.execute(delete(Subscriber).where(Subscriber.id == jane.id))
            suppress(session, jane.email, "erased")
        return good
    if case == "unknown key":
        return Tokens("a-key-this-site-never-had").make(
            Purpose.UNSUBSCRIBE, TokenData(jane.id, jane.token_nonce)
        )
    assert case == "not a token"
    return "definitely-not-a-token"


@pytest.mark.parametrize("case", BAD_TOKEN_CASES)
def test_bad_link_gives_400_and_changes_nothing(app: Flask, case: str) -> None:
    jane = join(app, "jane@example.org")
    bob = join(app, "bob@example.net")
    client = app.test_client(use_cookies=False)
    reference = client.get("/unsubscribe/nonsense")
    token = bad_token(case, app, jane, bob)
    before = snapshot(app)

    answers = [
        client.get(f"/unsubscribe/{token}"),
        one_click(client, f"/unsubscribe/{token}"),
        one_click(client, f"/unsubscribe/{token}", "multipart"),
        client.post(f"/unsubscribe/{token}"),
    ]

    for answer in answers:
        assert answer.status_code == 400
        html = answer.get_data(as_text=True)
        assert NOT_VALID in html
        assert 'href="/subscribe"' in html
        # The same page whatever the reason: it never tells whether an address is known.
        assert html == reference.get_data(as_text=True)
        for personal in ("j•••", "b•••", "example.net", "jane@", "Jane"):
            assert personal not in html
    assert snapshot(app) == before
    assert not any(row[2] == ConsentKind.WITHDRAWN for row in before["consent"])


def test_service_refuses_a_token_for_someone_else(app: Flask) -> None:
    jane = join(app, "jane@example.org")
    bob = join(app, "bob@example.net")
    with session_factory(app)() as session:
        with pytest.raises(LinkNoLongerValid):
            unsubscribe(session, TokenData(jane.id, bob.token_nonce), Evidence("test"))
        session.rollback()
    assert subscriber_row(app, jane.id).status == SubscriberStatus.ACTIVE
    assert subscriber_row(app, bob.id).status == SubscriberStatus.ACTIVE


# --- many at once -------------------------------------------------------------------------


def test_ten_concurrent_one_click_posts_record_one_withdrawal(app: Flask) -> None:
    jane = join(app)
    bob = join(app, "bob@example.net")
    path = unsubscribe_path(app, jane)
    start = threading.Barrier(10)

    with live_server(app) as base:
        address = urlsplit(base)

        def post() -> tuple[int, str | None]:
            connection = http.client.HTTPConnection(address.hostname, address.port, timeout=60)
            try:
                start.wait(timeout=30)
                connection.request(
                    "POST",
                    path,
                    body=ONE_CLICK_BODY,
                    headers={"Content-Type": URLENCODED, "User-Agent": "MailProvider"},
                )
                response = connection.getresponse()
                response.read()
                return response.status, response.getheader("Location")
            finally:
                connection.close()

        with ThreadPoolExecutor(max_workers=10) as pool:
            results = [future.result() for future in [pool.submit(post) for _ in range(10)]]

    assert results == [(200, None)] * 10
    assert len(withdrawals(app, jane.id)) == 1
    assert subscriber_row(app, jane.id).status == SubscriberStatus.UNSUBSCRIBED
    assert withdrawals(app, bob.id) == []
    assert subscriber_row(app, bob.id).status == SubscriberStatus.ACTIVE


# --- what leaving cancels -----------------------------------------------------------------


def test_queued_digest_delivery_is_skipped(app: Flask) -> None:
    jane = join(app)
    bob = join(app, "bob@example.net")
    with session_factory(app).begin() as session:
        earlier = Digest(subject="Last month", status="sent")
        current = Digest(subject="This month", status="sending")
        session.add_all([earlier, current])
        session.flush()
        rows = {
            "jane earlier": Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=earlier.id,
                subscriber_id=jane.id,
                status=DeliveryStatus.SENT,
            ),
            "jane current": Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=current.id,
                subscriber_id=jane.id,
                status=DeliveryStatus.QUEUED,
            ),
            "bob current": Delivery(
                kind=DeliveryKind.DIGEST,
                digest_id=current.id,
                subscriber_id=bob.id,
                status=DeliveryStatus.QUEUED,
            ),
        }
        session.add_all(rows.values())
        session.flush()
        ids = {name: delivery.id for name, delivery in rows.items()}

    response = one_click(app.test_client(use_cookies=False), unsubscribe_path(app, jane))

    assert response.status_code == 200
    with session_factory(app)() as session:
        state = {name: session.get_one(Delivery, id_) for name, id_ in ids.items()}
        assert state["jane current"].status == DeliveryStatus.SKIPPED
        assert state["jane current"].last_error == SKIPPED_REASON
        assert state["jane earlier"].status == DeliveryStatus.SENT
        assert state["bob current"].status == DeliveryStatus.QUEUED


def test_pending_person_who_did_not_ask_is_removed(
    app: Flask, outbox_path: Path, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    """The confirmation email's "I did not ask for this" link, before the email is even sent."""
    site = get_runtime(app).site
    with session_factory(app)() as session:
        outcome = sign_up(
            session, site, SignupDetails("jane@example.org", "Jane", "Doe"), Evidence(FORM_SIGNUP)
        )
        assert outcome.confirmation_id is not None
        confirmation_id = outcome.confirmation_id
        subscriber = session.get_one(Subscriber, outcome.subscriber_id)
        given = latest_given_event(session, subscriber)
        assert given is not None
        confirm_link = confirm_url(site, as_person(subscriber), given.id)
        leave_link = unsubscribe_url(site, as_person(subscriber))
        subscriber_id = subscriber.id
        session.commit()

    response = one_click(app.test_client(use_cookies=False), path_of(leave_link))

    assert response.status_code == 200
    assert subscriber_row(app, subscriber_id).status == SubscriberStatus.UNSUBSCRIBED
    assert consent_kinds(app, subscriber_id) == [ConsentKind.GIVEN, ConsentKind.WITHDRAWN]
    with session_factory(app)() as session:
        delivery = session.get_one(Delivery, confirmation_id)
        assert delivery.status == DeliveryStatus.SKIPPED
    assert get_runtime(app).outbox().flush().counts[DeliveryStatus.SENT] == 0
    assert read_maildir(outbox_path) == []
    # Their confirmation link no longer confirms anything.
    answer = confirm_by_link(app.test_client(), confirm_link)
    assert answer.status_code == 400
    assert subscriber_row(app, subscriber_id).status == SubscriberStatus.UNSUBSCRIBED
    assert sent_mail() == []


# --- coming back --------------------------------------------------------------------------


def test_resubscribe_needs_fresh_consent_and_confirmation(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    post_signup(client, email="ada@example.org")
    (first,) = sent_mail()
    old_confirm = find_link(first, "/confirm/")
    old_leave = find_link(first, "/unsubscribe/")
    assert confirm_by_link(client, old_confirm).status_code == 200
    with session_factory(app)() as session:
        ada = session.scalars(
            select(Subscriber).where(Subscriber.email_key == "ada@example.org")
        ).one()
    first_confirmed_at = ada.confirmed_at
    assert one_click(app.test_client(use_cookies=False), path_of(old_leave)).status_code == 200
    left_at = subscriber_row(app, ada.id).unsubscribed_at
    assert left_at is not None

    assert post_signup(client, email="ada@example.org").status_code == 303

    messages = sent_mail()
    assert len(messages) == 2
    new_confirm = find_link(messages[1], "/confirm/")
    assert new_confirm != old_confirm
    assert subscriber_row(app, ada.id).status == SubscriberStatus.PENDING
    # A confirmation link from before leaving does not bring them back.
    assert confirm_by_link(client, old_confirm).status_code == 400
    assert subscriber_row(app, ada.id).status == SubscriberStatus.PENDING

    assert confirm_by_link(client, new_confirm).status_code == 200

    back = subscriber_row(app, ada.id)
    assert back.status == SubscriberStatus.ACTIVE
    assert first_confirmed_at is not None and back.confirmed_at is not None
    assert back.confirmed_at > first_confirmed_at
    assert back.unsubscribed_at == left_at
    assert consent_kinds(app, ada.id) == [
        ConsentKind.GIVEN,
        ConsentKind.CONFIRMED,
        ConsentKind.WITHDRAWN,
        ConsentKind.GIVEN,
        ConsentKind.CONFIRMED,
    ]
    # Links in older emails still let them leave again.
    assert one_click(app.test_client(use_cookies=False), path_of(old_leave)).status_code == 200
    assert subscriber_row(app, ada.id).status == SubscriberStatus.UNSUBSCRIBED
    assert len(withdrawals(app, ada.id)) == 2


def test_confirm_link_from_before_leaving_fails_for_pending_person(app: Flask) -> None:
    """Signed up, said "I did not ask for this", signed up again: only the new link confirms."""
    site = get_runtime(app).site
    jane = join(app, active=False)
    old_confirm = TokenData(jane.id, jane.token_nonce, jane.consent_event_id)
    with session_factory(app).begin() as session:
        unsubscribe(session, TokenData(jane.id, jane.token_nonce), Evidence(ONE_CLICK_METHOD))
    again = join(app, active=False)
    assert again.consent_event_id != jane.consent_event_id
    assert subscriber_row(app, jane.id).status == SubscriberStatus.PENDING

    with session_factory(app)() as session:
        with pytest.raises(LinkNoLongerValid):
            confirm(session, old_confirm, Evidence("confirmation link"))
        session.rollback()
    client = app.test_client()
    stale = confirm_url(site, as_person(jane), jane.consent_event_id)
    assert confirm_by_link(client, stale).status_code == 400
    assert subscriber_row(app, jane.id).status == SubscriberStatus.PENDING

    fresh = confirm_url(site, as_person(again), again.consent_event_id)
    assert confirm_by_link(client, fresh).status_code == 200
    assert subscriber_row(app, jane.id).status == SubscriberStatus.ACTIVE


def test_resubscribe_without_double_opt_in_records_fresh_consent(
    make_app: Callable[..., Flask],
) -> None:
    app = make_app(DOUBLE_OPT_IN=False)
    client = app.test_client()
    post_signup(client, email="ada@example.org")
    with session_factory(app)() as session:
        ada = session.scalars(select(Subscriber)).one()
    assert ada.status == SubscriberStatus.ACTIVE
    assert one_click(client, unsubscribe_path(app, ada)).status_code == 200

    post_signup(client, email="ada@example.org")

    assert subscriber_row(app, ada.id).status == SubscriberStatus.ACTIVE
    assert consent_kinds(app, ada.id) == [
        ConsentKind.GIVEN,
        ConsentKind.WITHDRAWN,
        ConsentKind.GIVEN,
    ]


# --- key rotation -------------------------------------------------------------------------

OLD_KEY = "the-old-secret-key-used-last-year"
NEW_KEY = "the-new-secret-key-used-from-today"


def test_link_signed_before_key_rotation_still_works(make_app: Callable[..., Flask]) -> None:
    before_rotation = make_app(SECRET_KEY=OLD_KEY)
    jane = join(before_rotation)
    old_path = unsubscribe_path(before_rotation, jane)

    rotated = make_app(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS=f"{OLD_KEY}, an-even-older-key")
    client = rotated.test_client(use_cookies=False)

    assert client.get(old_path).status_code == 200
    assert one_click(client, old_path).status_code == 200
    assert subscriber_row(rotated, jane.id).status == SubscriberStatus.UNSUBSCRIBED
    # New links are signed with the new key only.
    new_token = path_of(unsubscribe_url(get_runtime(rotated).site, as_person(jane))).rpartition(
        "/"
    )[2]
    assert Tokens(NEW_KEY).read(Purpose.UNSUBSCRIBE, new_token).subscriber_id == jane.id
    with pytest.raises(InvalidToken):
        Tokens(OLD_KEY).read(Purpose.UNSUBSCRIBE, new_token)


def test_link_signed_with_unknown_key_does_not_work(make_app: Callable[..., Flask]) -> None:
    before_rotation = make_app(SECRET_KEY=OLD_KEY)
    jane = join(before_rotation)
    old_path = unsubscribe_path(before_rotation, jane)
    # The old key was dropped instead of being kept as a fallback.
    rotated = make_app(SECRET_KEY=NEW_KEY, SECRET_KEY_FALLBACKS="some-other-key")
    before = snapshot(rotated)
    client = rotated.test_client(use_cookies=False)

    assert client.get(old_path).status_code == 400
    assert one_click(client, old_path).status_code == 400
    assert snapshot(rotated) == before
    assert subscriber_row(rotated, jane.id).status == SubscriberStatus.ACTIVE


# --- headers on every message -------------------------------------------------------------


def test_list_headers_give_one_click_unsubscribe(app: Flask) -> None:
    jane = join(app)
    site = get_runtime(app).site
    url = unsubscribe_url(site, as_person(jane))
    assert url.startswith(f"{BASE}/unsubscribe/")

    assert list_headers(site, url) == {
        "List-Unsubscribe": f"<{url}>",
        "List-Unsubscribe-Post": "List-Unsubscribe=One-Click",
        "List-Id": "Open Rights Watch <newsletter.example.org>",
    }


def test_confirmation_email_carries_the_headers_unencoded(
    app: Flask, client: FlaskClient, outbox_path: Path, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    post_signup(client, email="ada@example.org")
    (message,) = sent_mail()
    (file,) = (outbox_path / "new").iterdir()
    raw = file.read_bytes()
    parsed = email.message_from_bytes(raw, policy=default)
    link = find_link(message, "/unsubscribe/")
    assert link.startswith(f"{BASE}/unsubscribe/")

    assert parsed["List-Unsubscribe"] == f"<{link}>"
    assert parsed["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert parsed["List-Id"] == "Open Rights Watch <newsletter.example.org>"
    header_lines = raw.split(b"\r\n\r\n", 1)[0].split(b"\r\n")
    assert f"List-Unsubscribe: <{link}>".encode() in header_lines
    assert b"List-Unsubscribe-Post: List-Unsubscribe=One-Click" in header_lines
    assert link in body_text(message, "html")
    # The header's link is the person's own working link.
    response = one_click(app.test_client(use_cookies=False), path_of(link))
    assert response.status_code == 200
    with session_factory(app)() as session:
        ada = session.scalars(select(Subscriber)).one()
    assert ada.status == SubscriberStatus.UNSUBSCRIBED


# --- the suppression list -----------------------------------------------------------------


def test_suppression_matches_any_letter_case(app: Flask) -> None:
    with session_factory(app).begin() as session:
        assert suppressed_since(session, "Gone@Example.org") is None
        suppress(session, "Gone@Example.org", "erased")
        suppress(session, "gone@example.org", "bounced")
    with session_factory(app)() as session:
        assert suppressed_since(session, "gone@example.org") is not None
        assert suppressed_since(session, " GONE@EXAMPLE.ORG ") is not None
        assert suppressed_since(session, "here@example.org") is None
        assert session.scalar(select(Suppression.reason)) == "erased"


def test_suppressed_address_is_not_mailed_for_an_import(app: Flask, outbox_path: Path) -> None:
    site = get_runtime(app).site
    with session_factory(app).begin() as session:
        suppress(session, "gone@example.org", "bounced")
    with session_factory(app).begin() as session:
        outcome = sign_up(
            session, site, SignupDetails("Gone@example.org", "Gone", "Away"), Evidence("csv import")
        )
        assert outcome.confirmation_id is not None

    result = get_runtime(app).outbox().flush()

    assert result.counts[DeliveryStatus.SKIPPED] == 1
    assert result.counts[DeliveryStatus.SENT] == 0
    assert read_maildir(outbox_path) == []


def test_signup_from_before_the_suppression_is_not_mailed(app: Flask, outbox_path: Path) -> None:
    site = get_runtime(app).site
    with session_factory(app).begin() as session:
        sign_up(
            session, site, SignupDetails("gone@example.org", "Gone", "Away"), Evidence(FORM_SIGNUP)
        )
    with session_factory(app).begin() as session:
        suppress(session, "gone@example.org", "bounced")
        subscriber = session.scalars(select(Subscriber)).one()
        given = latest_given_event(session, subscriber)
        assert given is not None
        assert not may_send_confirmation(session, subscriber.email, given)

    result = get_runtime(app).outbox().flush()

    assert result.counts[DeliveryStatus.SKIPPED] == 1
    assert read_maildir(outbox_path) == []


def test_fresh_form_signup_brings_an_erased_address_back(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    jane = join(app, "jane@example.org")
    with session_factory(app).begin() as session:
        session.execute(delete(Subscriber).where(Subscriber.id == jane.id))
        suppress(session, "jane@example.org", "erased")

    assert post_signup(client, email="Jane@Example.org").status_code == 303

    (message,) = sent_mail()
    assert message["To"].addresses[0].addr_spec.casefold() == "jane@example.org"
    with session_factory(app)() as session:
        assert suppressed_since(session, "jane@example.org") is not None
    assert confirm_by_link(client, find_link(message, "/confirm/")).status_code == 200
    with session_factory(app)() as session:
        assert suppressed_since(session, "jane@example.org") is None
        back = session.scalars(select(Subscriber)).one()
        assert back.status == SubscriberStatus.ACTIVE
        assert back.token_nonce != jane.token_nonce
    # Links sent before the erasure stay dead, even where the new row reuses the old id.
    old_link = one_click(app.test_client(use_cookies=False), unsubscribe_path(app, jane))
    assert old_link.status_code == 400
    assert subscriber_row(app, back.id).status == SubscriberStatus.ACTIVE


def test_fresh_form_signup_brings_a_bounced_address_back(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    jane = join(app, "jane@example.org")
    with session_factory(app).begin() as session:
        record_hard_bounce(session, session.get_one(Subscriber, jane.id))

    assert post_signup(client, email="jane@example.org").status_code == 303

    assert subscriber_row(app, jane.id).status == SubscriberStatus.PENDING
    (message,) = sent_mail()
    assert confirm_by_link(client, find_link(message, "/confirm/")).status_code == 200
    assert subscriber_row(app, jane.id).status == SubscriberStatus.ACTIVE
    with session_factory(app)() as session:
        assert suppressed_since(session, "jane@example.org") is None
    assert consent_kinds(app, jane.id) == [
        ConsentKind.GIVEN,
        ConsentKind.CONFIRMED,
        ConsentKind.GIVEN,
        ConsentKind.CONFIRMED,
    ]
