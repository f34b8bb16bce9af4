"""``POST /webhooks/bounces/<provider>`` with requests signed in the test by test keys
(SQLite and PostgreSQL): each provider's proof checked, a bad one a 403 that changes
nothing, an unknown address a 200, bodies capped and posts rate-limited, no CSRF token."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.x509.oid import NameOID
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from newsletter.models import BounceReport, ConsentEvent, Subscriber, SubscriberStatus
from newsletter.runtime import get_runtime
from newsletter.services.privacy import suppression_reason
from tests.support.people import add_subscriber

TOKEN = "generic-webhook-token-of-some-length"
MAILGUN_KEY = "key-mailgun-signing"
TOPIC = "arn:aws:sns:eu-west-1:123456789012:newsletter-bounces"
CERT_URL = "https://sns.eu-west-1.amazonaws.com/SimpleNotificationService-0123456789abcdef.pem"
SUBSCRIBE_URL = (
    "https://sns.eu-west-1.amazonaws.com/?Action=ConfirmSubscription&TopicArn=x&Token=abc"
)
BOUNCES = "bounces@news.example.org"


# -- test keys ----------------------------------------------------------------------------------


def _sns_key_and_certificate() -> tuple[rsa.RSAPrivateKey, bytes]:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "sns.amazonaws.com")])
    now = datetime.now(UTC)
    certificate = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=30))
        .sign(key, hashes.SHA256())
    )
    return key, certificate.public_bytes(serialization.Encoding.PEM)


SNS_KEY, SNS_CERTIFICATE = _sns_key_and_certificate()
SENDGRID_KEY = ec.generate_private_key(ec.SECP256R1())
SENDGRID_PUBLIC = base64.b64encode(
    SENDGRID_KEY.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
).decode()


class FakeFetch:
    """The SNS fetch, answering with the test's certificate and noting every address."""

    def __init__(self) -> None:
        self.fetched: list[str] = []

    def __call__(self, url: str) -> bytes:
        self.fetched.append(url)
        if url == CERT_URL:
            return SNS_CERTIFICATE
        return b"<ConfirmSubscriptionResponse/>"


@pytest.fixture
def fetch() -> FakeFetch:
    return FakeFetch()


@pytest.fixture
def hooks(make_app: Callable[..., Flask], fetch: FakeFetch) -> Flask:
    return make_app(
        BOUNCE_ADDRESS=BOUNCES,
        WEBHOOK_TOKEN=TOKEN,
        POSTMARK_WEBHOOK_CREDENTIALS="postmark:hook-password",
        MAILGUN_SIGNING_KEY=MAILGUN_KEY,
        SENDGRID_PUBLIC_KEY=SENDGRID_PUBLIC,
        SNS_TOPIC_ARNS=f"{TOPIC} arn:aws:sns:us-east-1:123456789012:other",
        SNS_FETCH=fetch,
    )


@pytest.fixture
def web(hooks: Flask) -> FlaskClient:
    return hooks.test_client()


@pytest.fixture
def ada(session: Session, hooks: Flask) -> Subscriber:
    return add_subscriber(session, "ada@example.org")


def status_of(session: Session, subscriber: Subscriber) -> str:
    session.expire_all()
    return session.get_one(Subscriber, subscriber.id).status


def report_count(session: Session) -> int:
    return session.scalar(select(func.count()).select_from(BounceReport)) or 0


# -- generic ------------------------------------------------------------------------------------


def generic(web: FlaskClient, payload: Any, token: str = TOKEN) -> Any:
    return web.post(
        "/webhooks/bounces/generic",
        data=json.dumps(payload),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )


def test_generic_reports_by_email_or_delivery(
    web: FlaskClient, hooks: Flask, session: Session, ada: Subscriber
) -> None:
    bob = add_subscriber(session, "bob@example.org", "Bob", "Smith")
    answer = generic(web, {"email": "ADA@example.org", "type": "hard", "reason": "no such user"})
    assert (answer.status_code, answer.json) == (200, {"status": "ok"})
    assert status_of(session, ada) == SubscriberStatus.BOUNCED
    assert suppression_reason(session, "ada@example.org") == "bounced"

    from newsletter.models import Delivery, DeliveryKind, DeliveryStatus

    delivery = Delivery(kind=DeliveryKind.DIGEST, subscriber_id=bob.id, status=DeliveryStatus.SENT)
    session.add(delivery)
    session.commit()
    verp = get_runtime(hooks).site.verp
    assert verp is not None
    answer = generic(web, {"delivery": verp.address(delivery.id), "type": "complaint"})
    assert answer.status_code == 200
    assert status_of(session, bob) == SubscriberStatus.UNSUBSCRIBED
    stored = session.scalars(select(BounceReport).order_by(BounceReport.id)).all()
    assert [(r.kind, r.source, r.reason) for r in stored] == [
        ("hard", "generic", "no such user"),
        ("complaint", "generic", ""),
    ]


