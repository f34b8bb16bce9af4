"""``newsletter topics``: add, list, edit and remove what subscribers can choose to hear about."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import click
from flask.cli import with_appcontext
from sqlalchemy.orm import Session

from newsletter.app_db import get_session
from newsletter.cli.tables import format_table
from newsletter.services.errors import ServiceError
from newsletter.services.topics import (
    TopicInUse,
    add_topic,
    edit_topic,
    list_topics,
    remove_topic,
)
from newsletter.validation import InvalidValue

__all__ = ["topics"]

T = TypeVar("T")


@click.group()
def topics() -> None:
    """Topics subscribers can choose: each matches categories the website's feed gives
    articles. An article that matches no topic is general news, for everyone."""


def _committed(work: Callable[[Session], T]) -> T:
    """Run ``work`` and commit; a refused change is one line and changes nothing."""
    session = get_session()
    try:
        result = work(session)
    except TopicInUse:
        session.rollback()
        raise
    except (ServiceError, InvalidValue) as error:
        session.rollback()
        raise click.ClickException(str(error)) from None
    session.commit()
    return result


@topics.command("add")
@click.argument("slug")
@click.option("--name", required=True, help="The name subscribers see, such as 'North Korea'.")
@click.option(
    "--match",
    "matches",
    metavar="CATEGORY",
    multiple=True,
    help="A feed category that puts an article under this topic, in any case (repeatable).",
)
@click.option("--description", default="", help="One line telling subscribers what it covers.")
@with_appcontext
def add_command(slug: str, name: str, matches: tuple[str, ...], description: str) -> None:
    """Add the topic SLUG: 1 to 64 lower-case letters, digits and hyphens (north-korea)."""
    topic = _committed(lambda session: add_topic(session, slug, name, matches, description))
    click.echo(f"Added the topic {topic.slug} ({topic.name}){_matching(matches)}.")


def _matching(categories: tuple[str, ...] | list[str]) -> str:
    if not categories:
        return ", matching no category yet"
    return ", matching " + ", ".join(repr(category) for category in categories)


@topics.command("list")
@with_appcontext
def list_command() -> None:
    """Each topic with how many people hold it and the categories it matches."""
    listing = list_topics(get_session())
    if not listing:
        click.echo("No topics yet; add one with `newsletter topics add SLUG --name NAME`.")
        return
    rows = [
        (topic.slug, topic.name, topic.subscribers, ", ".join(topic.categories) or "-")
        for topic in listing
    ]
    for line in format_table(("slug", "name", "people", "categories"), rows):
        click.echo(line)


@topics.command("edit")
@click.argument("slug")
@click.option("--name", help="A new name.")
@click.option(
    "--match",
    "matches",
    metavar="CATEGORY",
    multiple=True,
    help="Match exactly these categories, replacing the ones it matched (repeatable).",
)
@click.option("--add-match", "add", metavar="CATEGORY", multiple=True, help="Also match this.")
@click.option(
    "--remove-match", "remove", metavar="CATEGORY", multiple=True, help="Stop matching this."
)
@click.option("--description", help="A new description ('' clears it).")
@with_appcontext
def edit_command(
    slug: str,
    name: str | None,
    matches: tuple[str, ...],
    add: tuple[str, ...],
    remove: tuple[str, ...],
    description: str | None,
) -> None:
    """Change the topic SLUG: its name, description or categories."""
    topic = _committed(
        lambda session: edit_topic(
            session,
            slug,
            name=name,
            matches=matches or None,
            add=add,
            remove=remove,
            description=description,
        )
    )
    categories = [match.category for match in topic.matches]
    click.echo(f"Changed the topic {topic.slug} ({topic.name}){_matching(categories)}.")


@topics.command("remove")
@click.argument("slug")
@click.option(
    "--yes",
    is_flag=True,
    help="Remove it even though people hold it: they are not told, and keep their other topics.",
)
@with_appcontext
def remove_command(slug: str, yes: bool) -> None:
    """Remove the topic SLUG. Refused while anyone holds it, unless --yes."""
    try:
        holders = _committed(lambda session: remove_topic(session, slug, force=yes))
    except TopicInUse as error:
        raise click.ClickException(
            f"{error}; add --yes to remove it anyway (they are not told, and keep their "
            "other topics)"
        ) from None
    held = f" (held by {holders:,}, who keep their other topics)" if holders else ""
    click.echo(f"Removed the topic {slug}{held}.")
