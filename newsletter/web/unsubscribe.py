"""The unsubscribe link's pages: a button page, and the POST that mail providers send too.

RFC 8058 one-click POSTs come from the mail provider's servers, with no cookie, no CSRF token,
no Referer or Origin: the signed token in the URL is the whole proof, so this blueprint uses
no CSRF protection and no rate limit. A GET only shows the button, because link scanners
fetch every URL in a message.
"""

from __future__ import annotations

import logging

from flask import Blueprint, current_app, render_template, request
from werkzeug.wrappers import Response

from newsletter.app_db import get_session
from newsletter.logs import person
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.runtime import get_runtime
from newsletter.services.consent import Evidence
from newsletter.services.errors import LinkNoLongerValid
from newsletter.services.subscriptions import find_by_token
from newsletter.services.unsubscribe import unsubscribe
from newsletter.tokens import InvalidToken, Purpose, TokenData
from newsletter.web.link_problem import link_problem

__all__ = ["ONE_CLICK_METHOD", "PAGE_METHOD", "bp", "keep_private", "link_evidence", "mask_email"]

log = logging.getLogger(__name__)

bp = Blueprint("unsubscribe", __name__)

# How a withdrawal came in, as recorded in the consent log.
ONE_CLICK_METHOD = "one-click unsubscribe"
PAGE_METHOD = "unsubscribe page"

# One message for every bad link, so the page never tells whether an address is known.
NOT_VALID = (
    "This unsubscribe link is not valid. To stop our emails, use the link in the most recent "
    "email you received from us."
)
MASK = "•••"


def mask_email(email: str) -> str:
    """``jane@example.org`` as ``j•••@example.org``: enough to recognise, not to read."""
    local, at, domain = email.rpartition("@")
    if not at:
        return MASK
    return f"{local[:1]}{MASK}@{domain}"


def _read_token(token: str) -> TokenData:
    return get_runtime().site.tokens.read(Purpose.UNSUBSCRIBE, token)


def _page(template: str, subscriber: Subscriber, token: str) -> str:
    return render_template(
        template,
        organisation=get_runtime().site.organisation,
        masked_email=mask_email(subscriber.email),
        token=token,
    )


def _evidence() -> Evidence:
    one_click = request.form.get("List-Unsubscribe") == "One-Click"
    return link_evidence(ONE_CLICK_METHOD if one_click else PAGE_METHOD)


def link_evidence(method: str) -> Evidence:
    """Where a request through a person's signed link came from."""
    return Evidence(
        method=method,
        ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
        # The URL carries the person's token, a credential: it is not kept.
        source_url=None,
    )


@bp.after_request
def keep_private(response: Response) -> Response:
    # The token in the address must not leak to other pages as a Referer, nor be indexed.
    response.headers["Referrer-Policy"] = "no-referrer"
    response.headers["X-Robots-Tag"] = "noindex, nofollow"
    return response


@bp.get("/unsubscribe/<token>")
def confirm_page(token: str) -> Response | tuple[str, int] | str:
    """One button; opening the page changes nothing."""
    try:
        subscriber = find_by_token(get_session(), _read_token(token))
    except (InvalidToken, LinkNoLongerValid):
        return link_problem(NOT_VALID)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return _page("unsubscribed.html", subscriber, token)
    return _page("unsubscribe.html", subscriber, token)


@bp.post("/unsubscribe/<token>")
def leave(token: str) -> Response | tuple[str, int] | str:
    """The button, or a one-click POST: always ``200`` with a short page, never a redirect."""
    try:
        data = _read_token(token)
    except InvalidToken:
        return link_problem(NOT_VALID)
    session = get_session()
    evidence = _evidence()
    try:
        subscriber = unsubscribe(session, data, evidence)
    except LinkNoLongerValid:
        session.rollback()
        return link_problem(NOT_VALID)
    session.commit()
    who = person(subscriber.id, subscriber.email, current_app.config["LOG_ADDRESSES"])
    log.info("unsubscribe: %s is %s (%s)", who, subscriber.status, evidence.method)
    return _page("unsubscribed.html", subscriber, token)
