"""The ``newsletter`` console script: a FlaskGroup, so ``newsletter run`` serves the app.

Whatever goes wrong before or around a command ends here as one ``Error:`` line: a bad
setting, an instance folder it cannot write, a database without tables or out of reach.
"""

from __future__ import annotations

from typing import Any

import click
from alembic.util import CommandError
from flask import Flask
from flask.cli import FlaskGroup, ScriptInfo
from sqlalchemy.exc import SQLAlchemyError

from newsletter import ConfigError, create_app
from newsletter.app_db import get_engine
from newsletter.database_errors import MISSING_SCHEMA, explain, schema_missing, schema_problem

__all__ = ["cli", "main"]

# Commands that work on a database without tables: they create or report the schema, serve
# the app, or read the maildir. Every other command needs the schema first.
WITHOUT_SCHEMA = {
    ("db",),
    ("run",),
    ("shell",),
    ("routes",),
    ("outbox", "show"),
    ("dkim", "generate"),
}
# FlaskGroup's options for choosing an app and loading a .env file: this command serves one
# app, configured by NEWSLETTER_* variables, and python-dotenv is not installed.
FLASK_APP_OPTIONS = {"app", "env_file"}


def _create_app() -> Flask:
    try:
        return create_app()
    except ConfigError as error:
        # One line naming the setting, not a traceback.
        raise click.ClickException(str(error)) from None
    except OSError as error:
        # The instance folder (database, outbox, generated key) cannot be written.
        where = f" {error.filename}" if error.filename else ""
        raise click.ClickException(
            f"cannot write{where}: {error.strerror or error}; the instance folder "
            "(NEWSLETTER_INSTANCE_PATH) must be writable"
        ) from None


class NewsletterGroup(FlaskGroup):
    """FlaskGroup with this service's own version, options and one-line errors."""

    def __init__(self, **extra: Any) -> None:
        super().__init__(
            create_app=_create_app, add_version_option=False, load_dotenv=False, **extra
        )
        self.params = [param for param in self.params if param.name not in FLASK_APP_OPTIONS]
        click.version_option(
            package_name="newsletter",
            prog_name="newsletter",
            message="%(prog)s %(version)s",
            help="Show the version of newsletter and exit.",
        )(self)

    def _load_plugin_commands(self) -> None:
        # Other packages' `flask` commands (Flask-Limiter's `limiter`, which needs an extra
        # this service does not install) are nothing a newsletter user can use.
        return None

    def parse_args(self, ctx: click.Context, args: list[str]) -> list[str]:
        # click.Group's parsing: FlaskGroup's reads the --app and --env-file options removed
        # above. Loading the app here stops every command on a bad setting, `run` too.
        rest = click.Group.parse_args(self, ctx, args)
        if not ctx.resilient_parsing:
            ctx.ensure_object(ScriptInfo).load_app()
        return rest

    def list_commands(self, ctx: click.Context) -> list[str]:
        # FlaskGroup would print a traceback and go on; a bad setting stops --help too.
        ctx.ensure_object(ScriptInfo).load_app()
        return super().list_commands(ctx)

    def resolve_command(
        self, ctx: click.Context, args: list[str]
    ) -> tuple[str | None, click.Command | None, list[str]]:
        name, command, rest = super().resolve_command(ctx, args)
        if name and not ctx.resilient_parsing and _needs_schema(ctx, command, name, rest):
            engine = get_engine(ctx.ensure_object(ScriptInfo).load_app())
            if schema_missing(engine):
                raise click.ClickException(MISSING_SCHEMA)
        return name, command, rest

    def invoke(self, ctx: click.Context) -> Any:
        # Every command's database errors end here, however deep the command: SQLAlchemy's
        # text of one runs to dozens of lines of traceback and SQL.
        try:
            return super().invoke(ctx)
        except SQLAlchemyError as error:
            engine = get_engine(ctx.ensure_object(ScriptInfo).load_app())
            raise click.ClickException(explain(error, engine)) from None
        except CommandError as error:
            # Alembic's: most often a schema that a newer version of newsletter made.
            engine = get_engine(ctx.ensure_object(ScriptInfo).load_app())
            problem = schema_problem(engine) or f"cannot migrate the database: {error}"
            raise click.ClickException(problem) from None
        finally:
            # Closing every connection lets SQLite fold its write-ahead log back into the
            # database file, instead of leaving it to the interpreter's exit, which may not.
            # The app is loaded (and cached) before any command runs: see parse_args.
            get_engine(ctx.ensure_object(ScriptInfo).load_app()).dispose()


def _needs_schema(
    ctx: click.Context, command: click.Command | None, name: str, args: list[str]
) -> bool:
    """Whether the command that ``name`` and ``args`` lead to works on the database's tables.

    Asking for help, or naming no command of a group, needs nothing.
    """
    path: tuple[str, ...] = (name,)
    while isinstance(command, click.Group) and args and not args[0].startswith("-"):
        command = command.get_command(ctx, args[0])
        path, args = (*path, args[0]), args[1:]
    if command is None or isinstance(command, click.Group):
        return False
    if any(path[:length] in WITHOUT_SCHEMA for length in range(1, len(path) + 1)):
        return False
    return not set(command.get_help_option_names(ctx)) & set(args)


cli = NewsletterGroup(
    help="Newsletter signup and digest mailing: manage the database, articles, digests "
    "and subscribers, or serve the web app with `newsletter run`.",
)


def main() -> None:
    cli.main(prog_name="newsletter")
