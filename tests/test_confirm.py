"""Double opt-in: the confirmation email, its link's pages, bad links, a real SMTP server and
the outbox when that server is down (each test on SQLite and PostgreSQL)."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient, FlaskCliRunner
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import delete

from newsletter.app_db import session_factory
from newsletter.models import FORM_SIGNUP, DeliveryStatus, Subscriber, SubscriberStatus
from newsletter.runtime import get_runtime
from newsletter.services.consent import Evidence
from newsletter.services.subscriptions import SignupDetails, sign_up
from newsletter.tokens import Purpose, TokenData
from newsletter.web.dispatch import get_dispatcher
from tests.conftest import csrf_token, post_signup
from tests.support.html import parse_page
from tests.support.mailbox import body_text, find_link
from tests.support.records import deliveries, events, subscriber
from tests.support.smtp import SMTPServer
from tests.support.tokens import flip_first

BASE = "https://news.example.org"
EIGHT_DAYS = 8 * 24 * 3600


def path_of(url: str) -> str:
    assert url.startswith(BASE + "/"), url
    return url.removeprefix(BASE)


def confirm_path(message: EmailMessage) -> str:
    return path_of(find_link(message, "/confirm/"))


def token_of(path: str) -> str:
    return path.removeprefix("/confirm/")


def signed_up(
    client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]], **fields: str
) -> str:
    """Sign up and return the path of the confirmation link that was mailed."""
    assert post_signup(client, **fields).status_code == 303
    return confirm_path(sent_mail()[-1])


def press(client: FlaskClient, path: str) -> tuple[int, str]:
    """Open the page at ``path`` and press its one button, as a person would."""
    page = client.get(path)
    response = client.post(path, data={"csrf_token": csrf_token(page)})
    return response.status_code, response.get_data(as_text=True)


class _PastSigner(TimestampSigner):
    def get_timestamp(self) -> int:
        return int(time.time()) - EIGHT_DAYS


def expired_token(app: Flask, token: str) -> str:
    """The same token as if it had been sent eight days ago (links last seven)."""
    data = get_runtime(app).site.tokens.read(Purpose.CONFIRM, token)
    serializer = URLSafeTimedSerializer(
        [app.config["SECRET_KEY"]], salt="newsletter.confirm", signer=_PastSigner
    )
    return str(serializer.dumps([data.subscriber_id, data.nonce, data.consent_event_id]))


def status_of(app: Flask, email: str = "ada@example.org") -> str:
    stored = subscriber(app, email)
    assert stored is not None
    return stored.status


# --- the email ------------------------------------------------------------------------------


def test_confirmation_email_content(
    client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    assert post_signup(client, first_name="Ada", last_name="Lovelace").status_code == 303
    [message] = sent_mail()

    assert message["Subject"] == "Please confirm your subscription to Open Rights Watch"
    assert message["From"] == "Open Rights Watch <news@example.org>"
    # The address nobody has proved yet to own gets nothing typed into the form but itself.
    assert message["To"] == "ada@example.org"
    assert message.get_content_type() == "multipart/alternative"
    assert re.fullmatch(r"<confirm\.\d+\.[0-9a-f]{16}@example\.org>", message["Message-ID"])

    text = body_text(message, "plain")
    html = body_text(message, "html")
    link = find_link(message, "/confirm/")
    assert urlsplit(link).path.startswith("/confirm/")
    assert link in text
    assert f'href="{link}"' in html
    assert "The link works for 7 days." in text
    assert "1 Example Street, Example City" in text
    assert "1 Example Street, Example City" in html
    assert text.splitlines()[0] == "Hello,"
    assert "Hello," in html
    assert "Ada" not in text + html
    assert "Lovelace" not in text + html
    # CSS is inlined for mail clients that drop style sheets.
    assert 'style="' in html

    unsubscribe = message["List-Unsubscribe"]
    match = re.fullmatch(r"<(https://news\.example\.org/unsubscribe/[^>\s]+)>", unsubscribe)
    assert match, unsubscribe
    assert match.group(1) in text
    assert message["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert message["List-Id"] == "Open Rights Watch <newsletter.example.org>"


def test_confirmation_carries_no_name_whatever_was_stored(
    app: Flask,
    runner: FlaskCliRunner,
    sent_mail: Callable[[], list[EmailMessage]],
    outbox_path: Path,
) -> None:
    # Stored before names were checked, or imported by hand: still never in this email.
    typed = "<script>alert(1)</script> visit http://evil.example/x =?utf-8?q?a=0D=0ABcc:x?="
    with session_factory(app).begin() as db:
        person = SignupDetails("ada@example.org", typed, typed)
        sign_up(db, get_runtime(app).site, person, Evidence(FORM_SIGNUP))
    assert runner.invoke(args=["outbox", "flush"]).exit_code == 0

    [message] = sent_mail()
    assert message["To"] == "ada@example.org"
    # The bytes as sent: re-serialising the parsed message would refold its long headers into
    # encoded-words of its own.
    [file] = (outbox_path / "new").iterdir()
    raw = file.read_bytes()
    for piece in (b"<script>", b"alert(1)", b"evil.example", b"=?utf-8?q?a", b"Bcc"):
        assert piece not in raw


# --- the link's pages -----------------------------------------------------------------------


def test_opening_the_link_changes_nothing_and_shows_one_button(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    path = signed_up(client, sent_mail)
    # A mail scanner (no cookies, no form) fetching the link, twice.
    for _ in range(2):
        response = app.test_client().get(path)
        assert response.status_code == 200
    html = response.get_data(as_text=True)
    assert html.count("<button") == 1
    assert re.search(r'<button type="submit">Confirm</button>', html)
    assert html.count("<form") == 1 and 'method="post"' in html
    assert status_of(app) == SubscriberStatus.PENDING
    assert [event.kind for event in events(app)] == ["given"]


def test_pressing_confirm_makes_active_and_a_second_press_is_harmless(
    app: Flask,
    client: FlaskClient,
    sent_mail: Callable[[], list[EmailMessage]],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level("INFO", logger="newsletter")
    path = signed_up(client, sent_mail)
    token = csrf_token(client.get(path))
    response = client.post(path, data={"csrf_token": token})
    assert response.status_code == 200
    assert "You are subscribed" in response.get_data(as_text=True)

    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    assert stored.status == SubscriberStatus.ACTIVE
    assert stored.confirmed_at is not None
    given, confirmed = events(app)
    assert (given.kind, confirmed.kind) == ("given", "confirmed")
    assert confirmed.statement_id == given.statement_id
    assert confirmed.method == "confirmation link"
    assert confirmed.ip == "127.0.0.1"
    assert f"confirmation: subscriber {stored.id} is active" in caplog.text
    assert "ada@example.org" not in caplog.text

    # The same button again (a double click, the back button), and the page again.
    again = client.post(path, data={"csrf_token": token})
    assert again.status_code == 200
    assert "You are subscribed" in again.get_data(as_text=True)
    assert "You are subscribed" in client.get(path).get_data(as_text=True)
    assert len(events(app, "confirmed")) == 1
    unchanged = subscriber(app, "ada@example.org")
    assert unchanged is not None and unchanged.confirmed_at == stored.confirmed_at


def test_pressing_confirm_without_the_forms_token_changes_nothing(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    path = signed_up(client, sent_mail)
    response = app.test_client().post(path)
    assert response.status_code == 400
    page = parse_page(response.get_data(as_text=True))
    assert "This form expired; please send it again" in page.roles["alert"][0]
    assert status_of(app) == SubscriberStatus.PENDING
    # The page it gives back has a working button.
    assert press(client, path)[0] == 200
    assert status_of(app) == SubscriberStatus.ACTIVE


def test_expired_link_offers_a_fresh_email(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    path = signed_up(client, sent_mail)
    old = "/confirm/" + expired_token(app, token_of(path))

    page = client.get(old)
    assert page.status_code == 400
    html = page.get_data(as_text=True)
    assert "This confirmation link has expired." in html
    assert "Send me a new confirmation email" in html
    assert client.post(old, data={"csrf_token": csrf_token(page)}).status_code == 400
    assert status_of(app) == SubscriberStatus.PENDING

    renew = re.search(r'action="(/confirm/[^"]+/renew)"', html)
    assert renew is not None
    response = client.post(renew.group(1), data={"csrf_token": csrf_token(page)})
    assert response.status_code == 200
    assert "Check your inbox" in response.get_data(as_text=True)

    messages = sent_mail()
    assert len(messages) == 2
    fresh = confirm_path(messages[1])
    assert press(client, fresh)[0] == 200
    assert status_of(app) == SubscriberStatus.ACTIVE
    assert len(events(app, "confirmed")) == 1


def test_fresh_email_button_needs_its_form_token(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    path = signed_up(client, sent_mail)
    old = "/confirm/" + expired_token(app, token_of(path))
    response = app.test_client().post(old + "/renew")
    assert response.status_code == 400
    assert len(deliveries(app)) == 1


def _tampered(token: str) -> list[str]:
    payload, stamp, signature = token.split(".")
    flipped = f"{payload}.{stamp}.{flip_first(signature)}"
    other_payload = f"{flip_first(payload)}.{stamp}.{signature}"
    return [flipped, other_payload, token[: len(token) // 2], "nonsense", token + "x"]


def test_tampered_or_truncated_link_gives_400_and_changes_nothing(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    path = signed_up(client, sent_mail)
    for bad in _tampered(token_of(path)):
        page = client.get(f"/confirm/{bad}")
        assert page.status_code == 400, bad
        html = page.get_data(as_text=True)
        assert "This confirmation link is not valid." in html
        assert "Send me a new" not in html
        form_page = client.get("/subscribe")
        response = client.post(f"/confirm/{bad}", data={"csrf_token": csrf_token(form_page)})
        assert response.status_code == 400
        renew = client.post(f"/confirm/{bad}/renew", data={"csrf_token": csrf_token(form_page)})
        assert renew.status_code == 400
    assert status_of(app) == SubscriberStatus.PENDING
    assert [event.kind for event in events(app)] == ["given"]
    assert len(deliveries(app)) == 1


def test_bad_confirm_and_unsubscribe_links_get_the_same_page(client: FlaskClient) -> None:
    pages = [client.get("/confirm/not-a-token"), client.get("/unsubscribe/not-a-token")]
    assert [page.status_code for page in pages] == [400, 400]
    confirm, unsubscribe = (page.get_data(as_text=True) for page in pages)
    for html in (confirm, unsubscribe):
        assert '<p class="site-name">Open Rights Watch</p>' in html
        assert "<h1>This link cannot be used</h1>" in html
        assert "Send me a new" not in html
    assert "This confirmation link is not valid." in confirm
    assert "This unsubscribe link is not valid." in unsubscribe


def test_unsubscribe_token_does_not_confirm(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    assert post_signup(client).status_code == 303
    [message] = sent_mail()
    unsubscribe = re.search(r"/unsubscribe/([^>\s]+)", message["List-Unsubscribe"])
    assert unsubscribe is not None
    path = f"/confirm/{unsubscribe.group(1)}"
    assert client.get(path).status_code == 400
    form_page = client.get("/subscribe")
    assert client.post(path, data={"csrf_token": csrf_token(form_page)}).status_code == 400
    assert status_of(app) == SubscriberStatus.PENDING


def test_token_with_another_secret_key_is_refused(
    make_app: Callable[..., Flask],
    outbox_path: Path,
) -> None:
    app = make_app()
    client = app.test_client()
    assert post_signup(client).status_code == 303
    get_dispatcher(app).drain()
    stored = subscriber(app, "ada@example.org")
    assert stored is not None
    stranger = get_runtime(make_app(SECRET_KEY="some-other-installation-key")).site.tokens
    forged = stranger.make(Purpose.CONFIRM, TokenData(stored.id, stored.token_nonce, 1))
    assert client.get(f"/confirm/{forged}").status_code == 400
    assert status_of(app) == SubscriberStatus.PENDING


def test_link_of_an_erased_person_is_refused(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    path = signed_up(client, sent_mail)
    with session_factory(app).begin() as db:
        db.execute(delete(Subscriber))
    page = client.get(path)
    assert page.status_code == 400
    assert "This confirmation link is not valid." in page.get_data(as_text=True)
    response = client.post(path, data={"csrf_token": csrf_token(client.get("/subscribe"))})
    assert response.status_code == 400
    # Coming back through the form gives a new person, whose old link still does nothing.
    newer = signed_up(client, sent_mail)
    assert client.get(path).status_code == 400
    assert press(client, newer)[0] == 200
    assert status_of(app) == SubscriberStatus.ACTIVE


def test_old_link_of_someone_who_left_does_not_resubscribe(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    path = signed_up(client, sent_mail)
    with session_factory(app).begin() as db:
        stored = db.query(Subscriber).one()
        stored.status = SubscriberStatus.UNSUBSCRIBED
    status, html = press(client, path)
    assert status == 400
    assert "no longer valid" in html
    assert status_of(app) == SubscriberStatus.UNSUBSCRIBED


def test_only_the_newest_signup_link_is_needed(
    app: Flask, client: FlaskClient, sent_mail: Callable[[], list[EmailMessage]]
) -> None:
    first = signed_up(client, sent_mail)
    second = signed_up(client, sent_mail, first_name="Augusta")
    assert first != second
    assert press(client, first)[0] == 200
    assert status_of(app) == SubscriberStatus.ACTIVE
    assert "You are subscribed" in client.get(second).get_data(as_text=True)
    assert len(events(app, "confirmed")) == 1


# --- a real SMTP server ---------------------------------------------------------------------


def _received_link(server: SMTPServer) -> str:
    [received] = server.received
    assert received.recipients == ["ada@example.org"]
    assert received.sender == "news@example.org"
    return confirm_path(received.message)


def test_confirmation_through_a_real_smtp_server(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    client = app.test_client()
    assert post_signup(client).status_code == 303
    get_dispatcher(app).drain()

    path = _received_link(smtp_server)
    assert client.get(path).status_code == 200
    assert status_of(app) == SubscriberStatus.PENDING
    status, html = press(client, path)
    assert status == 200
    assert status_of(app) == SubscriberStatus.ACTIVE
    [delivery] = deliveries(app)
    assert delivery.status == DeliveryStatus.SENT
    assert delivery.message_id == smtp_server.received[0].message["Message-ID"]


def test_mail_server_down_at_signup_then_outbox_flush(
    make_app: Callable[..., Flask],
    smtp_server: SMTPServer,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    client = app.test_client()
    smtp_server.stop()

    response = post_signup(client)
    get_dispatcher(app).drain()
    assert response.status_code == 303
    assert response.headers["Location"] == "/subscribe/thanks"
    assert status_of(app) == SubscriberStatus.PENDING
    [delivery] = deliveries(app)
    assert delivery.status == DeliveryStatus.QUEUED
    assert delivery.attempts == 0
    assert delivery.last_error is not None and "cannot connect" in delivery.last_error
    assert "Traceback" not in caplog.text

    runner = app.test_cli_runner()
    still_down = runner.invoke(args=["outbox", "flush"])
    assert still_down.exit_code == 1
    assert "sent 0, failed 0, skipped 0, unknown 0, still waiting 1" in still_down.output
    assert "cannot connect to 127.0.0.1" in still_down.output
    assert "Run the command again to resume." in still_down.output
    assert still_down.exception is None or isinstance(still_down.exception, SystemExit)

    smtp_server.start()
    flushed = runner.invoke(args=["outbox", "flush"])
    assert flushed.exit_code == 0, flushed.output
    assert "sent 1, failed 0, skipped 0, unknown 0, still waiting 0" in flushed.output

    path = _received_link(smtp_server)
    assert press(client, path)[0] == 200
    assert status_of(app) == SubscriberStatus.ACTIVE
    # Nothing is left to send, and a flush says so.
    again = runner.invoke(args=["outbox", "flush"])
    assert again.exit_code == 0
    assert "sent 0" in again.output
    assert len(smtp_server.received) == 1


def test_flush_stops_at_an_unreachable_server_and_keeps_the_rest(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    client = app.test_client()
    smtp_server.stop()
    for number in range(3):
        assert post_signup(client, email=f"p{number}@example.org").status_code == 303
    get_dispatcher(app).drain()

    result = app.test_cli_runner().invoke(args=["outbox", "flush"])
    assert result.exit_code == 1
    assert "still waiting 3" in result.output
    assert [d.status for d in deliveries(app)] == [DeliveryStatus.QUEUED] * 3
    # Connection failures are not held against the messages.
    assert [d.attempts for d in deliveries(app)] == [0, 0, 0]
