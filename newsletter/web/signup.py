"""The signup form, its thanks page, and the confirmation link's pages."""

from __future__ import annotations

import logging
import time

from flask import Blueprint, current_app, g, render_template, request
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from newsletter.app_db import get_engine, get_session
from newsletter.database_errors import explain
from newsletter.logs import person
from newsletter.models import FORM_SIGNUP, SubscriberStatus
from newsletter.runtime import get_runtime
from newsletter.services.confirmations import queue_confirmation
from newsletter.services.consent import Evidence
from newsletter.services.errors import LinkNoLongerValid
from newsletter.services.subscriptions import SignupDetails, confirm, find_by_token, sign_up
from newsletter.services.topic_choices import read_choice
from newsletter.tokens import ExpiredToken, InvalidToken, Purpose, TokenData
from newsletter.web import arrival
from newsletter.web.forms import ButtonForm, SignupForm
from newsletter.web.link_problem import link_problem
from newsletter.web.signup_pages import (
    DATABASE_FAILED,
    Page,
    accepted,
    form_again,
    fresh_form_page,
)

__all__ = ["bp", "web_evidence"]

log = logging.getLogger(__name__)

bp = Blueprint("signup", __name__)

FORM_EXPIRED = "This form expired; please send it again."
NOT_SAVED = "We could not save your signup just now. Please send the form again in a few minutes."


def web_evidence(method: str) -> Evidence:
    """Who did this and from where, as far as the request tells."""
    return Evidence(
        method=method,
        ip=request.remote_addr,
        user_agent=request.user_agent.string or None,
        source_url=request.referrer or request.url,
    )


def _who(subscriber_id: int, email: str) -> str:
    return person(subscriber_id, email, current_app.config["LOG_ADDRESSES"])


@bp.get("/")
@bp.get("/subscribe")
def form() -> Page:
    # A link from a topic's page may preselect it: /subscribe?topic=north-korea.
    return fresh_form_page(request.args.getlist("topic"))


@bp.post("/subscribe")
def subscribe() -> Page:
    started = time.monotonic()
    runtime = get_runtime()
    # Our own form, or a box on the organisation's pages; a 403 for anywhere else.
    came = arrival.judge()
    form = SignupForm(check_deliverability=runtime.site.check_deliverability, meta=came.form_meta)
    if form.is_bot or came.too_quick:
        why = "the hidden field was filled in" if form.is_bot else "sent too soon for a person"
        log.info("signup turned away: %s", why)
        return accepted(came, started)
    ticked = request.form.getlist("topics")
    if came.expired or not form.validate():
        expired = came.expired or form.csrf_failed
        return form_again(came, form, 400, FORM_EXPIRED if expired else None, ticked)
    details = SignupDetails(
        email=form.email.data, first_name=form.first_name.data, last_name=form.last_name.data
    )
    session = get_session()
    try:
        site = came.site_as_shown(session, runtime.site)
        choice = read_choice(session, ticked)
        outcome = sign_up(session, site, details, came.evidence(FORM_SIGNUP), choice)
        session.commit()
    except (OperationalError, PoolTimeout) as error:
        # The database is down: nothing was stored, so give the form back with what was typed.
        session.rollback()
        log.error("signup not stored, database unavailable: %s", explain(error, get_engine()))
        g.setdefault(DATABASE_FAILED, True)
        return form_again(came, form, 503, NOT_SAVED, ticked)
    log.info(
        "signup: %s is %s; %s",
        _who(outcome.subscriber_id, outcome.email),
        outcome.status,
        "confirmation email queued" if outcome.confirmation_id else "no email queued",
    )
    return accepted(came, started)


@bp.get("/subscribe/thanks")
def thanks() -> Page:
    return render_template("thanks.html", organisation=get_runtime().site.organisation)


def _read_confirm_token(token: str) -> TokenData:
    return get_runtime().site.tokens.read(Purpose.CONFIRM, token)


@bp.get("/confirm/<token>")
def confirm_page(token: str) -> Page:
    # Mail scanners fetch every link, so this page only shows a button; it changes nothing.
    try:
        data = _read_confirm_token(token)
        subscriber = find_by_token(get_session(), data)
    except ExpiredToken:
        return link_problem("This confirmation link has expired.", token)
    except (InvalidToken, LinkNoLongerValid):
        return link_problem("This confirmation link is not valid.")
    if subscriber.status == SubscriberStatus.ACTIVE:
        return render_template("confirmed.html", organisation=get_runtime().site.organisation)
    return render_template(
        "confirm.html", form=ButtonForm(), organisation=get_runtime().site.organisation
    )


@bp.post("/confirm/<token>")
def confirm_subscription(token: str) -> Page:
    form = ButtonForm()
    try:
        data = _read_confirm_token(token)
    except ExpiredToken:
        return link_problem("This confirmation link has expired.", token)
    except InvalidToken:
        return link_problem("This confirmation link is not valid.")
    site = get_runtime().site
    if not form.validate():
        page = render_template(
            "confirm.html", form=form, organisation=site.organisation, notice=FORM_EXPIRED
        )
        return page, 400
    session = get_session()
    try:
        subscriber = confirm(session, data, web_evidence("confirmation link"), site)
    except LinkNoLongerValid:
        session.rollback()
        return link_problem("This confirmation link is no longer valid.")
    session.commit()
    log.info("confirmation: %s is %s", _who(subscriber.id, subscriber.email), subscriber.status)
    return render_template("confirmed.html", organisation=site.organisation)


@bp.post("/confirm/<token>/renew")
def renew_confirmation(token: str) -> Page:
    """An expired link's page offers a fresh email; the answer is the same whatever happens."""
    form = ButtonForm()
    try:
        data = _read_confirm_token(token)
    except ExpiredToken as expired:
        data = expired.data
    except InvalidToken:
        return link_problem("This confirmation link is not valid.")
    if not form.validate():
        return link_problem(FORM_EXPIRED, token)
    runtime = get_runtime()
    session = get_session()
    try:
        subscriber = find_by_token(session, data)
    except LinkNoLongerValid:
        return link_problem("This confirmation link is not valid.")
    if subscriber.status == SubscriberStatus.PENDING:
        queue_confirmation(session, runtime.site, subscriber.id)
        session.commit()
    return render_template("thanks.html", organisation=runtime.site.organisation)
