"""Bounce and complaint webhooks of mail providers: check who sent it, read the reports.

Each provider proves itself its own way (see ``newsletter.signatures``) and describes bounces
in its own words; this module turns a checked request into :class:`Report` values for
:func:`newsletter.services.bounces.record_report`. It knows nothing of HTTP: the view hands
it the headers it needs and the raw body, and turns :class:`NotFromProvider` into a 403 and
:class:`BadWebhook` into a 400, both before anything is changed.

Events that are no bounce or complaint (deliveries, opens, deferrals still being retried)
are read and ignored.
"""

from __future__ import annotations

import base64
import hmac
import json
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec

from newsletter.mail.bounce_reports import Report
from newsletter.models import BounceKind
from newsletter.signatures import (
    Fetch,
    load_sendgrid_key,
    mailgun_signature_valid,
    sendgrid_signature_valid,
    sns_address_allowed,
    sns_signature_valid,
)
from newsletter.verp import Verp

__all__ = [
    "PROVIDERS",
    "BadWebhook",
    "NotFromProvider",
    "WebhookKeys",
    "WebhookRequest",
    "read_webhook",
]

PROVIDERS = ("ses", "postmark", "mailgun", "sendgrid", "generic")
REASON_LENGTH = 1000

POSTMARK_HARD = {"HardBounce", "BadEmailAddress"}
POSTMARK_SOFT = {"SoftBounce", "Transient", "DnsError"}
GENERIC_KINDS = {
    "hard": BounceKind.HARD,
    "soft": BounceKind.SOFT,
    "complaint": BounceKind.COMPLAINT,
}


class NotFromProvider(PermissionError):
    """A missing or wrong signature, token or password: answered 403, nothing changed."""


class BadWebhook(ValueError):
    """A request with a valid proof whose body cannot be read: answered 400."""


class NotEnabled(LookupError):
    """The webhook of a provider without credentials in the settings: answered 404."""


@dataclass(frozen=True)
class WebhookKeys:
    """The credentials each webhook is checked with; an empty one leaves it off."""

    token: str = field(default="", repr=False)
    postmark: str = field(default="", repr=False)
    mailgun: str = field(default="", repr=False)
    sendgrid: ec.EllipticCurvePublicKey | None = field(default=None, repr=False)
    sns_topics: tuple[str, ...] = ()

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> WebhookKeys:
        sendgrid = config["SENDGRID_PUBLIC_KEY"]
        return cls(
            token=config["WEBHOOK_TOKEN"],
            postmark=config["POSTMARK_WEBHOOK_CREDENTIALS"],
            mailgun=config["MAILGUN_SIGNING_KEY"],
            sendgrid=load_sendgrid_key(sendgrid) if sendgrid else None,
            sns_topics=tuple(config["SNS_TOPIC_ARNS"].split()),
        )


@dataclass(frozen=True)
class WebhookRequest:
    """What a webhook needs of a request: some headers (lower-case names) and the body."""

    headers: Mapping[str, str]
    body: bytes


def read_webhook(
    provider: str, request: WebhookRequest, keys: WebhookKeys, verp: Verp | None, fetch: Fetch
) -> list[Report]:
    """The reports in a provider's request, once it is proven to come from the provider."""
    if provider == "generic":
        return _generic(request, keys, verp)
    if provider == "postmark":
        return _postmark(request, keys)
    if provider == "mailgun":
        return _mailgun(request, keys, verp)
    if provider == "sendgrid":
        return _sendgrid(request, keys)
    if provider == "ses":
        return _ses(request, keys, verp, fetch)
    raise NotEnabled(provider)


def _json(body: bytes) -> Any:
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise BadWebhook("the body is not JSON") from None
    except RecursionError:
        # Python reads JSON recursively: a few KB of "[" exhaust the stack. Mailgun's and
        # SES's bodies are read before their signature can be checked, so anyone can send it.
        raise BadWebhook("the JSON is nested too deeply to read") from None


def _text(value: object) -> str:
    return " ".join(str(value or "").split())[:REASON_LENGTH]


def _reason(*parts: object, default: object = "") -> str:
    """The provider's words for what happened, from the parts it gave."""
    return _text(" ".join(str(part) for part in parts if part) or default)


def _secret_matches(given: str, expected: str) -> bool:
    return hmac.compare_digest(given.encode("utf-8", "replace"), expected.encode("utf-8"))


# -- generic ----------------------------------------------------------------------------------


