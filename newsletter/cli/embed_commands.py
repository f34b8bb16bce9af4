"""``newsletter embed``: the signup box to paste into the organisation's article pages."""

from __future__ import annotations

from urllib.parse import urlencode

import click
from flask import current_app, render_template
from flask.cli import with_appcontext

from newsletter.app_db import get_session
from newsletter.embed_script import script_url
from newsletter.origins import url_on
from newsletter.runtime import get_runtime
from newsletter.services.consent import statement_hash, statement_version
from newsletter.services.errors import ServiceError
from newsletter.services.topic_choices import QUESTION, offered_topics
from newsletter.services.topics import find_topic

__all__ = ["embed"]

# The frame's height before /embed.js fits it to the box (a box with an error or two).
FRAME_HEIGHT = 720


@click.command("embed")
@click.option(
    "--style",
    type=click.Choice(["html", "iframe"]),
    default="html",
    show_default=True,
    help="html: a plain form (an optional script sends it in place); iframe: the form in a frame.",
)
@click.option(
    "--topic",
    "topics",
    multiple=True,
    metavar="SLUG",
    help="Preselect this topic in the box, for a topic's pages; repeat for several.",
)
@click.option(
    "--return",
    "return_to",
    metavar="URL",
    help="After a signup from the html box, send the visitor to this page of the site "
    "(on NEWSLETTER_EMBED_ORIGINS) instead of our thanks page.",
)
@with_appcontext
def embed(style: str, topics: tuple[str, ...], return_to: str | None) -> None:
    """Print the signup box to paste into the site's article template.

    Only pages of NEWSLETTER_EMBED_ORIGINS may send it. Print it again after changing
    NEWSLETTER_CONSENT_STATEMENT, NEWSLETTER_ORGANISATION or the topics: the box shows the
    wording and the topics it was printed with.
    """
    config = current_app.config
    origins: tuple[str, ...] = config["EMBED_ORIGINS"]
    if return_to is not None and style != "html":
        raise click.ClickException("--return goes with --style html: the frame thanks in place")
    if return_to is not None and url_on(return_to, origins) is None:
        raise click.ClickException(
            f"--return: {return_to!r} is not an address on NEWSLETTER_EMBED_ORIGINS "
            f"({' '.join(origins) or 'empty'})"
        )
    if not origins:
        click.echo(
            "Warning: NEWSLETTER_EMBED_ORIGINS is empty, so every signup from this box will be "
            "refused; set it to the origins of the site's pages, such as https://www.example.org.",
            err=True,
        )
    site = get_runtime().site
    # The box names the wording it shows; storing it now keeps that name known to the proof.
    session = get_session()
    try:
        chosen = [find_topic(session, slug).slug for slug in topics]
    except ServiceError as error:
        raise click.ClickException(f"--topic: {error}") from None
    statement_version(session, site.consent_statement)
    session.commit()
    snippet = render_template(
        f"embed_{style}.html",
        organisation=site.organisation,
        consent_statement=site.consent_statement,
        statement=statement_hash(site.consent_statement),
        privacy_url=config["PRIVACY_URL"],
        base_url=site.base_url,
        script_url=script_url(site.base_url),
        return_to=return_to,
        height=FRAME_HEIGHT,
        topics=offered_topics(session),
        chosen=set(chosen),
        question=QUESTION,
        # The frame preselects the topics itself: its address names them.
        query=f"?{urlencode([('topic', slug) for slug in chosen])}" if chosen else "",
    )
    click.echo(snippet)
