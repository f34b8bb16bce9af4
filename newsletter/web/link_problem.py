"""The page for a link that cannot be used: tampered, expired, or no longer valid."""

from __future__ import annotations

from flask import render_template

from newsletter.runtime import get_runtime
from newsletter.web.forms import ButtonForm

__all__ = ["link_problem"]


def link_problem(message: str, renew_token: str | None = None) -> tuple[str, int]:
    """A ``400`` page saying ``message``; it never says whose link it was.

    With ``renew_token`` (an expired confirmation link), it offers a fresh confirmation email.
    """
    page = render_template(
        "link_problem.html",
        organisation=get_runtime().site.organisation,
        message=message,
        renew_token=renew_token,
        form=ButtonForm() if renew_token else None,
    )
    return page, 400
