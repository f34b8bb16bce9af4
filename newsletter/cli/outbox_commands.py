"""``newsletter outbox``: transactional mail waiting to go out."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from newsletter.models import DeliveryStatus
from newsletter.runtime import get_runtime
from newsletter.sending.engine import Outcome

__all__ = ["outbox"]


@click.group()
def outbox() -> None:
    """Confirmation emails waiting in the outbox."""


@outbox.command()
@with_appcontext
def flush() -> None:
    """Send every confirmation email still waiting (after the mail server was down, say).

    Exits 1 when something could not be sent; run it again later.
    """
    result = get_runtime().outbox().flush()
    counts = result.counts
    if result.outcome is not Outcome.COMPLETE:
        click.echo(result.message, err=True)
    click.echo(
        f"sent {counts[DeliveryStatus.SENT]}, failed {counts[DeliveryStatus.FAILED]}, "
        f"skipped {counts[DeliveryStatus.SKIPPED]}, unknown {counts[DeliveryStatus.UNKNOWN]}, "
        f"still waiting {counts[DeliveryStatus.QUEUED]}"
    )
    if counts[DeliveryStatus.QUEUED] or counts[DeliveryStatus.FAILED]:
        raise SystemExit(1)
