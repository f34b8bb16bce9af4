"""The preferences page a link in every email opens: topics, name, leaving, the person's data.

The signed token in the address says whose page it is; nothing else on the page names them
beyond what they can already see in their inbox. Opening it changes nothing (mail scanners
fetch every link); the forms on it carry the usual CSRF token.
"""

from __future__ import annotations

import json
import logging

from flask import Blueprint, current_app, render_template, request
from werkzeug.wrappers import Response

from newsletter.app_db import get_session
from newsletter.logs import person
from newsletter.models import Subscriber, SubscriberStatus
from newsletter.runtime import get_runtime
from newsletter.schedule import RHYTHM_LABELS, Rhythm, ScheduleError, parse_rhythm
from newsletter.services.errors import LinkNoLongerValid
from newsletter.services.preferences import Change, NameChange, held_topics, save_preferences
from newsletter.services.privacy import person_record
from newsletter.services.subscriptions import find_by_token
from newsletter.services.topic_choices import QUESTION, offered_topics, read_choice
from newsletter.services.unsubscribe import unsubscribe
from newsletter.tokens import InvalidToken, Purpose, TokenData
from newsletter.web.forms import ButtonForm, PreferencesForm
from newsletter.web.link_problem import link_problem
from newsletter.web.unsubscribe import keep_private, link_evidence, mask_email

__all__ = ["METHOD", "NOT_VALID", "bp"]

log = logging.getLogger(__name__)

bp = Blueprint("preferences", __name__)
# The token in the address must not leak to other pages as a Referer, nor be indexed.
bp.after_request(keep_private)

# How a change came in, as recorded in the consent log.
METHOD = "preferences page"
# One message for every bad link, so the page never tells whether an address is known.
NOT_VALID = (
    "This preferences link is not valid. Use the “Your preferences” link in the most recent "
    "email you received from us."
)
FORM_EXPIRED = "This page expired; please send it again."
Page = Response | tuple[str, int] | str


def _read(token: str) -> TokenData:
    return get_runtime().site.tokens.read(Purpose.PREFERENCES, token)


def _page(
    subscriber: Subscriber,
    token: str,
    form: PreferencesForm,
    chosen: tuple[str, ...],
    change: Change | None = None,
    notice: str | None = None,
    rhythm: str | None = None,
) -> str:
    session = get_session()
    topics = offered_topics(session)
    names = {topic.slug: topic.name for topic in topics}
    return render_template(
        "preferences.html",
        organisation=get_runtime().site.organisation,
        masked_email=mask_email(subscriber.email),
        token=token,
        form=form,
        button=ButtonForm(),
        topics=topics,
        chosen=chosen,
        question=QUESTION,
        change=change,
        topic_name=lambda slug: names.get(slug, slug),
        rhythms=RHYTHM_LABELS,
        rhythm=rhythm or subscriber.rhythm or get_runtime().site.default_rhythm,
        notice=notice,
        to_correct=[name for name in ("first_name", "last_name") if form[name].errors],
    )


def _rhythm(value: str | None) -> Rhythm | None:
    """The "how often" chosen; None when the post has none, or one the page never offers
    (ignored, like a topic that does not exist)."""
    if value is None:
        return None
    try:
        return parse_rhythm(value)
    except ScheduleError:
        log.info("preferences: a post named a rhythm that does not exist, ignored")
        return None


def _subscriber(token: str) -> tuple[TokenData, Subscriber]:
    data = _read(token)
    return data, find_by_token(get_session(), data)


@bp.get("/preferences/<token>")
def show(token: str) -> Page:
    """The page as things stand; opening it changes nothing."""
    try:
        _, subscriber = _subscriber(token)
    except (InvalidToken, LinkNoLongerValid):
        return link_problem(NOT_VALID)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return _left(subscriber)
    form = PreferencesForm(
        data={"first_name": subscriber.first_name, "last_name": subscriber.last_name}
    )
    return _page(subscriber, token, form, held_topics(get_session(), subscriber.id))


@bp.post("/preferences/<token>")
def save(token: str) -> Page:
    """Save topics and name; the page again, saying what changed."""
    try:
        data, subscriber = _subscriber(token)
    except (InvalidToken, LinkNoLongerValid):
        return link_problem(NOT_VALID)
    if subscriber.status == SubscriberStatus.UNSUBSCRIBED:
        return _left(subscriber)
    session = get_session()
    form = PreferencesForm()
    ticked = tuple(request.form.getlist("topics"))
    rhythm = _rhythm(request.form.get("rhythm"))
    if not form.validate():
        notice = FORM_EXPIRED if form.csrf_failed else None
        chosen = rhythm.value if rhythm else None
        return _page(subscriber, token, form, ticked, notice=notice, rhythm=chosen), 400
    choice = read_choice(session, ticked)
    try:
        subscriber, change = save_preferences(
            session,
            data,
            NameChange(form.first_name.data, form.last_name.data),
            choice,
            link_evidence(METHOD),
            rhythm,
            get_runtime().site.default_rhythm,
        )
    except LinkNoLongerValid:
        session.rollback()
        return link_problem(NOT_VALID)
    session.commit()
    if change.anything:
        log.info("preferences: %s changed theirs", _who(subscriber))
    return _page(subscriber, token, form, tuple(t.slug for t in choice.chosen), change)


@bp.post("/preferences/<token>/leave")
def leave(token: str) -> Page:
    """ "Leave everything": the unsubscribe link's work, behind this page's CSRF check."""
    try:
        data = _read(token)
    except InvalidToken:
        return link_problem(NOT_VALID)
    if not ButtonForm().validate():
        return link_problem(FORM_EXPIRED)
    session = get_session()
    try:
        subscriber = unsubscribe(session, data, link_evidence(METHOD))
    except LinkNoLongerValid:
        session.rollback()
        return link_problem(NOT_VALID)
    session.commit()
    log.info("unsubscribe: %s is %s (%s)", _who(subscriber), subscriber.status, METHOD)
    return _left(subscriber)


@bp.post("/preferences/<token>/data")
def download(token: str) -> Page:
    """Everything held about the person, as ``subscribers show --json`` prints it."""
    try:
        _, subscriber = _subscriber(token)
    except (InvalidToken, LinkNoLongerValid):
        return link_problem(NOT_VALID)
    if not ButtonForm().validate():
        return link_problem(FORM_EXPIRED)
    record = person_record(get_session(), subscriber)
    body = json.dumps(record, ensure_ascii=False, indent=2) + "\n"
    return Response(
        body,
        mimetype="application/json",
        headers={
            "Content-Disposition": 'attachment; filename="my-data.json"',
            "Cache-Control": "no-store",
        },
    )


def _left(subscriber: Subscriber) -> str:
    return render_template(
        "unsubscribed.html",
        organisation=get_runtime().site.organisation,
        masked_email=mask_email(subscriber.email),
    )


def _who(subscriber: Subscriber) -> str:
    return person(subscriber.id, subscriber.email, current_app.config["LOG_ADDRESSES"])
