"""``newsletter digest send`` and ``newsletter digest status``."""

from __future__ import annotations

import json
import logging
import signal
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from types import FrameType

import click
from flask import current_app
from flask.cli import with_appcontext

from newsletter.cli.auto_status import print_automation_status
from newsletter.cli.notices import warn_about_postal_address
from newsletter.cli.numbers import DIGEST_ID, no_digest, per_second
from newsletter.cli.tables import RUN_STATES, state_counts
from newsletter.models import DeliveryStatus
from newsletter.runtime import Runtime, get_runtime
from newsletter.sending.engine import Sender, SendOptions
from newsletter.services.automation import load_send
from newsletter.services.digest_sending import DigestSend, Finished, Queued, digest_status
from newsletter.services.digests import get_digest
from newsletter.services.errors import NotFound

__all__ = [
    "MAX_ERRORS_OPTION",
    "RATE_OPTION",
    "WORKERS_OPTION",
    "deliver",
    "send",
    "status",
    "warn_about_settings",
]

log = logging.getLogger(__name__)


def _digest_send(runtime: Runtime, digest_id: int) -> DigestSend:
    try:
        return load_send(runtime, digest_id)
    except NotFound:
        raise click.ClickException(no_digest(digest_id)) from None


def warn_about_settings(runtime: Runtime) -> None:
    site = runtime.site
    if not site.base_url.startswith("https://"):
        click.echo(
            f"Warning: NEWSLETTER_BASE_URL is {site.base_url}; RFC 8058 one-click unsubscribe "
            "needs an https:// address, and large mailbox providers may reject the mail.",
            err=True,
        )
    warn_about_postal_address(site)


@contextmanager
def _ctrl_c_stops(sender: Sender) -> Iterator[None]:
    """The first Ctrl-C stops claiming and lets messages in flight finish; a second one
    interrupts at once."""
    previous = signal.getsignal(signal.SIGINT)

    def handle(_signum: int, _frame: FrameType | None) -> None:
        click.echo("\nStopping: finishing the messages in flight (Ctrl-C again to abort)", err=True)
        signal.signal(signal.SIGINT, signal.default_int_handler)
        sender.interrupt()

    signal.signal(signal.SIGINT, handle)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


@contextmanager
def _progress(sender: Sender, total: int) -> Iterator[None]:
    """A progress bar on a terminal: sent, failed, rate and time left."""
    if not sys.stdout.isatty() or total == 0:
        yield
        return
    done = threading.Event()
    started = time.monotonic()

    def label(_item: object) -> str:
        counts = sender.counts
        elapsed = max(time.monotonic() - started, 1e-6)
        return (
            f"sent {counts[DeliveryStatus.SENT]}  failed {counts[DeliveryStatus.FAILED]}  "
            f"{counts[DeliveryStatus.SENT] / elapsed:.0f} msg/s"
        )

    def follow() -> None:
        with click.progressbar(
            length=total, label="Sending", item_show_func=label, show_eta=True, show_pos=True
        ) as bar:
            seen = 0
            while not done.wait(0.5):
                finished = sum(sender.counts.values())
                bar.update(finished - seen)
                seen = finished
            bar.update(sum(sender.counts.values()) - seen)

    thread = threading.Thread(target=follow, name="progress", daemon=True)
    thread.start()
    try:
        yield
    finally:
        done.set()
        thread.join(timeout=2)


def _summary(finished: Finished) -> str:
    """What this run did."""
    result = finished.result
    counts = {
        **result.counts,
        DeliveryStatus.SKIPPED: finished.skipped,
        DeliveryStatus.QUEUED: finished.still_queued,
    }
    return f"{state_counts(counts, RUN_STATES)} in {result.seconds:.1f} s ({result.rate:.1f} msg/s)"


def _ending(digest_id: int, finished: bool, unknown: int) -> str | None:
    """The last line: "sent" only when every message is known to have been accepted."""
    if unknown:
        count = f"{unknown} delivery has" if unknown == 1 else f"{unknown} deliveries have"
        lead = f"Digest {digest_id} is finished, but {count}" if finished else count
        return (
            f"{lead} an unknown outcome: the message went out but no answer from the mail "
            f"server was recorded, so it may or may not have arrived. `newsletter digest status "
            f"{digest_id}` shows them; --resend-unknown sends them again (some people may "
            "get the digest twice)."
        )
    if finished:
        return f"Digest {digest_id} is sent."
    return None


def _at_a_terminal() -> bool:
    return sys.stdout.isatty() and sys.stderr.isatty()


# The sending options `digest send` and `digest auto` share.
WORKERS_OPTION = click.option(
    "--workers",
    default=4,
    show_default=True,
    type=click.IntRange(1, 64),
    help="Connections to the mail server, each with its own sending thread. Providers cap "
    "them: Postmark asks for at most 10 at a time from one address, others refuse more with "
    "421; Amazon SES caps messages per second instead (see --rate). A connection sends one "
    "message per network round trip when the server offers PIPELINING and CHUNKING.",
)
RATE_OPTION = click.option(
    "--rate",
    type=per_second(0.01),
    default=None,
    help="At most this many messages per second in all (default: unlimited).",
)
BATCH_OPTION = click.option(
    "--batch",
    default=100,
    show_default=True,
    type=click.IntRange(1, 1000),
    help="Deliveries a worker claims at a time.",
)
MAX_ERRORS_OPTION = click.option(
    "--max-errors",
    default=10,
    show_default=True,
    type=click.IntRange(1),
    help="Stop after this many errors of the mail server in a row (down, login refused, "
    "no answer in time); the rest stay queued for the next run.",
)


