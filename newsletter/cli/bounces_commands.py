"""``newsletter bounces``: read the bounce mailbox, and list the reports that came back."""

from __future__ import annotations

from datetime import datetime

import click
from flask import current_app
from flask.cli import with_appcontext

from newsletter.app_db import get_session
from newsletter.cli.dates import UtcDate
from newsletter.cli.tables import format_table, state_counts
from newsletter.cli.wording import counted
from newsletter.isotime import iso_utc
from newsletter.mail.bounce_mailbox import MailboxError, open_mailbox, parse_mailbox_url
from newsletter.models import BounceKind
from newsletter.runtime import get_runtime
from newsletter.services.bounce_mailbox import process_mailbox
from newsletter.services.bounces import list_reports

__all__ = ["bounces"]

KIND_NAMES: dict[str, str] = {
    BounceKind.HARD: "hard bounces",
    BounceKind.SOFT: "soft bounces",
    BounceKind.COMPLAINT: "complaints",
}


@click.group()
def bounces() -> None:
    """Bounce and complaint reports."""


@bounces.command()
@with_appcontext
def process() -> None:
    """Read the bounce mailbox (NEWSLETTER_BOUNCE_MAILBOX) once: act on each report and move
    it to the processed folder. Made to run from cron or a timer; two runs at once do not
    act on a message twice.

    A message that is no report this service can read stays where it is and is listed;
    nothing is ever deleted.
    """
    url = current_app.config["BOUNCE_MAILBOX"]
    if not url:
        raise click.ClickException(
            "NEWSLETTER_BOUNCE_MAILBOX is not set; set it to imaps://user:password@host/INBOX "
            "or maildir:///path (see docs/deliverability.md)"
        )
    runtime = get_runtime()
    try:
        mailbox = open_mailbox(url)
    except MailboxError as error:
        raise click.ClickException(str(error)) from None
    try:
        run = process_mailbox(
            runtime.sessions,
            mailbox,
            runtime.site.verp,
            current_app.config["SOFT_BOUNCE_LIMIT"],
        )
    except MailboxError as error:
        raise click.ClickException(f"{error} (what was handled before stays handled)") from None
    finally:
        mailbox.close()
    where = parse_mailbox_url(url)
    acted = state_counts(run.applied, KIND_NAMES, names=KIND_NAMES)
    click.echo(f"Handled {counted(run.moved, 'message')}, moved to {where.processed}: {acted}.")
    click.echo(
        f"Reports already handled before: {run.repeats}; about unknown addresses (ignored): "
        f"{run.unknown}; notices needing nothing: {run.notices}."
    )
    if run.unread:
        click.echo(
            f"Left in {where.shown}, not reports this service can read "
            f"({len(run.unread)}; look at them in a mail program):"
        )
        for unread in run.unread:
            click.echo(f"  {unread.name} {unread.summary} ({unread.why})")


@bounces.command("list")
@click.option(
    "--since",
    type=UtcDate(),
    default=None,
    help="Only reports that arrived on or after DATE (YYYY-MM-DD or YYYY-MM-DDTHH:MM, UTC "
    "unless an offset is given).",
)
@with_appcontext
def list_command(since: datetime | None) -> None:
    """List the bounce and complaint reports received, oldest first."""
    rows = list_reports(get_session(), since)
    if not rows:
        click.echo("No bounce or complaint reports" + (" since then." if since else "."))
        return
    table = [
        (iso_utc(row.at), row.kind, row.email, row.source, row.delivery_id, row.reason)
        for row in rows
    ]
    for line in format_table(("at", "kind", "email", "source", "delivery", "reason"), table):
        click.echo(line)
