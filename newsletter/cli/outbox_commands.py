"""``newsletter outbox``: transactional mail waiting to go out."""

from __future__ import annotations

import click
from flask.cli import with_appcontext

from newsletter.models import DeliveryStatus
from newsletter.runtime import get_runtime
from newsletter.sending.engine import Outcome

__all__ = ["outbox"]

# A confirmation in one of these states may not reach the person: staff should look.
NOT_DONE = (DeliveryStatus.QUEUED, DeliveryStatus.FAILED, DeliveryStatus.UNKNOWN)


@click.group()
def outbox() -> None:
    """Confirmation emails waiting in the outbox."""


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
    click.echo(
        f"sent {counts[DeliveryStatus.SENT]}, failed {counts[DeliveryStatus.FAILED]}, "
        f"skipped {counts[DeliveryStatus.SKIPPED]}, unknown {counts[DeliveryStatus.UNKNOWN]}, "
        f"still waiting {counts[DeliveryStatus.QUEUED]}"
    )
    if any(counts[state] for state in NOT_DONE):
        raise SystemExit(1)