def _generic(request: WebhookRequest, keys: WebhookKeys, verp: Verp | None) -> list[Report]:
    if not keys.token:
        raise NotEnabled("generic")
    scheme, _, token = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not _secret_matches(token.strip(), keys.token):
        raise NotFromProvider("the bearer token is missing or wrong")
    data = _json(request.body)
    items = data if isinstance(data, list) else [data]
    return [_generic_item(item, verp) for item in items]


def _generic_item(item: Any, verp: Verp | None) -> Report:
    if not isinstance(item, dict):
        raise BadWebhook("each report is an object")
    kind = GENERIC_KINDS.get(str(item.get("type", "")))
    if kind is None:
        raise BadWebhook("type must be hard, soft or complaint")
    email = item.get("email")
    delivery = item.get("delivery")
    delivery_id: int | None = None
    if isinstance(delivery, int) and not isinstance(delivery, bool):
        delivery_id = delivery
    elif isinstance(delivery, str) and verp is not None:
        delivery_id = verp.delivery_of(delivery)
    if not isinstance(email, str) and delivery_id is None:
        raise BadWebhook("a report names an email or a delivery")
    report_id = item.get("id")
    return Report(
        kind=kind,
        # Without an id of its own, every report counts as new.
        report_id=f"generic:{report_id}" if report_id else f"generic:{uuid.uuid4()}",
        reason=_text(item.get("reason")),
        email=email if isinstance(email, str) else None,
        delivery_id=delivery_id,
    )


# -- Postmark ---------------------------------------------------------------------------------


def _postmark(request: WebhookRequest, keys: WebhookKeys) -> list[Report]:
    if not keys.postmark:
        raise NotEnabled("postmark")
    scheme, _, encoded = request.headers.get("authorization", "").partition(" ")
    try:
        given = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
    except (ValueError, UnicodeDecodeError):
        given = ""
    if scheme.lower() != "basic" or not _secret_matches(given, keys.postmark):
        raise NotFromProvider("the user name or password is wrong")
    data = _json(request.body)
    if not isinstance(data, dict):
        raise BadWebhook("expected one Postmark event")
    record, kind_name = data.get("RecordType"), str(data.get("Type", ""))
    if record == "SpamComplaint" or kind_name == "SpamComplaint":
        kind = BounceKind.COMPLAINT
    elif record == "Bounce" and kind_name in POSTMARK_HARD:
        kind = BounceKind.HARD
    elif record == "Bounce" and kind_name in POSTMARK_SOFT:
        kind = BounceKind.SOFT
    else:
        return []  # deliveries, opens, auto-replies
    email = data.get("Email")
    if not isinstance(email, str):
        raise BadWebhook("the event names no Email")
    reason = _text(data.get("Description") or data.get("Details") or kind_name)
    return [Report(kind, f"postmark:{data.get('ID')}", reason, email=email)]


# -- Mailgun ----------------------------------------------------------------------------------


def _mailgun(request: WebhookRequest, keys: WebhookKeys, verp: Verp | None) -> list[Report]:
    if not keys.mailgun:
        raise NotEnabled("mailgun")
    data = _json(request.body)
    signature = data.get("signature") if isinstance(data, dict) else None
    if not isinstance(signature, dict) or not mailgun_signature_valid(
        keys.mailgun,
        str(signature.get("timestamp", "")),
        str(signature.get("token", "")),
        str(signature.get("signature", "")),
    ):
        raise NotFromProvider("the signature is missing or wrong")
    event = data.get("event-data")
    if not isinstance(event, dict):
        raise BadWebhook("the request holds no event-data")
    name = event.get("event")
    if name == "complained":
        kind = BounceKind.COMPLAINT
    elif name == "failed":
        kind = BounceKind.HARD if event.get("severity") == "permanent" else BounceKind.SOFT
    else:
        return []
    status = event.get("delivery-status")
    status = status if isinstance(status, dict) else {}
    reason = _reason(
        status.get("code"),
        status.get("message") or status.get("description"),
        default=event.get("reason") or name,
    )
    envelope = event.get("envelope")
    sender = envelope.get("sender") if isinstance(envelope, dict) else None
    return [
        Report(
            kind,
            f"mailgun:{event.get('id')}",
            reason,
            email=event.get("recipient") if isinstance(event.get("recipient"), str) else None,
            delivery_id=verp.delivery_of(sender) if verp and isinstance(sender, str) else None,
        )
    ]


# -- SendGrid ---------------------------------------------------------------------------------


