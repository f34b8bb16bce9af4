"""``newsletter subscribers``: list, stats, import, export, show and erase people."""

from __future__ import annotations

import io
import json
import os
import sys
import tempfile
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TextIO

import click
from flask.cli import with_appcontext

from newsletter.app_db import get_engine, get_session
from newsletter.cli.numbers import count
from newsletter.cli.progress import progress_bar
from newsletter.cli.tables import first_words, format_table, sparkline, state_counts
from newsletter.isotime import iso_utc
from newsletter.models import DeliveryStatus, SubscriberStatus
from newsletter.runtime import get_runtime
from newsletter.services.csv_export import count_subscribers, write_csv
from newsletter.services.csv_import import (
    ImportCounts,
    ImportStatus,
    ImportStopped,
    SubscriberImport,
)
from newsletter.services.csv_rows import (
    PeopleCSV,
    Problem,
    UnreadableCSV,
    UTF8Lines,
    clean_consent_note,
)
from newsletter.services.privacy import erase as erase_person
from newsletter.services.privacy import find_subscriber, person_record, suppression_reason
from newsletter.services.roster import Stats, list_subscribers
from newsletter.services.roster import stats as gather_stats
from newsletter.validation import InvalidValue

__all__ = ["subscribers"]

STATUSES = [status.value for status in SubscriberStatus]
INTERRUPTED = 130

status_filter = click.option(
    "--status",
    "statuses",
    multiple=True,
    type=click.Choice(STATUSES),
    help="Only subscribers with this status; repeat for several. Default: every status.",
)


@click.group()
def subscribers() -> None:
    """List, count, import, export, show and erase subscribers."""


@subscribers.command("list")
@status_filter
@click.option(
    "--limit",
    type=count(),
    default=50,
    show_default=True,
    help="Show at most this many, newest first.",
)
@click.option("--search", help="Only those whose address or name contains TEXT (any case).")
@with_appcontext
def list_command(statuses: tuple[str, ...], limit: int, search: str | None) -> None:
    """Show subscribers as a table, newest first."""
    page = list_subscribers(get_session(), statuses, search, limit)
    if not page.rows:
        click.echo("No subscribers match.")
        return
    rows = [
        (
            row.id,
            row.email,
            f"{row.first_name} {row.last_name}",
            row.status,
            iso_utc(row.created_at),
        )
        for row in page.rows
    ]
    for line in format_table(("id", "email", "name", "status", "created"), rows):
        click.echo(line)
    more = " (use --limit to see more, or export them)" if page.total > len(rows) else ""
    click.echo(f"{len(rows):,} of {page.total:,} shown{more}.")


@subscribers.command()
@click.option(
    "--digests",
    type=count(minimum=0),
    default=10,
    show_default=True,
    help="How many of the newest sent digests to show.",
)
@with_appcontext
def stats(digests: int) -> None:
    """Counts by status, weekly signups, confirmations and unsubscribes for the last 12
    weeks, consent wordings in use, people per topic, and deliveries per digest."""
    for line in render_stats(gather_stats(get_session(), digests=digests)):
        click.echo(line)


def render_stats(figures: Stats) -> list[str]:
    """The ``subscribers stats`` report as lines of text."""
    lines = [f"Subscribers: {figures.total:,}"]
    lines += format_table(("status", "people"), list(figures.by_status.items()), indent="  ")[1:]
    weeks = figures.weeks
    lines += ["", f"Last {len(weeks)} weeks (ISO weeks, UTC), oldest first:"]
    series = [
        ("signups", [week.signups for week in weeks]),
        ("confirmations", [week.confirmations for week in weeks]),
        ("unsubscribes", [week.unsubscribes for week in weeks]),
    ]
    for name, values in series:
        lines.append(f"  {name:<14} {sparkline(values)}  {sum(values):,} in all")
    lines.append("")
    table = [(week.label, week.signups, week.confirmations, week.unsubscribes) for week in weeks]
    lines += format_table(("week", "signups", "confirmations", "unsubscribes"), table, "  ")
    lines += ["", "Consent statements in use:"]
    if figures.statements:
        table_rows = [
            (use.version, use.people, first_words(use.text)) for use in figures.statements
        ]
        lines += format_table(("version", "people", "wording"), table_rows, indent="  ")
    else:
        lines.append("  none yet")
    if figures.consent_without_statement:
        noted = _people(figures.consent_without_statement)
        lines.append(f"  with a consent note instead (imported): {noted}")
    lines += ["", "Topics:"]
    if figures.topics:
        topic_rows = [(use.slug, use.name, use.active, use.people) for use in figures.topics]
        lines += format_table(("topic", "name", "active", "people"), topic_rows, indent="  ")
        everything = _people(figures.active_without_topics)
        lines.append(f"  active with no topic chosen (everything): {everything}")
    else:
        lines.append("  none defined")
    emails = figures.confirmation_emails
    lines += ["", "Confirmation emails: " + _state_counts(emails)]
    lines += ["", "Digests:"]
    if figures.digests:
        states = [state.value for state in DeliveryStatus]
        digest_rows: list[tuple[object, ...]] = [
            (
                digest.id,
                digest.status,
                iso_utc(digest.sent_at) if digest.sent_at else "",
                first_words(digest.subject, 6),
                *(digest.counts.get(state, 0) for state in states),
            )
            for digest in figures.digests
        ]
        lines += format_table(("id", "status", "sent", "subject", *states), digest_rows, "  ")
        if figures.older_digests:
            lines.append(f"  and {figures.older_digests:,} older (see --digests)")
    else:
        lines.append("  none sent yet")
    return lines


