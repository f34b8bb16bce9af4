"""``newsletter digest status`` without an id: what the automation did lately and what waits."""

from __future__ import annotations

import json
from datetime import datetime

import click
from flask import current_app

from newsletter.cli.wording import counted
from newsletter.db import utcnow
from newsletter.isotime import iso_utc
from newsletter.runtime import get_runtime
from newsletter.schedule import Schedule
from newsletter.services.automation import automation_status

__all__ = ["describe_slot", "print_automation_status"]


def describe_slot(schedule: Schedule, moment: datetime) -> str:
    """A slot as people read it: in the schedule's own time zone."""
    local = moment.astimezone(schedule.zone)
    return f"{local:%A} {local.day} {local:%B %Y %H:%M} {schedule.zone.key}"


def print_automation_status(as_json: bool) -> None:
    config = current_app.config
    schedule: Schedule = config["DIGEST_SCHEDULE"]
    with get_runtime().sessions() as session:
        report = automation_status(session)
    following = schedule.next_slot(utcnow())
    if as_json:
        document = {
            "automation": config["AUTOMATION"],
            "schedule": schedule.describe(),
            "next_slot": iso_utc(following),
            "settling": report.settling,
            "slots": [
                {
                    "slot": iso_utc(slot.slot_at),
                    "handled_at": iso_utc(slot.handled_at),
                    "readers": slot.readers,
                    "digest": slot.digest_id,
                    "status": slot.digest_status,
                }
                for slot in report.slots
            ],
        }
        click.echo(json.dumps(document))
        return
    state = "on" if config["AUTOMATION"] else "off (NEWSLETTER_AUTOMATION=false)"
    click.echo(f"Automatic digests: {state}; schedule {schedule.describe()}.")
    click.echo(f"Next slot: {describe_slot(schedule, following)}.")
    click.echo(
        f"Feeds: {len(config['FEEDS'])}; articles still settling: {report.settling} "
        f"(unchanged for {config['ARTICLE_SETTLE_MINUTES']} minutes before they go out)."
    )
    if not report.slots:
        click.echo("No slot dealt with yet.")
        return
    click.echo("Latest slots:")
    for slot in report.slots:
        sent = (
            f"digest {slot.digest_id} ({slot.digest_status})"
            if slot.digest_id is not None
            else "nothing new, no digest"
        )
        click.echo(
            f"  {describe_slot(schedule, slot.slot_at)}: {counted(slot.readers, 'reader')} due, "
            f"{sent}; "
            f"run at {iso_utc(slot.handled_at)}"
        )
