"""Warnings about settings that the commands which make mail give alike."""

from __future__ import annotations

import click

from newsletter.site import Site

__all__ = ["POSTAL_ADDRESS_MISSING", "warn_about_postal_address"]

POSTAL_ADDRESS_MISSING = (
    "Warning: NEWSLETTER_POSTAL_ADDRESS is empty; set it before sending: every email's footer "
    "should carry the organisation's postal address, and the law in many countries requires it."
)


def warn_about_postal_address(site: Site) -> None:
    """On standard error, when the footer of every email would lack the postal address."""
    if not site.postal_address:
        click.echo(POSTAL_ADDRESS_MISSING, err=True)
