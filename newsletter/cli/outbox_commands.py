"""``newsletter outbox``: transactional mail waiting to go out, and the maildir it lands in."""

from __future__ import annotations

from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from newsletter.cli.tables import RUN_STATES, state_counts
from newsletter.mail.readable import maildir_messages, readable
from newsletter.mail.urls import parse_mail_url
from newsletter.models import DeliveryStatus
from newsletter.runtime import get_runtime
from newsletter.sending.engine import Outcome

__all__ = ["outbox"]

# A confirmation in one of these states may not reach the person: staff should look.
NOT_DONE = (DeliveryStatus.QUEUED, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)


@click.group()
def outbox() -> None:
    """Send waiting emails; read the maildir outbox."""


@outbox.command()
@with_appcontext
def flush() -> None:
    """Send every confirmation email still waiting (after the mail server was down, say).

    Exits 1 when something could not be sent, or may not have been (the mail server never
    answered); run it again later.
    """
    result = get_runtime().outbox().flush()
    counts = result.counts
    if result.outcome is not Outcome.COMPLETE:
        click.echo(result.message, err=True)
    click.echo(state_counts(counts, RUN_STATES, names={DeliveryStatus.QUEUED: "still waiting"}))
    if any(counts[state] for state in NOT_DONE):
        raise SystemExit(1)


@outbox.command()
@click.option(
    "--last",
    type=click.IntRange(min=1),
    default=1,
    show_default=True,
    help="How many of the newest messages to show (oldest of them first).",
)
@with_appcontext
def show(last: int) -> None:
    """Print the newest messages in the maildir outbox, decoded: the main headers and the
    plain text, with every link whole.

    An .eml file opened in a text editor shows quoted-printable, which cuts long lines (and
    links) with a trailing "=". Works when NEWSLETTER_MAIL_URL is a maildir:// (the default).
    """
    url = parse_mail_url(str(current_app.config["MAIL_URL"]))
    folder = url.path
    if folder is None:
        # Named by its scheme only: the setting may hold a password.
        raise click.ClickException(
            f"NEWSLETTER_MAIL_URL is a {url.scheme}:// address, not maildir://: mail goes "
            "straight out, and there is no outbox folder to show"
        )
    files = maildir_messages(folder, last)
    if not files:
        click.echo(f"No messages in the outbox {folder}.")
        return
    for number, path in enumerate(files, 1):
        click.echo(f"--- {_shown(path)} ({number} of {len(files)}) ---")
        try:
            click.echo(readable(path.read_bytes()), nl=False)
        except OSError as error:
            raise click.ClickException(f"cannot read {path}: {error.strerror}") from None


def _shown(path: Path) -> Path:
    """``path`` from the current folder when it is below it: shorter, and what to type."""
    try:
        return path.relative_to(Path.cwd())
    except ValueError:
        return path