def _state_counts(counts: Mapping[str, int]) -> str:
    """``3 sent, 1 failed``: the states that have any, or "none"."""
    return state_counts(counts, DeliveryStatus, form="{count:,} {state}", skip_zero=True) or "none"


@subscribers.command()
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Write to this file (created readable by you only) instead of standard output.",
)
@status_filter
@with_appcontext
def export(out: Path | None, statuses: tuple[str, ...]) -> None:
    """Write subscribers as UTF-8 CSV: email, first_name, last_name, status, created_at,
    confirmed_at, unsubscribed_at (times in UTC) and topics (slugs separated by spaces).

    Cells that a spreadsheet would run as a formula start with a single quote.
    """
    session = get_session()
    if out is None:
        written = _export_to_stdout(lambda handle: write_csv(session, handle, statuses))
        click.echo(f"Exported {written:,} subscribers.", err=True)
        return
    length = count_subscribers(session, statuses) if sys.stderr.isatty() else 0
    with progress_bar(length, "Exporting") as bar:
        written = _export_to_file(
            out, lambda handle: write_csv(session, handle, statuses, bar.update)
        )
    click.echo(f"Exported {written:,} subscribers to {out}.")


def _export_to_file(out: Path, writer: Callable[[TextIO], int]) -> int:
    # Written beside the target and renamed at the end: an interrupted export never leaves
    # a file that looks complete. mkstemp creates it readable by this user only.
    try:
        handle, temporary = tempfile.mkstemp(
            dir=out.resolve().parent, prefix=f".{out.name}.", suffix=".partial"
        )
    except OSError as error:
        raise click.ClickException(f"cannot write {out}: {error.strerror}") from None
    try:
        with open(handle, "w", encoding="utf-8", newline="") as stream:
            written = writer(stream)
        os.replace(temporary, out)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return written


def _export_to_stdout(writer: Callable[[TextIO], int]) -> int:
    sys.stdout.flush()
    stream = io.TextIOWrapper(sys.stdout.buffer, encoding="utf-8", newline="")
    try:
        return writer(stream)
    except BrokenPipeError:
        # The reader went away (`| head`): not an error worth a traceback.
        raise SystemExit(1) from None
    finally:
        try:
            stream.flush()
        except BrokenPipeError:
            pass
        stream.detach()


@subscribers.command("import")
# Opening the file below names a missing, unreadable or folder FILE in one line.
@click.argument("file", type=click.Path(readable=False, path_type=Path))
@click.option(
    "--status",
    type=click.Choice([status.value for status in ImportStatus]),
    default=ImportStatus.ACTIVE.value,
    show_default=True,
    help="active: subscribed at once (needs --consent-note); pending: each gets a "
    "confirmation email and joins when they confirm.",
)
@click.option(
    "--consent-note",
    help="How these people consented, such as 'paper form at the 2024 AGM'; recorded as "
    "each person's consent. Required for --status active.",
)
@click.option("--dry-run", is_flag=True, help="Check every row and report; change nothing.")
@with_appcontext
def import_command(file: Path, status: str, consent_note: str | None, dry_run: bool) -> None:
    """Add people from a CSV file (UTF-8) with the columns email, first_name, last_name and
    optionally consented_at, source and topics (slugs separated by spaces; a row naming a
    topic that does not exist is rejected whole).

    Rows are checked like the signup form; bad rows are reported by line number on stderr and
    the rest imported. People already on the list are skipped; suppressed addresses are
    refused. Exits 1 when a row was rejected or an email could not be sent.
    """
    chosen = ImportStatus(status)
    note = (consent_note or "").strip() or None
    if chosen is ImportStatus.ACTIVE and note is None:
        raise click.ClickException(
            "--consent-note is required for an active import: say how these people "
            "consented, or use --status pending to ask each of them to confirm"
        )
    if note is not None:
        try:
            note = clean_consent_note(note)
        except InvalidValue as error:
            raise click.ClickException(f"--consent-note: {error}") from None
    try:
        stream = open(file, "rb")
    except OSError as error:
        raise click.ClickException(f"cannot read {file}: {error.strerror}") from None
    runtime = get_runtime()
    with stream:
        lines = UTF8Lines(stream)
        try:
            people = PeopleCSV(lines)
        except UnreadableCSV as error:
            raise click.ClickException(f"{file}: {error}") from None
        if people.unknown_columns:
            unused = ", ".join(people.unknown_columns)
            click.echo(f"Not used: the column(s) {unused}.", err=True)
        importer = SubscriberImport(
            get_engine(),
            runtime.site,
            status=chosen,
            consent_note=note,
            dry_run=dry_run,
            outbox=None if dry_run else runtime.outbox(),
        )
        counts = _run_import(importer, people, lines, os.fstat(stream.fileno()).st_size, file)
    _summarise(counts, dry_run)
    emails_not_sent = counts.emails[DeliveryStatus.FAILED] + counts.emails_waiting
    if counts.rejected or emails_not_sent:
        raise SystemExit(1)


