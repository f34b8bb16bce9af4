"""What every service that sends mail works with, made once per app."""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy.orm import Session, sessionmaker

from newsletter.mail.render import EmailRenderer
from newsletter.mail.transports import Transport
from newsletter.site import Site

__all__ = ["Mailroom"]


class Mailroom(NamedTuple):
    """The database sessions, the site's values, the email renderer and the transport: the
    outbox, a digest's send and the automation each take one (the app's runtime is one)."""

    sessions: sessionmaker[Session]
    site: Site
    renderer: EmailRenderer
    transport: Transport
