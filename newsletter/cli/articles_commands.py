"""``newsletter articles``: import the website's feed and list what is stored."""

from __future__ import annotations

from ipaddress import ip_network

import click
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from newsletter.app_db import get_engine, get_session
from newsletter.cli.numbers import count, seconds
from newsletter.database_errors import explain
from newsletter.feeds import (
    DEFAULT_MAX_BYTES,
    DEFAULT_TIMEOUT,
    FeedError,
    ForbiddenFeedAddress,
    load_feed,
)
from newsletter.outbound import AddressPolicy, Network
from newsletter.services.articles import import_entries, list_articles

__all__ = ["articles", "database_problem"]

# A download that takes longer than an hour is not going to finish usefully.
MAX_TIMEOUT = 3600.0


def database_problem(error: SQLAlchemyError) -> click.ClickException:
    """One line for a database error, with the usual cure when the schema is missing."""
    return click.ClickException(explain(error, get_engine()))


@click.group()
def articles() -> None:
    """Import articles from the website's feed and list them."""


def _networks(
    _ctx: click.Context, param: click.Parameter, values: tuple[str, ...]
) -> tuple[Network, ...]:
    try:
        return tuple(ip_network(value.strip(), strict=False) for value in values)
    except ValueError as error:
        raise click.BadParameter(str(error), param=param) from None


@articles.command("import")
@click.argument("source")
@click.option(
    "--timeout",
    type=seconds(0.1, MAX_TIMEOUT),
    default=DEFAULT_TIMEOUT,
    show_default=True,
    help="Seconds allowed for downloading a feed URL.",
)
@click.option(
    "--max-bytes",
    type=count(),
    default=DEFAULT_MAX_BYTES,
    show_default=True,
    help="Largest feed accepted, in bytes.",
)
@click.option(
    "--allow-network",
    "allowed",
    metavar="NETWORK",
    multiple=True,
    callback=_networks,
    help="Also download from this private network or address, such as 10.1.0.0/16 for a "
    "website on your own network (repeatable). Addresses on this machine, private networks "
    "and link-local ones are refused otherwise, for SOURCE and every redirect.",
)
@with_appcontext
def import_feed(source: str, timeout: float, max_bytes: int, allowed: tuple[Network, ...]) -> None:
    """Import the articles of SOURCE: a feed file or an http(s) URL (RSS 2.0, Atom, JSON Feed).

    Importing again adds nothing twice and updates the articles whose content changed. A feed
    is imported completely or not at all; only SOURCE itself is ever downloaded, and only
    from a public address unless --allow-network says otherwise.
    """
    policy = AddressPolicy(allowed=allowed)
    try:
        feed = load_feed(source, timeout=timeout, max_bytes=max_bytes, policy=policy)
    except ForbiddenFeedAddress as error:
        hint = "--allow-network lets in a network of your own"
        raise click.ClickException(f"cannot import {source}: {error} ({hint})") from None
    except FeedError as error:
        raise click.ClickException(f"cannot import {source}: {error}") from None
    session = get_session()
    try:
        result = import_entries(session, feed.entries)
        session.commit()
    except SQLAlchemyError as error:
        session.rollback()
        raise database_problem(error) from None
    click.echo(
        f"Read {len(feed.entries)} articles from {feed.title!r}: {result.added} added, "
        f"{result.updated} updated, {result.unchanged} unchanged."
    )


@articles.command("list")
@click.option("--limit", type=count(), default=None, help="Show only the newest N articles.")
@with_appcontext
def list_command(limit: int | None) -> None:
    """List articles, newest first: id, publication date, the digests using it, title, and
    the feed's categories in brackets."""
    try:
        listing = list_articles(get_session(), limit)
    except SQLAlchemyError as error:
        raise database_problem(error) from None
    if not listing:
        click.echo("No articles yet; import some with `newsletter articles import SOURCE`.")
        return
    width = max(2, *(len(str(row.id)) for row in listing))
    click.echo(f"{'ID':>{width}}  DATE        DIGEST  TITLE")
    for row in listing:
        used = ",".join(str(digest_id) for digest_id in row.digest_ids) or "-"
        date = row.published_at.date().isoformat()
        tags = f"  [{', '.join(row.categories)}]" if row.categories else ""
        click.echo(f"{row.id:>{width}}  {date}  {used:<6}  {row.title}{tags}")