def test_a_wrong_token_is_403_and_changes_nothing(
    web: FlaskClient, session: Session, ada: Subscriber
) -> None:
    for headers in (
        {"Authorization": "Bearer wrong"},
        {"Authorization": f"Basic {TOKEN}"},
        {},
    ):
        answer = web.post(
            "/webhooks/bounces/generic",
            data=json.dumps({"email": "ada@example.org", "type": "hard"}),
            headers=headers,
        )
        assert answer.status_code == 403
    assert status_of(session, ada) == SubscriberStatus.ACTIVE
    assert report_count(session) == 0


def test_an_unknown_address_is_200_and_ignored(web: FlaskClient, session: Session) -> None:
    answer = generic(web, {"email": "nobody@example.org", "type": "hard"})
    assert (answer.status_code, answer.json) == (200, {"status": "ok"})
    assert report_count(session) == 0


@pytest.mark.parametrize(
    "payload",
    [{"email": "ada@example.org", "type": "bounced"}, {"type": "hard"}, "text", [1]],
)
def test_a_proven_but_unreadable_report_is_400(
    web: FlaskClient, session: Session, ada: Subscriber, payload: Any
) -> None:
    assert generic(web, payload).status_code == 400
    assert status_of(session, ada) == SubscriberStatus.ACTIVE


def test_bodies_are_capped_and_posts_rate_limited(make_app: Callable[..., Flask]) -> None:
    app = make_app(WEBHOOK_TOKEN=TOKEN, WEBHOOK_RATE_LIMIT="3 per minute")
    web = app.test_client()
    big = {"email": "x@example.org", "type": "hard", "reason": "x" * (1024 * 1024)}
    assert generic(web, big).status_code == 413
    assert generic(web, {"email": "x@example.org", "type": "hard"}).status_code == 200
    assert generic(web, {"email": "x@example.org", "type": "hard"}).status_code == 200
    assert generic(web, {"email": "x@example.org", "type": "hard"}).status_code == 429


def test_providers_not_set_up_are_not_found(make_app: Callable[..., Flask]) -> None:
    web = make_app().test_client()
    for provider in ("generic", "postmark", "mailgun", "sendgrid", "ses", "other"):
        assert web.post(f"/webhooks/bounces/{provider}", data="{}").status_code == 404
    assert web.get("/webhooks/bounces/generic").status_code == 405


# -- Postmark -----------------------------------------------------------------------------------


def postmark(web: FlaskClient, payload: dict[str, Any], credentials: str) -> Any:
    auth = base64.b64encode(credentials.encode()).decode()
    return web.post(
        "/webhooks/bounces/postmark",
        data=json.dumps(payload),
        headers={"Authorization": f"Basic {auth}", "Content-Type": "application/json"},
    )


def test_postmark_bounces_and_complaints_with_basic_auth(
    web: FlaskClient, session: Session, ada: Subscriber
) -> None:
    soft = {
        "RecordType": "Bounce",
        "ID": 42,
        "Type": "SoftBounce",
        "Email": "ada@example.org",
        "Description": "The server was unable to deliver your message (ex: unknown user, "
        "mailbox not found).",
    }
    assert postmark(web, soft, "postmark:wrong").status_code == 403
    assert report_count(session) == 0
    assert postmark(web, soft, "postmark:hook-password").status_code == 200
    assert postmark(web, soft, "postmark:hook-password").status_code == 200  # a retry
    assert status_of(session, ada) == SubscriberStatus.ACTIVE
    complaint = {"RecordType": "SpamComplaint", "ID": 43, "Type": "SpamComplaint"}
    complaint["Email"] = "ada@example.org"
    assert postmark(web, complaint, "postmark:hook-password").status_code == 200
    assert status_of(session, ada) == SubscriberStatus.UNSUBSCRIBED
    delivered = {"RecordType": "Delivery", "Email": "ada@example.org", "ID": 44}
    assert postmark(web, delivered, "postmark:hook-password").status_code == 200
    kinds = session.scalars(select(BounceReport.kind).order_by(BounceReport.id)).all()
    assert kinds == ["soft", "complaint"]
    event = session.scalars(select(ConsentEvent).where(ConsentEvent.kind == "complaint")).one()
    assert event.method == "complaint report (postmark)"