def _run_import(
    importer: SubscriberImport, people: PeopleCSV, lines: UTF8Lines, size: int, file: Path
) -> ImportCounts:
    """Run the import under a progress bar by bytes; on a stop, summarise what was done."""
    dry_run = importer.dry_run
    with progress_bar(size, "Importing") as bar:

        def advance() -> None:
            bar.update(lines.bytes_read - bar.pos)

        try:
            return importer.run(people, _problem_reporter(visible_bar=not bar.hidden), advance)
        except KeyboardInterrupt:
            click.echo("", err=True)
            _summarise(importer.counts, dry_run)
            click.echo(
                "Interrupted: the rows after the last completed batch were not imported; "
                "run the same import again to continue.",
                err=True,
            )
            raise SystemExit(INTERRUPTED) from None
        except (UnreadableCSV, ImportStopped) as error:
            _summarise(importer.counts, dry_run)
            hint = "" if dry_run else "; fix it and run the same import again to continue"
            raise click.ClickException(f"{file}: {error}{hint}") from None


def _problem_reporter(visible_bar: bool) -> Callable[[Problem], None]:
    # Clear the progress bar's line first so a message does not run into it.
    prefix = "\r\x1b[K" if visible_bar else ""

    def report(problem: Problem) -> None:
        verdict = "rejected" if problem.rejected else "skipped"
        click.echo(f"{prefix}line {problem.line}: {verdict}: {problem.reason}", err=True)

    return report


def _people(count: int) -> str:
    return f"{count:,} {'person' if count == 1 else 'people'}"


def _summarise(counts: ImportCounts, dry_run: bool) -> None:
    imported = sum(counts.imported.values())
    by_status = state_counts(
        counts.imported, ImportStatus, form="{count:,} {state}", skip_zero=True
    )
    verb = "Dry run, nothing changed: would import" if dry_run else "Imported"
    parts = [f"{verb} {_people(imported)}" + (f" ({by_status})" if by_status else "")]
    parts.append(f"{counts.skipped:,} skipped (already on the list)")
    parts.append(f"{counts.rejected:,} rejected")
    if counts.suppressed:
        would = "would be " if dry_run else ""
        parts.append(f"{counts.suppressed:,} {would}added to the suppression list (by the file)")
    click.echo("; ".join(parts) + f"; {counts.rows:,} rows read.")
    if counts.emails:
        click.echo("Confirmation emails: " + _state_counts(counts.emails) + ".")
    if counts.emails_waiting:
        click.echo(
            f"{counts.emails_waiting:,} confirmation emails wait in the outbox: run "
            "`newsletter outbox flush` once the mail server is reachable.",
            err=True,
        )


@subscribers.command()
@click.argument("email")
@with_appcontext
def show(email: str) -> None:
    """Print everything held about the person with this address, as JSON."""
    session = get_session()
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise click.ClickException(_not_found(email))
    click.echo(json.dumps(person_record(session, subscriber), indent=2, ensure_ascii=False))


def _not_found(email: str) -> str:
    reason = suppression_reason(get_session(), email)
    where = f" (the address is on the suppression list: {reason})" if reason else ""
    return f"no subscriber with the address {email}{where}"


@subscribers.command()
@click.argument("email")
@click.option("--yes", is_flag=True, help="Do not ask for confirmation.")
@with_appcontext
def erase(email: str, yes: bool) -> None:
    """Erase the person with this address (the right to erasure).

    Deletes their record and consent history and the personal data in their deliveries, and
    keeps only a hash of the address so it is never mailed or imported again. They can come
    back through the signup form.
    """
    session = get_session()
    subscriber = find_subscriber(session, email)
    if subscriber is None:
        raise click.ClickException(_not_found(email))
    if not yes:
        click.confirm(
            f"Erase {subscriber.email} ({subscriber.first_name} {subscriber.last_name}, "
            f"{subscriber.status}) and everything held about them? This cannot be undone.",
            abort=True,
        )
    erasure = erase_person(session, subscriber)
    session.commit()
    lines = [
        f"Erased {erasure.email}:",
        f"  subscriber record: {erasure.name} ({erasure.status})",
        f"  consent events deleted: {erasure.consent_events:,}",
        f"  deliveries stripped of personal data: {erasure.deliveries:,} "
        "(kept, unlinked, so digest counts stay right)",
        f"  queued emails cancelled: {erasure.cancelled:,}",
        "  suppression list: a hash of the address was added (erased)",
    ]
    for line in lines:
        click.echo(line)
