"""``newsletter db``: create and migrate the schema."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from newsletter import migrate
from newsletter.app_db import get_engine

__all__ = ["db"]


@click.group()
def db() -> None:
    """Create or migrate the database schema."""


@db.command()
@with_appcontext
def upgrade() -> None:
    """Create the schema or bring it up to date; does nothing when it is current."""
    engine = get_engine()
    before = migrate.current_revision(engine)
    migrate.upgrade(engine)
    after = migrate.current_revision(engine)
    if before == after:
        click.echo(f"Database is up to date (revision {after}).")
    else:
        click.echo(f"Database upgraded from {before or 'empty'} to {after}.")


@db.command()
@with_appcontext
def current() -> None:
    """Print the schema's revision and whether it is the newest."""
    engine = get_engine()
    revision = migrate.current_revision(engine)
    head = migrate.head_revision(engine)
    state = "up to date" if revision == head else f"behind (newest is {head})"
    click.echo(f"{revision or 'empty'}: {state}")
