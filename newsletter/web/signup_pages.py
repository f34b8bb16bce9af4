"""How the signup form is shown, and a signup answered, wherever the form was: our own page,
the box in a frame (``/embed``), or a box on the organisation's page (plain, or sent in place
by ``/embed.js``, which reads JSON)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable
from typing import Any

from flask import (
    current_app,
    g,
    jsonify,
    make_response,
    redirect,
    render_template,
    request,
    url_for,
)
from flask_wtf.csrf import generate_csrf
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from werkzeug.wrappers import Response

from newsletter.app_db import get_engine, get_reader
from newsletter.boxes import BoxStyle
from newsletter.database_errors import explain
from newsletter.runtime import get_runtime
from newsletter.services.topic_choices import QUESTION, OfferedTopic, offered_topics
from newsletter.web.arrival import BOX_TOKEN, Answer, Arrival, form_tokens
from newsletter.web.forms import SignupForm
from newsletter.web.security import page_policy

__all__ = [
    "CHECK_INBOX",
    "CHECK_INBOX_TITLE",
    "DATABASE_FAILED",
    "Page",
    "accepted",
    "form_again",
    "frame_page",
    "fresh_form_page",
    "signup_page",
]

CHECK_INBOX_TITLE = "Check your inbox"
CHECK_INBOX = (
    "Thank you. If this address is new to us, we have sent it an email with a link to confirm "
    "your subscription. The link works for 7 days."
)
CORRECT_FIELDS = "Please correct the fields marked below."

Page = Response | tuple[str, int] | str
# Set on ``g`` by a view whose database work failed: the form is shown without asking again.
DATABASE_FAILED = "signup_database_failed"

log = logging.getLogger(__name__)


def _topics() -> tuple[OfferedTopic, ...]:
    """The topics to offer; none when the database cannot say, so the form still shows (and
    the topics ticked go along hidden, so that sending it again loses nothing)."""
    if g.get(DATABASE_FAILED):
        return ()  # the failure is logged already, by the view that met it
    session = get_reader()
    try:
        return offered_topics(session)
    except (OperationalError, PoolTimeout) as error:
        session.rollback()
        log.error(
            "form shown without topics, database unavailable: %s", explain(error, get_engine())
        )
        return ()


def _render(
    template: str,
    form: SignupForm,
    notice: str | None,
    chosen: Iterable[str],
    topics: tuple[OfferedTopic, ...] | None = None,
    **extra: Any,
) -> str:
    site = get_runtime().site
    topics = _topics() if topics is None else topics
    return render_template(
        template,
        form=form,
        organisation=site.organisation,
        consent_statement=site.consent_statement,
        notice=notice,
        topics=topics,
        # Without topics on show, only what a form that failed to save carries goes along.
        chosen=set(chosen) if topics or g.get(DATABASE_FAILED) else set(),
        question=QUESTION,
        **extra,
    )


def signup_page(
    form: SignupForm,
    status: int = 200,
    notice: str | None = None,
    carried: dict[str, str] | None = None,
    chosen: Iterable[str] = (),
) -> tuple[str, int]:
    """Our own form page; ``carried`` holds what a box posted that must go along again, and
    ``chosen`` the slugs of the topics ticked."""
    page = _render(
        "signup.html",
        form,
        notice,
        chosen,
        carried=carried or {},
        # A box's post needed no token, so its form has none; the page needs one all the same.
        csrf_token=generate_csrf() if not form.meta.csrf else None,
    )
    return page, status


# A first visit's form page, cut around its CSRF token, per (script root, topics offered,
# topics preselected); at most this many kept, so a stream of made-up ``?topic=`` values
# cannot make it grow.
FRESH_PAGES = "newsletter.fresh_form_pages"
MOST_FRESH_PAGES = 64


def fresh_form_page(chosen: Iterable[str]) -> tuple[str, int]:
    """Our own form page as a first visit sees it: nothing typed, no message.

    Only the CSRF token differs from one visitor to the next, so the page is rendered once
    (for each set of topics on offer, which is read every time) and the token put in; the
    template's work was a quarter of the form page's.
    """
    topics = _topics()
    offered = {topic.slug for topic in topics}
    preselected = frozenset(slug for slug in chosen if slug in offered)
    key = (request.script_root, topics, preselected)
    pages: dict[Any, tuple[str, str]] = current_app.extensions.setdefault(FRESH_PAGES, {})
    token = generate_csrf()
    cut = pages.get(key)
    if cut is None:
        page = _render(
            "signup.html", SignupForm(), None, preselected, topics, carried={}, csrf_token=None
        )
        before, found, after = page.partition(token)
        if not found or token in after:
            return page, 200
        if len(pages) >= MOST_FRESH_PAGES:
            pages.clear()
        cut = pages[key] = (before, after)
    return cut[0] + token + cut[1], 200


def frame_page(
    form: SignupForm,
    status: int = 200,
    notice: str | None = None,
    source: str | None = None,
    chosen: Iterable[str] = (),
) -> Response:
    """The box for a frame: a compact form with a fresh form token, and no cookie."""
    hidden = {
        BOX_TOKEN: form_tokens().make(),
        "box_style": BoxStyle.IFRAME.value,
        **({"source": source} if source else {}),
    }
    return framed(make_response(_render("embed.html", form, notice, chosen, hidden=hidden), status))


def framed(response: Response) -> Response:
    """The frame's pages run one script of ours: it tells the page around them their height."""
    response.headers["Content-Security-Policy"] = page_policy(scripts=True)
    return response


def form_again(
    arrival: Arrival,
    form: SignupForm,
    status: int,
    notice: str | None = None,
    chosen: Iterable[str] = (),
) -> Page:
    """The form with its messages and every value typed and ticked, where the person was."""
    if arrival.answer is Answer.JSON:
        errors = {name: problems[0] for name, problems in form.errors.items() if problems}
        errors.pop("csrf_token", None)
        body = {"ok": False, "message": notice or CORRECT_FIELDS, "errors": errors}
        return make_response(jsonify(body), status)
    if arrival.answer is Answer.FRAME:
        return frame_page(form, status, notice, arrival.box_source, chosen)
    return signup_page(form, status, notice, arrival.carried, chosen)


def accepted(arrival: Arrival, started: float) -> Response:
    """The answer every accepted signup gets, never before ``SIGNUP_MIN_SECONDS``.

    A known address takes less work than a new one; answering after the same minimum time
    keeps the response time from telling who is subscribed (or that the honeypot was noticed).
    """
    remaining = started + current_app.config["SIGNUP_MIN_SECONDS"] - time.monotonic()
    if remaining > 0:
        time.sleep(remaining)
    if arrival.answer is Answer.JSON:
        return jsonify({"ok": True, "title": CHECK_INBOX_TITLE, "message": CHECK_INBOX})
    if arrival.answer is Answer.FRAME:
        return redirect(url_for("embed.thanks"), 303)
    # Back to the organisation's page only when the box named one on an allowed origin.
    return redirect(arrival.return_to or url_for("signup.thanks"), 303)
