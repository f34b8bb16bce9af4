"""``GET /digests/<id>``: the public web version of a digest ("view in browser").

Only digests that are being sent or were sent are shown; a draft is a 404 like a missing one,
so nobody can read a digest before it goes out. The page is the same for everyone: it holds
no name, address or personal link.
"""

from __future__ import annotations

from flask import Blueprint, abort, make_response, render_template
from werkzeug.wrappers import Response

from newsletter.app_db import get_session
from newsletter.csp import Policy
from newsletter.db import MAX_ID
from newsletter.mail.digest import article_views
from newsletter.runtime import get_runtime
from newsletter.services.digests import get_published_digest
from newsletter.services.errors import NotFound
from newsletter.web.security import policy_with

__all__ = ["bp"]

bp = Blueprint("archive", __name__)

# Cached by browsers and proxies alike: the page is public and the same for every reader.
CACHE_CONTROL = "public, max-age=300"
# Article images may come from the website's host, wherever that is.
ARTICLE_IMAGES: Policy = {"img-src": ["'self'", "https:", "data:"]}


# An id past MAX_ID names no digest: a 404 from the route, never a failed query.
@bp.get(f"/digests/<int(max={MAX_ID}):digest_id>")
def digest_page(digest_id: int) -> Response:
    session = get_session()
    try:
        digest = get_published_digest(session, digest_id)
    except NotFound:
        abort(404)
    site = get_runtime().site
    sent = digest.sent_at or digest.send_started_at
    page = render_template(
        "digest_web.html",
        organisation=site.organisation,
        postal_address=site.postal_address,
        subject=digest.subject,
        sent_on=f"{sent.day} {sent:%B %Y}" if sent else None,
        sent_iso=sent.date().isoformat() if sent else None,
        articles=article_views(session, digest.id),
    )
    response = make_response(page)
    response.headers["Content-Security-Policy"] = policy_with(ARTICLE_IMAGES)
    response.headers["Cache-Control"] = CACHE_CONTROL
    return response