@click.command("send")
@click.argument("digest_id", type=DIGEST_ID)
@WORKERS_OPTION
@RATE_OPTION
@BATCH_OPTION
@MAX_ERRORS_OPTION
@click.option(
    "--resend-unknown",
    is_flag=True,
    help="Also send again the messages whose outcome is unknown (they may arrive twice).",
)
@click.option(
    "--dry-run",
    is_flag=True,
    help="Render every message and report the counts; send nothing, change nothing.",
)
@with_appcontext
def send(
    digest_id: int,
    workers: int,
    rate: float | None,
    batch: int,
    max_errors: int,
    resend_unknown: bool,
    dry_run: bool,
) -> None:
    """Send digest DIGEST_ID to every active subscriber.

    The first run queues everyone active at that moment; people who join later are not part
    of this digest. Run the command again after a crash, a kill or Ctrl-C and it continues
    where it stopped: nobody gets the digest twice and nobody queued is skipped. Several runs
    at once (on several machines, with PostgreSQL) share the work.

    Exit status: 0 when every delivery is final (sent, failed, skipped or unknown), 2 when
    stopped by --max-errors (the mail server failing or not answering), 130 on Ctrl-C.
    """
    runtime = get_runtime()
    sending = _digest_send(runtime, digest_id)
    warn_about_settings(runtime)
    if dry_run:
        report = sending.dry_run()
        click.echo(
            f"dry run: rendered {report.messages} messages ({report.bytes / 1e6:.1f} MB) in "
            f"{report.seconds:.1f} s; nothing was sent or changed"
        )
        if report.skipped:
            click.echo(
                f"{report.skipped} would get no email: nothing in the digest is in their topics"
            )
        if report.unbuilt:
            click.echo(
                f"{report.unbuilt} could not be built and would fail "
                f"(the first: {report.first_problem})"
            )
        return
    queued = sending.queue(resend_unknown)
    if queued.queued_now is not None:
        click.echo(
            f"Queued digest {digest_id} for {queued.queued_now} subscribers "
            f"in {queued.seconds:.1f} s."
        )
    if queued.requeued:
        click.echo(f"Sending again {queued.requeued} messages whose outcome was unknown.")
    if queued.queued_now is None and queued.open:
        click.echo(f"Continuing digest {digest_id}: {queued.open} deliveries still to go.")
    options = SendOptions(
        workers=workers,
        batch=batch,
        rate=rate,
        max_errors=max_errors,
        lease=timedelta(seconds=current_app.config["SEND_LEASE"]),
    )
    raise SystemExit(deliver(sending, queued, options))


def deliver(sending: DigestSend, queued: Queued, options: SendOptions) -> int:
    """Run the sender of a queued digest with its progress bar and Ctrl-C handling, print
    the summary and the last line; return the exit status."""
    digest_id = sending.digest.id
    sender = sending.sender(options, notice=lambda text: click.echo(text, err=True))
    with _ctrl_c_stops(sender), _progress(sender, queued.open):
        result = sender.run()
    finished = sending.finish(result, queued)
    if result.message:
        click.echo(result.message, err=True)
    summary = _summary(finished)
    click.echo(summary)
    if not _at_a_terminal():
        # Cron and timer runs: the log keeps the figures with a time, the digest and the exit
        # status. A person at a terminal has just read them once; twice is noise.
        log.info("send summary: digest %s: %s; exit %s", digest_id, summary, result.outcome.value)
    ending = _ending(digest_id, finished.sent, finished.unknown)
    if ending:
        click.echo(ending)
    return result.outcome.value


@click.command("status")
@click.argument("digest_id", type=DIGEST_ID, required=False)
@click.option(
    "--json", "as_json", is_flag=True, help="Print the counts per delivery state as JSON."
)
@with_appcontext
def status(digest_id: int | None, as_json: bool) -> None:
    """Show how far the sending of digest DIGEST_ID has got.

    Without DIGEST_ID, show what `digest auto` did lately and what waits: the schedule, the
    next slot, the articles still settling, the latest slots and their digests.
    """
    if digest_id is None:
        print_automation_status(as_json)
        return
    with get_runtime().sessions() as session:
        try:
            digest = get_digest(session, digest_id)
        except NotFound:
            raise click.ClickException(no_digest(digest_id)) from None
        report = digest_status(session, digest_id)
    counts, errors = report.counts, report.last_errors
    if as_json:
        click.echo(json.dumps({state.value: counts[state] for state in DeliveryStatus}))
        return
    click.echo(f"Digest {digest_id}: {digest.subject!r}, {digest.status}")
    click.echo(state_counts(counts, DeliveryStatus, form="  {state:<8} {count}", separator="\n"))
    if errors:
        click.echo("Last errors:")
        for email, delivery_state, error in errors:
            click.echo(f"  {email or '(erased)'} [{delivery_state}]: {error}")