def _sendgrid(request: WebhookRequest, keys: WebhookKeys) -> list[Report]:
    if keys.sendgrid is None:
        raise NotEnabled("sendgrid")
    signature = request.headers.get("x-twilio-email-event-webhook-signature", "")
    timestamp = request.headers.get("x-twilio-email-event-webhook-timestamp", "")
    if not signature or not sendgrid_signature_valid(
        keys.sendgrid, signature, timestamp, request.body
    ):
        raise NotFromProvider("the signature is missing or wrong")
    events = _json(request.body)
    if not isinstance(events, list):
        raise BadWebhook("expected a list of SendGrid events")
    reports = []
    for event in events:
        if not isinstance(event, dict) or not isinstance(event.get("email"), str):
            raise BadWebhook("each event is an object with an email")
        name = event.get("event")
        if name == "spamreport":
            kind = BounceKind.COMPLAINT
        elif name == "bounce":
            # "blocked" is the receiving server refusing for now (reputation, content).
            kind = BounceKind.SOFT if event.get("type") == "blocked" else BounceKind.HARD
        else:
            continue  # processed, deferred (still retried), delivered, open, click…
        reason = _reason(event.get("status"), event.get("reason"), default=name)
        reports.append(
            Report(kind, f"sendgrid:{event.get('sg_event_id')}", reason, email=event["email"])
        )
    return reports


# -- Amazon SES through SNS -------------------------------------------------------------------


def _ses(
    request: WebhookRequest, keys: WebhookKeys, verp: Verp | None, fetch: Fetch
) -> list[Report]:
    if not keys.sns_topics:
        raise NotEnabled("ses")
    message = _json(request.body)
    if not isinstance(message, dict) or not sns_signature_valid(message, fetch):
        raise NotFromProvider("the SNS signature is missing or wrong")
    # Anyone can have SNS sign messages of their own topic: only ours are taken.
    if message.get("TopicArn") not in keys.sns_topics:
        raise NotFromProvider("the SNS topic is not one of NEWSLETTER_SNS_TOPIC_ARNS")
    kind = message.get("Type")
    if kind == "SubscriptionConfirmation":
        address = message.get("SubscribeURL")
        if not isinstance(address, str) or not sns_address_allowed(address):
            raise NotFromProvider("the subscription address is not an SNS address")
        try:
            fetch(address)
        except (OSError, ValueError) as error:
            raise BadWebhook(f"could not confirm the subscription: {error}") from None
        return []
    if kind != "Notification":
        return []
    notification = _json(str(message.get("Message", "")).encode("utf-8"))
    if not isinstance(notification, dict):
        raise BadWebhook("the SNS message holds no SES notification")
    return _ses_reports(notification, verp)


def _ses_reports(notification: dict[str, Any], verp: Verp | None) -> list[Report]:
    what = notification.get("notificationType") or notification.get("eventType")
    mail = notification.get("mail")
    mail = mail if isinstance(mail, dict) else {}
    source = mail.get("source")
    delivery_id = verp.delivery_of(source) if verp and isinstance(source, str) else None
    common = mail.get("commonHeaders")
    message_id = common.get("messageId") if isinstance(common, dict) else None
    if what == "Bounce":
        bounce = notification.get("bounce")
        if not isinstance(bounce, dict):
            raise BadWebhook("a Bounce notification without its bounce")
        kind = BounceKind.HARD if bounce.get("bounceType") == "Permanent" else BounceKind.SOFT
        recipients = bounce.get("bouncedRecipients")
        feedback_id = bounce.get("feedbackId")
        subtype = bounce.get("bounceSubType")
    elif what == "Complaint":
        complaint = notification.get("complaint")
        if not isinstance(complaint, dict):
            raise BadWebhook("a Complaint notification without its complaint")
        kind = BounceKind.COMPLAINT
        recipients = complaint.get("complainedRecipients")
        feedback_id = complaint.get("feedbackId")
        subtype = complaint.get("complaintFeedbackType") or "complaint"
    else:
        return []  # Delivery, Send, Open…
    if not isinstance(recipients, list):
        raise BadWebhook("the notification names no recipients")
    reports = []
    for recipient in recipients:
        if not isinstance(recipient, dict) or not isinstance(recipient.get("emailAddress"), str):
            raise BadWebhook("each recipient has an emailAddress")
        reason = _reason(recipient.get("status"), recipient.get("diagnosticCode") or subtype)
        reports.append(
            Report(
                kind,
                f"ses:{feedback_id}",
                reason,
                email=recipient["emailAddress"],
                delivery_id=delivery_id,
                message_id=message_id if isinstance(message_id, str) else None,
            )
        )
    return reports