# -- Mailgun ------------------------------------------------------------------------------------


def mailgun_body(event: dict[str, Any], key: str = MAILGUN_KEY) -> str:
    timestamp, token = "1796400000", "a1b2c3d4e5f6a7b8c9d0e1f2a3b4c5d6e7f8a9b0c1d2e3f4a5"
    signature = hmac.new(key.encode(), f"{timestamp}{token}".encode(), hashlib.sha256)
    return json.dumps(
        {
            "signature": {
                "timestamp": timestamp,
                "token": token,
                "signature": signature.hexdigest(),
            },
            "event-data": event,
        }
    )


def test_mailgun_failures_with_an_hmac_signature(
    web: FlaskClient, hooks: Flask, session: Session, ada: Subscriber
) -> None:
    from newsletter.models import Delivery, DeliveryKind, DeliveryStatus

    delivery = Delivery(kind=DeliveryKind.DIGEST, subscriber_id=ada.id, status=DeliveryStatus.SENT)
    session.add(delivery)
    session.commit()
    verp = get_runtime(hooks).site.verp
    assert verp is not None
    event = {
        "event": "failed",
        "severity": "permanent",
        "id": "G9Bn5sl1TC6nu79C8C0bwg",
        "recipient": "ada.forwarded@elsewhere.example",
        "envelope": {"sender": verp.address(delivery.id)},
        "delivery-status": {"code": 550, "message": "5.1.1 The email account does not exist"},
    }
    forged = web.post("/webhooks/bounces/mailgun", data=mailgun_body(event, key="guessed"))
    assert forged.status_code == 403
    assert status_of(session, ada) == SubscriberStatus.ACTIVE

    answer = web.post("/webhooks/bounces/mailgun", data=mailgun_body(event))
    assert answer.status_code == 200
    assert status_of(session, ada) == SubscriberStatus.BOUNCED
    stored = session.scalars(select(BounceReport)).one()
    assert (stored.delivery_id, stored.reason, stored.report_id) == (
        delivery.id,
        "550 5.1.1 The email account does not exist",
        "mailgun:G9Bn5sl1TC6nu79C8C0bwg",
    )


# -- SendGrid -----------------------------------------------------------------------------------


def sendgrid(web: FlaskClient, events: list[dict[str, Any]], key: Any = SENDGRID_KEY) -> Any:
    body = json.dumps(events).encode()
    timestamp = "1796400000"
    signature = key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return web.post(
        "/webhooks/bounces/sendgrid",
        data=body,
        headers={
            "X-Twilio-Email-Event-Webhook-Signature": base64.b64encode(signature).decode(),
            "X-Twilio-Email-Event-Webhook-Timestamp": timestamp,
            "Content-Type": "application/json",
        },
    )


def test_sendgrid_events_with_an_ecdsa_signature(
    web: FlaskClient, session: Session, ada: Subscriber
) -> None:
    bob = add_subscriber(session, "bob@example.org", "Bob", "Smith")
    events = [
        {"email": "ada@example.org", "event": "delivered", "sg_event_id": "e0"},
        {
            "email": "ada@example.org",
            "event": "bounce",
            "type": "bounce",
            "status": "5.1.1",
            "reason": "550 5.1.1 user unknown",
            "sg_event_id": "e1",
        },
        {"email": "bob@example.org", "event": "spamreport", "sg_event_id": "e2"},
        {"email": "carol@example.org", "event": "bounce", "type": "bounce", "sg_event_id": "e3"},
    ]
    other_key = ec.generate_private_key(ec.SECP256R1())
    assert sendgrid(web, events, key=other_key).status_code == 403
    assert report_count(session) == 0

    assert sendgrid(web, events).status_code == 200
    assert status_of(session, ada) == SubscriberStatus.BOUNCED
    assert status_of(session, bob) == SubscriberStatus.UNSUBSCRIBED
    reasons = session.scalars(select(BounceReport.reason).order_by(BounceReport.id)).all()
    assert reasons == ["5.1.1 550 5.1.1 user unknown", "spamreport"]


