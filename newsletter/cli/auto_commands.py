"""``newsletter digest auto``: import the feeds and send the digest the schedule says is due.

Made to run from cron or a systemd timer every few minutes; what it does is
``newsletter.services.automation``'s work, and this keeps only the lines it prints and the
exit status (as ``digest send``'s: 0 when everything due is done, 2 when the mail server kept
failing, 130 on Ctrl-C, 1 on any other error).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy.exc import SQLAlchemyError

from newsletter.app_db import get_engine
from newsletter.cli.articles_commands import database_problem
from newsletter.cli.auto_status import describe_slot
from newsletter.cli.send_commands import (
    MAX_ERRORS_OPTION,
    RATE_OPTION,
    WORKERS_OPTION,
    deliver,
    warn_about_settings,
)
from newsletter.cli.wording import counted
from newsletter.db import utcnow
from newsletter.isotime import parse_timestamp
from newsletter.run_lock import run_lock
from newsletter.runtime import get_runtime
from newsletter.sending.engine import SendOptions
from newsletter.services.automation import Automation, AutoSettings, FeedImport, Plan

__all__ = ["auto", "automation"]

OK = 0
# A run computes the settle time before its moment and the next slot after it; at the ends
# of the calendar those fall outside what a datetime can hold.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9999, 1, 1, tzinfo=UTC)


def _moment(_ctx: click.Context, param: click.Parameter, value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        moment = parse_timestamp(value)
    except ValueError:
        message = (
            "expected a date and time such as 2027-03-01T09:05 (UTC unless an offset is "
            f"given), got {value!r}"
        )
        raise click.BadParameter(message, param=param) from None
    if not EARLIEST <= moment < LATEST:
        message = f"expected a moment from 1970 to 9998, got {value!r}"
        raise click.BadParameter(message, param=param)
    return moment


def automation() -> Automation:
    """The automation of this app, with its settings."""
    runtime = get_runtime()
    config = current_app.config
    settings = AutoSettings(
        schedule=config["DIGEST_SCHEDULE"],
        feeds=tuple(config["FEEDS"]),
        settle=timedelta(minutes=config["ARTICLE_SETTLE_MINUTES"]),
    )
    return Automation(runtime, settings)


def _feed_line(report: FeedImport, dry_run: bool = False) -> None:
    if report.problem is not None:
        click.echo(
            f"Warning: feed {report.source} could not be imported: {report.problem}; "
            "the other feeds go on.",
            err=True,
        )
        return
    result = report.result
    assert result is not None
    if dry_run:
        click.echo(
            f"Read {report.source}: {result.added} would be added, {result.updated} updated, "
            f"{result.unchanged} unchanged."
        )
        return
    click.echo(
        f"Imported {report.source}: {result.added} added, {result.updated} updated, "
        f"{result.unchanged} unchanged."
    )


@click.command("auto")
@click.option(
    "--at",
    "at",
    metavar="DATETIME",
    callback=_moment,
    default=None,
    help="Run as if it were this moment (2027-03-01T09:05, UTC unless an offset is given): "
    "for dry runs and tests.",
)
@click.option("--dry-run", is_flag=True, help="Print who would get which articles; change nothing.")
@WORKERS_OPTION
@RATE_OPTION
@MAX_ERRORS_OPTION
@with_appcontext
def auto(
    at: datetime | None, dry_run: bool, workers: int, rate: float | None, max_errors: int
) -> None:
    """Import the feeds of NEWSLETTER_FEEDS and send the digest NEWSLETTER_SCHEDULE says is due.

    Run it from cron or a timer every few minutes. Each reader gets the articles of their
    topics that became available since their own last digest, at their own rhythm; nobody gets
    an article twice. Run again at the same time, it sends nothing; two runs at once, one
    works and the other says so; a run stopped mid-send is finished by the next.

    Exit status: 0 when everything due is done (or nothing was due), 2 when stopped by
    --max-errors, 130 on Ctrl-C, 1 on any other error.
    """
    if not current_app.config["AUTOMATION"]:
        click.echo("Automation is off (NEWSLETTER_AUTOMATION=false): nothing done.")
        return
    now = at or utcnow()
    work = automation()
    try:
        with run_lock(get_engine()) as held:
            if not held:
                click.echo("Another `newsletter digest auto` run is working; leaving it to finish.")
                return
            if dry_run:
                _print_plan(work, work.plan(now))
                return
            status = _run(work, now, workers, rate, max_errors)
    except SQLAlchemyError as error:
        raise database_problem(error) from None
    raise SystemExit(status)


def _options(workers: int, rate: float | None, max_errors: int) -> SendOptions:
    return SendOptions(
        workers=workers,
        rate=rate,
        max_errors=max_errors,
        lease=timedelta(seconds=current_app.config["SEND_LEASE"]),
    )


def _run(work: Automation, now: datetime, workers: int, rate: float | None, max_errors: int) -> int:
    schedule = work.settings.schedule
    for report in work.import_feeds(now):
        _feed_line(report)
    settled = work.settle(now)
    if settled:
        click.echo(f"{counted(settled, 'article')} settled and can go out.")
    options = _options(workers, rate, max_errors)
    for digest_id in work.unfinished():
        sending = work.digest_send(digest_id)
        queued = sending.queue()
        click.echo(f"Continuing digest {digest_id}: {queued.open} deliveries still to go.")
        status = deliver(sending, queued, options)
        if status != OK:
            return status
    slot = work.due_slot(now)
    queued_slot = work.queue(slot, now) if slot is not None else None
    if slot is None or queued_slot is None:
        following = work.next_slot(now)
        click.echo(
            f"Nothing due until {describe_slot(schedule, following)} ({schedule.describe()})."
        )
        return OK
    when = describe_slot(schedule, slot)
    if queued_slot.digest_id is None:
        click.echo(
            f"Digest of {when}: {counted(queued_slot.readers, 'reader')} due, but nothing new "
            "became "
            "available for them; nothing to send."
        )
        return OK
    click.echo(
        f"Digest {queued_slot.digest_id} of {when}: {counted(queued_slot.articles, 'article')} "
        f"for {counted(queued_slot.readers, 'reader')}, each getting those of their topics new "
        "to them."
    )
    warn_about_settings(get_runtime())
    sending = work.digest_send(queued_slot.digest_id)
    return deliver(sending, sending.queue(), options)


def _print_plan(work: Automation, plan: Plan) -> None:
    schedule = work.settings.schedule
    for report in plan.feeds:
        _feed_line(report, dry_run=True)
    if plan.settled:
        click.echo(f"{counted(plan.settled, 'article')} would settle and could go out.")
    for digest_id in plan.unfinished:
        click.echo(f"Digest {digest_id} is not finished; a run would send the rest first.")
    queued = plan.queued
    if queued is None or plan.slot is None:
        following = work.next_slot(plan.now)
        click.echo(
            f"Nothing due until {describe_slot(schedule, following)} ({schedule.describe()})."
        )
    elif queued.digest_id is None:
        click.echo(
            f"Due: the digest of {describe_slot(schedule, plan.slot)}, "
            f"{counted(queued.readers, 'reader')}, "
            "but nothing new has become available for them."
        )
    else:
        click.echo(
            f"Due: the digest of {describe_slot(schedule, plan.slot)}, "
            f"{counted(queued.articles, 'article')} for {counted(queued.readers, 'reader')}:"
        )
        for reader in plan.readers:
            if reader.titles:
                titles = "; ".join(reader.titles)
                click.echo(f"  {reader.email} ({reader.rhythm}): {len(reader.titles)}: {titles}")
            else:
                click.echo(f"  {reader.email} ({reader.rhythm}): nothing new, no email")
    click.echo("Dry run: nothing was imported, sent or changed.")
