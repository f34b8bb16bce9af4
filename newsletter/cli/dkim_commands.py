"""``newsletter dkim``: the key that signs every message, and the DNS record that publishes it."""

from __future__ import annotations

import os
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from newsletter.mail.dkim_keys import (
    dns_record,
    load_rsa_key,
    new_rsa_key,
    txt_strings,
    valid_selector,
)
from newsletter.runtime import get_runtime

__all__ = ["dkim"]


@click.group("dkim")
def dkim() -> None:
    """DKIM signing of outgoing mail."""


@dkim.command("generate")
@click.option(
    "--selector",
    required=True,
    metavar="NAME",
    help="The selector the record is published under (NAME._domainkey.DOMAIN), e.g. news2026.",
)
@click.option(
    "--out",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Where to write the private key (default: dkim-NAME.pem in the instance folder). "
    "An existing file is never overwritten.",
)
@with_appcontext
def generate(selector: str, out: Path | None) -> None:
    """Write a new RSA-2048 private key (readable by its owner only) and print the DNS TXT
    record to publish for the sender's domain."""
    if not valid_selector(selector):
        raise click.ClickException(
            f"--selector: expected a DNS name such as news2026, got {selector!r}"
        )
    path = out or Path(current_app.instance_path) / f"dkim-{selector}.pem"
    pem = new_rsa_key()
    try:
        # O_EXCL: an existing key (perhaps the one in use) is never replaced.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        raise click.ClickException(
            f"{path} exists; choose another --out or remove it first"
        ) from None
    except OSError as error:
        raise click.ClickException(f"cannot write {path}: {error.strerror or error}") from None
    with os.fdopen(fd, "wb") as handle:
        handle.write(pem)
    domain = get_runtime().site.sender_domain
    record = txt_strings(dns_record(load_rsa_key(pem)))
    click.echo(f"Wrote a new RSA-2048 key to {path} (readable by its owner only).")
    click.echo("Publish this DNS record:")
    click.echo(f"{selector}._domainkey.{domain}. IN TXT {record}")
    click.echo(f"Then set NEWSLETTER_DKIM_KEY_FILE={path} and NEWSLETTER_DKIM_SELECTOR={selector}.")
