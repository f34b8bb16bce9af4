"""The signup box on the organisation's own pages: ``GET /embed`` (the box for a frame), its
thanks page, ``GET /embed.js`` (the box's optional script) and the CORS answers that let
that script post from the listed origins."""

from __future__ import annotations

from flask import Blueprint, Flask, current_app, render_template, request
from werkzeug.wrappers import Response

from newsletter.embed_script import script as embed_script
from newsletter.origins import url_on
from newsletter.runtime import get_runtime
from newsletter.web.forms import SignupForm
from newsletter.web.signup_pages import CHECK_INBOX, CHECK_INBOX_TITLE, frame_page, framed

__all__ = ["bp", "init_app"]

bp = Blueprint("embed", __name__)

# The versioned address never changes content; any other address may, soon.
CACHE_VERSIONED = "public, max-age=31536000, immutable"
CACHE_UNVERSIONED = "public, max-age=300"
PREFLIGHT_MAX_AGE = "600"


@bp.get("/embed")
def box() -> Response:
    # The frame's page is the article (when the frame's referrerpolicy lets the browser say
    # so): it becomes the consent's source, if it is on an allowed origin.
    source = url_on(request.referrer, current_app.config["EMBED_ORIGINS"])
    # A frame printed for a topic's pages (``newsletter embed --topic``) preselects it.
    chosen = request.args.getlist("topic")
    return frame_page(SignupForm(meta={"csrf": False}), source=source, chosen=chosen)


@bp.get("/embed/thanks")
def thanks() -> Response:
    page = render_template(
        "embed_thanks.html",
        organisation=get_runtime().site.organisation,
        title=CHECK_INBOX_TITLE,
        message=CHECK_INBOX,
    )
    return framed(current_app.make_response(page))


@bp.get("/embed.js")
def script() -> Response:
    body, version = embed_script()
    response = current_app.response_class(body, mimetype="text/javascript")
    response.headers["Cache-Control"] = (
        CACHE_VERSIONED if request.args.get("v") == version else CACHE_UNVERSIONED
    )
    # Pages that isolate themselves (Cross-Origin-Embedder-Policy) may load it too.
    response.headers["Cross-Origin-Resource-Policy"] = "cross-origin"
    response.set_etag(version)
    return response.make_conditional(request)


def init_app(app: Flask) -> None:
    listed = set(app.config["EMBED_ORIGINS"])

    @app.after_request
    def _cors(response: Response) -> Response:
        """Let /embed.js on a listed origin send the box and read the answer; nobody else.

        No credentials: the box needs no cookie. A preflight from an unlisted origin gets no
        CORS headers, so the browser sends nothing.
        """
        if request.url_rule is None or request.url_rule.rule != "/subscribe":
            return response
        response.vary.add("Origin")
        # Browsers write an origin in one way only: it must be on the list as it stands.
        claimed = request.headers.get("Origin")
        if claimed is None or claimed not in listed:
            return response
        response.headers["Access-Control-Allow-Origin"] = claimed
        if request.method == "OPTIONS":
            response.headers["Access-Control-Allow-Methods"] = "POST"
            response.headers["Access-Control-Allow-Headers"] = "Accept, Content-Type"
            response.headers["Access-Control-Max-Age"] = PREFLIGHT_MAX_AGE
        return response
