"""The ``newsletter`` console script: a FlaskGroup, so ``newsletter run`` serves the app."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup

from newsletter import ConfigError, create_app

__all__ = ["cli", "main"]


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as error:
        # One line naming the setting, not a traceback.
        raise click.ClickException(str(error)) from None


cli = FlaskGroup(
    create_app=_create_app,
    help="Newsletter signup and digest mailing: manage the database, articles, digests "
    "and subscribers, or serve the web app with `newsletter run`.",
)


def main() -> None:
    cli.main(prog_name="newsletter")