# -- Amazon SES through SNS ---------------------------------------------------------------------


def sns(message: dict[str, str], version: str = "1") -> dict[str, str]:
    """An SNS message signed by the test's certificate, as SNS signs it."""
    signed = dict(message, SignatureVersion=version, SigningCertURL=CERT_URL)
    if message["Type"] == "Notification":
        fields = ["Message", "MessageId", "Subject", "Timestamp", "TopicArn", "Type"]
    else:
        fields = ["Message", "MessageId", "SubscribeURL", "Timestamp", "Token", "TopicArn", "Type"]
    text = "".join(f"{name}\n{signed[name]}\n" for name in fields if name in signed)
    algorithm = hashes.SHA1() if version == "1" else hashes.SHA256()
    signature = SNS_KEY.sign(text.encode(), padding.PKCS1v15(), algorithm)
    signed["Signature"] = base64.b64encode(signature).decode()
    return signed


def ses_notification(notification: dict[str, Any], topic: str = TOPIC) -> dict[str, str]:
    return {
        "Type": "Notification",
        "MessageId": "22b80b92-fdea-4c2c-8f9d-bdfb0c7bf324",
        "TopicArn": topic,
        "Message": json.dumps(notification),
        "Timestamp": "2026-12-04T09:00:00.000Z",
    }


def ses_bounce(email: str, bounce_type: str = "Permanent") -> dict[str, Any]:
    return {
        "notificationType": "Bounce",
        "bounce": {
            "bounceType": bounce_type,
            "bounceSubType": "General",
            "bouncedRecipients": [
                {"emailAddress": email, "status": "5.1.1", "diagnosticCode": "smtp; 550 5.1.1"}
            ],
            "feedbackId": "0100017c-bounce-feedback",
        },
        "mail": {"source": "bounces@news.example.org", "messageId": "0100017c-ses"},
    }


def post_sns(web: FlaskClient, message: dict[str, str]) -> Any:
    # SNS posts JSON as text/plain.
    return web.post(
        "/webhooks/bounces/ses", data=json.dumps(message), headers={"Content-Type": "text/plain"}
    )


@pytest.mark.parametrize("version", ["1", "2"])
def test_ses_notifications_signed_by_sns(
    web: FlaskClient, session: Session, ada: Subscriber, fetch: FakeFetch, version: str
) -> None:
    answer = post_sns(web, sns(ses_notification(ses_bounce("ada@example.org")), version))
    assert answer.status_code == 200
    assert status_of(session, ada) == SubscriberStatus.BOUNCED
    assert fetch.fetched == [CERT_URL]

    complaint = {
        "notificationType": "Complaint",
        "complaint": {
            "complainedRecipients": [{"emailAddress": "ada@example.org"}],
            "complaintFeedbackType": "abuse",
            "feedbackId": "0100017c-complaint",
        },
        "mail": {"source": "news@example.org"},
    }
    assert post_sns(web, sns(ses_notification(complaint), version)).status_code == 200
    assert suppression_reason(session, "ada@example.org") == "bounced"
    assert [r.kind for r in session.scalars(select(BounceReport).order_by(BounceReport.id))] == [
        "hard",
        "complaint",
    ]
    # The certificate is fetched once.
    assert fetch.fetched == [CERT_URL]


