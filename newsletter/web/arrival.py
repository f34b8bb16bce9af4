"""Where a signup POST comes from, whether it may come from there, and how to answer it.

Our own form page carries Flask-WTF's CSRF token, bound to the session cookie. A signup box
on the organisation's pages cannot: those pages are another site, and a browser sends no
cookie of ours with their posts (third-party cookies are blocked, and the session cookie is
SameSite=Lax). What protects those posts instead is the ``Origin`` header, which a browser
always sets truthfully on a cross-site POST (else the ``Referer``'s origin):

- from a page of ``NEWSLETTER_EMBED_ORIGINS``: no cookie-bound token is needed;
- from our own origin: our own form's CSRF token, or the frame's signed form token
  (``newsletter.form_tokens``), which also tells how long the form was open;
- with neither header: only our own form, with its CSRF token (browsers always send
  ``Origin`` with a POST; this is a script or a very private browser using our page);
- anything else (``Origin: null``, an unlisted or malformed origin, a box without either
  header): ``403``, nothing stored, nothing sent, one log line.

The honeypot, the rate limits per client and per address and double opt-in apply to every
kind alike.
"""

from __future__ import annotations

import logging
import re
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, NoReturn

from flask import abort, current_app, request
from sqlalchemy.orm import Session

from newsletter.boxes import BoxStyle
from newsletter.form_tokens import FormTokens, InvalidFormToken
from newsletter.origins import origin_of, url_on
from newsletter.services.consent import Evidence, find_statement, statement_hash
from newsletter.site import Site

__all__ = ["Answer", "Arrival", "form_tokens", "judge"]

log = logging.getLogger(__name__)

BOX_TOKEN = "box_token"
POSTED_STYLES = {BoxStyle.HTML, BoxStyle.SCRIPT, BoxStyle.IFRAME}
_STATEMENT_HASH = re.compile(r"[0-9a-f]{64}")


class Answer(StrEnum):
    PAGE = "page"  # our own form page again, or a redirect (our form, the plain-HTML box)
    FRAME = "frame"  # the compact pages of the box in a frame
    JSON = "json"  # for /embed.js, which shows the answer inside the box


@dataclass(frozen=True)
class Arrival:
    """One signup POST: where it came from, and what follows from that."""

    answer: Answer
    needs_csrf: bool
    # Sent by the box in a frame, with its form token (``form_age`` is None when the token
    # is not valid).
    framed: bool
    box_style: BoxStyle | None
    source_url: str
    # The article's address, to carry through our own form page if the visitor must correct
    # something there; None when it is not on an allowed origin.
    box_source: str | None = None
    return_to: str | None = None
    statement: str | None = None
    form_age: float | None = None

    @property
    def form_meta(self) -> dict[str, Any]:
        """The form's settings: without a CSRF token when none is needed; otherwise as
        Flask-WTF's own settings say."""
        return {} if self.needs_csrf else {"csrf": False}

    @property
    def carried(self) -> dict[str, str]:
        """What a box posted that our own form page keeps, should the person have to
        correct something there: the box's style, the article's address, where to return
        to and the wording the box showed."""
        values = {
            "box_style": self.box_style if self.box_style in POSTED_STYLES else None,
            "source": self.box_source,
            "return": self.return_to,
            "statement": self.statement,
        }
        return {name: value for name, value in values.items() if value}

    @property
    def too_quick(self) -> bool:
        """Sent sooner after the frame's form was served than a person could fill it in."""
        minimum = float(current_app.config["SIGNUP_MIN_SECONDS"])
        return self.form_age is not None and self.form_age < minimum

    @property
    def expired(self) -> bool:
        """The frame's form token is not valid, or older than a form may be."""
        if not self.framed:
            return False
        limit = current_app.config.get("WTF_CSRF_TIME_LIMIT", 3600)
        return self.form_age is None or (limit is not None and self.form_age > float(limit))

    def evidence(self, method: str) -> Evidence:
        """Who signed up and from where, as far as the request tells."""
        return Evidence(
            method=method,
            ip=request.remote_addr,
            user_agent=request.user_agent.string or None,
            source_url=self.source_url,
            box_style=self.box_style,
        )

    def site_as_shown(self, session: Session, site: Site) -> Site:
        """``site`` with the consent wording the box showed the person.

        A box pasted into the organisation's pages shows the wording of the day it was
        printed, and names it by its hash; the proof must hold what the person read. A
        wording this database never stored (a box from another installation, or a forged
        post) leaves the current one.
        """
        if self.statement is None or self.statement == statement_hash(site.consent_statement):
            return site
        stored = find_statement(session, self.statement)
        if stored is None:
            log.warning(
                "a signup box shows a consent wording this database does not know; the current "
                "wording is recorded: print the box again with `newsletter embed`"
            )
            return site
        return replace(site, consent_statement=stored.text)


