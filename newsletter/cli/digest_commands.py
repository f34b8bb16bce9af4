"""``newsletter digest``: compose a digest of new articles and preview it."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from newsletter.app_db import get_session
from newsletter.cli.articles_commands import database_problem
from newsletter.cli.dates import UtcDate
from newsletter.cli.notices import warn_about_postal_address
from newsletter.cli.numbers import DIGEST_ID, count, no_digest
from newsletter.cli.wording import counted
from newsletter.mail.digest import SAMPLE_RECIPIENT, PreparedDigest, prepare_digest
from newsletter.mail.transports import SendError
from newsletter.mail.wire import stable_message_id
from newsletter.people import Person
from newsletter.runtime import get_runtime
from newsletter.services.digests import (
    DEFAULT_MAX_ARTICLES,
    InvalidSubject,
    NothingNew,
    create_digest,
    get_digest,
)
from newsletter.services.errors import NotFound, ServiceError
from newsletter.services.privacy import find_subscriber
from newsletter.services.topics import find_topic, topic_ids_of
from newsletter.validation import InvalidValue, clean_email

__all__ = ["digest"]

TEST_PREFIX = "[TEST] "


@click.group()
def digest() -> None:
    """Compose digests of new articles, preview them and send them."""


@digest.command("create")
@click.option(
    "--since",
    type=UtcDate(),
    default=None,
    help="Take the articles published on or after DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM, "
    "UTC unless an offset is given) instead of those since the last digest.",
)
@click.option(
    "--subject",
    default=None,
    help="The email subject; by default the organisation and the top article's title.",
)
@click.option(
    "--max",
    "max_articles",
    type=count(),
    default=DEFAULT_MAX_ARTICLES,
    show_default=True,
    help="The most articles one digest holds (the newest are taken).",
)
@with_appcontext
def create(since: datetime | None, subject: str | None, max_articles: int) -> None:
    """Create a draft digest of the articles published since the last one; print its id.

    Articles already in a digest are never taken again. Exits 1 when nothing is new.
    """
    session = get_session()
    try:
        created = create_digest(
            session, get_runtime().site, since=since, subject=subject, limit=max_articles
        )
        session.commit()
    except NothingNew:
        session.rollback()
        when = f"on or after {since.isoformat()}" if since else "since the last digest"
        raise click.ClickException(
            f"nothing new: no article published {when} is waiting for a digest"
        ) from None
    except InvalidSubject as error:
        session.rollback()
        raise click.ClickException(str(error)) from None
    except SQLAlchemyError as error:
        session.rollback()
        raise database_problem(error) from None
    entries = created.entries
    click.echo(f"Created digest {created.id} (draft) with {counted(len(entries), 'article')}.")
    click.echo(f"Subject: {created.subject}")
    for entry in entries:
        article = entry.article
        click.echo(f"  {article.published_at.date().isoformat()}  {article.title}")
    click.echo(f"Preview it with `newsletter digest preview {created.id} --out digest.html`.")


def _prepared(digest_id: int) -> PreparedDigest:
    runtime = get_runtime()
    session = get_session()
    try:
        found = get_digest(session, digest_id)
        return prepare_digest(session, runtime.site, runtime.renderer, found)
    except NotFound:
        raise click.ClickException(no_digest(digest_id)) from None
    except SQLAlchemyError as error:
        raise database_problem(error) from None


def _reader(as_email: str | None, topic_slug: str | None) -> Person:
    """Whose version a preview shows: a sample reader who chose nothing (everything), the
    subscriber ``as_email`` with their topics, or a sample reader of one topic. Links are
    always the sample's, which match no one: a preview never carries a working link of a
    real person's."""
    if as_email is not None and topic_slug is not None:
        raise click.UsageError("give --as or --topic, not both")
    if as_email is None and topic_slug is None:
        return SAMPLE_RECIPIENT
    session = get_session()
    try:
        if topic_slug is not None:
            topic = find_topic(session, topic_slug)
            return replace(SAMPLE_RECIPIENT, topic_ids=(topic.id,))
        assert as_email is not None
        subscriber = find_subscriber(session, as_email)
        if subscriber is None:
            raise click.ClickException(f"--as: there is no subscriber {as_email}")
        return replace(
            SAMPLE_RECIPIENT,
            email=subscriber.email,
            first_name=subscriber.first_name,
            last_name=subscriber.last_name,
            topic_ids=topic_ids_of(session, subscriber.id),
        )
    except ServiceError as error:
        raise click.ClickException(f"--topic: {error}") from None
    except SQLAlchemyError as error:
        raise database_problem(error) from None


@digest.command("preview")
@click.argument("digest_id", metavar="ID", type=DIGEST_ID)
@click.option(
    "--to",
    "to_address",
    metavar="EMAIL",
    default=None,
    help="Send one test message to EMAIL (any address, not only subscribers); "
    "its subject starts with [TEST].",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write the HTML version, as a reader sees it, to FILE.",
)
@click.option(
    "--as",
    "as_email",
    metavar="EMAIL",
    default=None,
    help="Show the version subscriber EMAIL gets: the articles of their topics and general "
    "news, with their name.",
)
@click.option(
    "--topic",
    "topic_slug",
    metavar="SLUG",
    default=None,
    help="Show the version of someone who chose only topic SLUG.",
)
@with_appcontext
def preview(
    digest_id: int,
    to_address: str | None,
    out: Path | None,
    as_email: str | None,
    topic_slug: str | None,
) -> None:
    """Show digest ID as a subscriber would get it, addressed to a sample reader.

    With neither --to nor --out, print the plain-text version. Without --as or --topic it is
    the version of someone who chose no topic: every article.
    """
    site = get_runtime().site
    recipient = _reader(as_email, topic_slug)
    if to_address is not None:
        try:
            recipient = replace(recipient, email=clean_email(to_address))
        except InvalidValue as error:
            raise click.ClickException(f"--to: {error}") from None
    prepared = _prepared(digest_id)
    if prepared.version(recipient.topic_ids) is None:
        who = as_email if as_email is not None else f"a reader of topic {topic_slug}"
        raise click.ClickException(
            f"{who} gets no email of digest {digest_id}: nothing in it is in their topics"
        )
    warn_about_postal_address(site)
    if out is not None:
        try:
            out.write_text(prepared.html_for(recipient), encoding="utf-8")
        except OSError as error:
            raise click.ClickException(f"cannot write {out}: {error.strerror or error}") from None
        click.echo(f"Wrote the HTML version of digest {digest_id} to {out}.")
    if to_address is not None:
        _send_test(prepared, recipient)
    if out is None and to_address is None:
        click.echo(f"Subject: {prepared.subject_for(recipient)}\n")
        click.echo(prepared.text_for(recipient), nl=False)


def _send_test(prepared: PreparedDigest, recipient: Person) -> None:
    runtime = get_runtime()
    site = runtime.site
    # Each test message gets its own Message-ID: mail services drop a second message with an
    # ID they have already seen, so a re-sent preview would silently never arrive.
    message_id = stable_message_id(site, f"preview.{prepared.digest_id}", time.time_ns())
    subject = TEST_PREFIX + prepared.subject_for(recipient)
    message = prepared.outgoing_for(recipient, message_id, subject=subject)
    connection = runtime.transport.connect()
    try:
        connection.send(message.data, site.sender_address, [recipient.email])
    except SendError as error:
        raise click.ClickException(f"the test message was not sent: {error}") from None
    finally:
        connection.close()
    click.echo(f"Sent a test message of digest {prepared.digest_id} to {recipient.email}.")