def test_ses_refuses_tampered_foreign_and_off_host_messages(
    web: FlaskClient, session: Session, ada: Subscriber, fetch: FakeFetch
) -> None:
    signed = sns(ses_notification(ses_bounce("bob@example.org")))
    tampered = dict(signed, Message=json.dumps(ses_bounce("ada@example.org")))
    assert post_sns(web, tampered).status_code == 403
    # A genuine SNS message of someone else's topic.
    foreign = sns(ses_notification(ses_bounce("ada@example.org"), topic="arn:aws:sns:x:1:theirs"))
    assert post_sns(web, foreign).status_code == 403
    assert fetch.fetched == [CERT_URL]
    fetch.fetched.clear()
    for address in (
        "http://sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com.attacker.example/cert.pem",
        "https://attacker.example/sns.eu-west-1.amazonaws.com/cert.pem",
        "https://sns.eu-west-1.amazonaws.com:8443/cert.pem",
        "https://user@sns.eu-west-1.amazonaws.com/cert.pem",
        "https://s3.eu-west-1.amazonaws.com/cert.pem",
    ):
        message = dict(sns(ses_notification(ses_bounce("ada@example.org"))))
        message["SigningCertURL"] = address
        assert post_sns(web, message).status_code == 403, address
    assert fetch.fetched == []  # never fetched from anywhere else
    unsigned = ses_notification(ses_bounce("ada@example.org"))
    assert post_sns(web, unsigned).status_code == 403
    assert post_sns(web, dict(signed, SignatureVersion="3")).status_code == 403
    assert status_of(session, ada) == SubscriberStatus.ACTIVE
    assert report_count(session) == 0


def test_ses_subscriptions_are_confirmed_on_sns_hosts_only(
    web: FlaskClient, fetch: FakeFetch
) -> None:
    confirmation = {
        "Type": "SubscriptionConfirmation",
        "MessageId": "165545c9-2a5c-472c-8df2-7ff2be2b3b1b",
        "Token": "2336412f37",
        "TopicArn": TOPIC,
        "Message": "You have chosen to subscribe to the topic.",
        "SubscribeURL": SUBSCRIBE_URL,
        "Timestamp": "2026-12-04T09:00:00.000Z",
    }
    assert post_sns(web, sns(confirmation)).status_code == 200
    assert fetch.fetched == [CERT_URL, SUBSCRIBE_URL]

    fetch.fetched.clear()
    elsewhere = dict(confirmation, SubscribeURL="https://attacker.example/?Action=Confirm")
    assert post_sns(web, sns(elsewhere)).status_code == 403
    assert fetch.fetched == []  # the certificate is remembered; the address never fetched


def test_control_characters_in_a_report_are_dropped_not_a_500(
    web: FlaskClient, session: Session, ada: Subscriber
) -> None:
    payload = {
        "email": "ada@example.org\u0000",
        "type": "soft",
        "reason": "mailbox\u0000 full\u0007",
        "id": "evt\u0000-1",
    }
    assert generic(web, payload).status_code == 200
    assert generic(web, dict(payload, email="nobody\u0000@example.org")).status_code == 200
    stored = session.scalars(select(BounceReport)).one()
    assert (stored.reason, stored.report_id) == ("mailbox full", "generic:evt-1")


def test_a_delivery_number_past_any_id_is_an_unknown_report(
    web: FlaskClient, session: Session
) -> None:
    for number in (2**31, 10**30, -1, 0):
        assert generic(web, {"delivery": number, "type": "hard"}).status_code == 200
    assert report_count(session) == 0


@pytest.mark.parametrize("opening", ["[", '{"a":'])
def test_json_nested_past_the_parsers_depth_is_400_not_a_500(
    web: FlaskClient, session: Session, opening: str
) -> None:
    # Mailgun and SES are read before their signature can be checked: anyone can post this.
    deep = opening * 100_000
    assert web.post("/webhooks/bounces/mailgun", data=deep).status_code == 400
    assert generic(web, None).status_code == 400
    answer = web.post(
        "/webhooks/bounces/generic",
        data=deep,
        headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
    )
    assert answer.status_code == 400
    assert report_count(session) == 0


def test_a_lone_surrogate_in_an_unsigned_body_is_403_not_a_500(
    web: FlaskClient, session: Session, ada: Subscriber
) -> None:
    # JSON's "\ud800" is a string no UTF-8 can hold; these bodies are read before any proof.
    mailgun = '{"signature": {"timestamp": "1796400000", "token": "\\ud800", "signature": "0"}}'
    assert web.post("/webhooks/bounces/mailgun", data=mailgun).status_code == 403
    message = ses_notification(ses_bounce("ada@example.org"))
    forged = dict(message, Message="\ud800", SignatureVersion="1", SigningCertURL=CERT_URL)
    assert post_sns(web, dict(forged, Signature="AAAA")).status_code == 403
    assert report_count(session) == 0
    assert status_of(session, ada) == SubscriberStatus.ACTIVE