def form_tokens() -> FormTokens:
    config = current_app.config
    return FormTokens(config["SECRET_KEY"], config["SECRET_KEY_FALLBACKS"])


def _refuse(why: str) -> NoReturn:
    log.warning("signup refused (403), nothing stored: %s", why)
    abort(403)


def _shown(value: str) -> str:
    # Header values go into the log as Python literals: no line breaks, and cut short.
    return repr(value[:200])


def _allowed_origin(listed: tuple[str, ...], own: set[str | None]) -> str | None:
    """The origin the post says it comes from, when it may come from there; None when it
    says none but carries our own form's token. Anything else is refused with a 403."""
    claimed = request.headers.get("Origin")
    said = claimed if claimed is not None else request.referrer
    if said is None:
        if "csrf_token" not in request.form:
            _refuse("a post without Origin, Referer or our form's token")
        return None
    origin = origin_of(said)
    # A browser writes Origin in exactly one way; a Referer is a page's address.
    as_written = claimed is None or origin == claimed
    if origin is None or not as_written or (origin not in own and origin not in listed):
        header = "Origin" if claimed is not None else "Referer"
        _refuse(f"{header} {_shown(said)} is not in NEWSLETTER_EMBED_ORIGINS")
    return origin


def judge() -> Arrival:
    """Look at the request's origin; refuse it with a 403 unless it may post a signup."""
    config = current_app.config
    listed: tuple[str, ...] = config["EMBED_ORIGINS"]
    own = {origin_of(config["BASE_URL"]), origin_of(request.host_url)}
    origin = _allowed_origin(listed, own)
    claimed = request.headers.get("Origin")
    referrer = request.referrer

    from_box_site = origin in listed and origin not in own
    framed = not from_box_site and origin in own and BOX_TOKEN in request.form
    form_age = None
    if framed:
        try:
            form_age = form_tokens().age(request.form[BOX_TOKEN])
        except InvalidFormToken:
            form_age = None

    posted_style = request.form.get("box_style", "")
    box_style: BoxStyle | None = BoxStyle(posted_style) if posted_style in POSTED_STYLES else None
    if box_style is None and not from_box_site:
        box_style = BoxStyle.IFRAME if framed else BoxStyle.PAGE

    box_source = url_on(request.form.get("source", "").strip(), listed)
    fallback = claimed if from_box_site and claimed else request.url
    source_url = box_source or referrer or fallback

    statement = request.form.get("statement", "")
    wants_json = (
        request.accept_mimetypes.best_match(["text/html", "application/json"]) == "application/json"
    )
    answer = Answer.JSON if wants_json else Answer.FRAME if framed else Answer.PAGE
    return Arrival(
        answer=answer,
        needs_csrf=not (from_box_site or framed),
        framed=framed,
        box_style=box_style,
        source_url=source_url,
        box_source=box_source,
        return_to=url_on(request.form.get("return", "").strip(), listed),
        statement=statement if _STATEMENT_HASH.fullmatch(statement) else None,
        form_age=form_age,
    )
