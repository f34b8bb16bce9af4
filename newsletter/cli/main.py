"""The ``newsletter`` console script: a FlaskGroup, so ``newsletter run`` serves the app."""

from __future__ import annotations

import click
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo

from newsletter import ConfigError, create_app

__all__ = ["cli", "main"]


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as error:
        # One line naming the setting, not a traceback.
        raise click.ClickException(str(error)) from None


class NewsletterGroup(FlaskGroup):
    """FlaskGroup that reports a bad setting in one line in ``--help`` too."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        try:
            ctx.ensure_object(ScriptInfo).load_app()
        except click.ClickException as error:
            # FlaskGroup would print a traceback here; the built-in commands still list.
            click.secho(f"Error: {error.format_message()}\n", err=True, fg="red")
            return sorted(super(FlaskGroup, self).list_commands(ctx))
        return super().list_commands(ctx)


cli = NewsletterGroup(
    create_app=_create_app,
    help="Newsletter signup and digest mailing: manage the database, articles, digests "
    "and subscribers, or serve the web app with `newsletter run`.",
)


def main() -> None:
    cli.main(prog_name="newsletter")
