"""``POST /webhooks/bounces/<provider>``: bounce and complaint reports from mail providers.

The providers' servers post with no cookie and no CSRF token (no form here carries one, so
there is nothing to exempt): the provider's signature, password or token is the whole proof.
The answers tell a caller nothing about who is subscribed:

- ``403`` for a missing or wrong proof, before anything is read or changed;
- ``200`` for a valid report, whether or not its address is known here;
- ``400`` for a proven request whose body cannot be read, ``404`` for a provider that is
  not set up, ``413`` for a body over the cap; posts are rate-limited per client
  (``NEWSLETTER_WEBHOOK_RATE_LIMIT``, see ``web/limits.py``).
"""

from __future__ import annotations

import logging
from collections import Counter

from flask import Blueprint, Flask, current_app, request

from newsletter.app_db import get_session
from newsletter.runtime import get_runtime
from newsletter.services.bounce_webhooks import (
    BadWebhook,
    NotEnabled,
    NotFromProvider,
    WebhookKeys,
    WebhookRequest,
    read_webhook,
)
from newsletter.services.bounces import record_report
from newsletter.signatures import Fetch, fetch_https

__all__ = ["MAX_BODY_BYTES", "bp", "init_app"]

log = logging.getLogger(__name__)

bp = Blueprint("webhooks", __name__)

# SendGrid batches events; a few hundred of them fit well under this.
MAX_BODY_BYTES = 1024 * 1024
# The headers the providers prove themselves with.
PROOF_HEADERS = (
    "authorization",
    "x-twilio-email-event-webhook-signature",
    "x-twilio-email-event-webhook-timestamp",
)
KEYS = "newsletter.webhook_keys"
CERTIFICATES = "newsletter.sns_certificates"

Answer = tuple[dict[str, str], int]


def init_app(app: Flask) -> None:
    app.extensions[KEYS] = WebhookKeys.from_config(app.config)
    # SNS signs with few certificates: each is fetched once per process.
    app.extensions[CERTIFICATES] = {}


def _fetch() -> Fetch:
    """The SNS fetch (tests set ``SNS_FETCH``), remembering certificates it got."""
    given = current_app.config.get("SNS_FETCH")
    fetch: Fetch = given if callable(given) else fetch_https
    cache: dict[str, bytes] = current_app.extensions[CERTIFICATES]

    def cached(url: str) -> bytes:
        if not url.endswith(".pem"):
            return fetch(url)  # a subscription's confirmation: every time
        if url not in cache:
            cache[url] = fetch(url)
        return cache[url]

    return cached


def _body() -> bytes | None:
    """The body, or None when it is over the cap (even without a Content-Length)."""
    if request.content_length is not None and request.content_length > MAX_BODY_BYTES:
        return None
    body = request.stream.read(MAX_BODY_BYTES + 1)
    return None if len(body) > MAX_BODY_BYTES else body


@bp.post("/webhooks/bounces/<provider>")
def receive(provider: str) -> Answer:
    body = _body()
    if body is None:
        return {"error": "the body is too large"}, 413
    runtime = get_runtime()
    webhook = WebhookRequest(
        headers={name: request.headers[name] for name in PROOF_HEADERS if name in request.headers},
        body=body,
    )
    try:
        reports = read_webhook(
            provider, webhook, current_app.extensions[KEYS], runtime.site.verp, _fetch()
        )
    except NotEnabled:
        return {"error": "no such webhook"}, 404
    except NotFromProvider as error:
        log.warning("bounce webhook %s: refused (%s)", provider, error)
        return {"error": "forbidden"}, 403
    except BadWebhook as error:
        return {"error": str(error)}, 400
    session = get_session()
    outcomes: Counter[str] = Counter()
    for report in reports:
        outcome = record_report(session, report, provider, current_app.config["SOFT_BOUNCE_LIMIT"])
        outcomes[outcome] += 1
    session.commit()
    if reports:
        log.info("bounce webhook %s: %s", provider, dict(outcomes))
    return {"status": "ok"}, 200
