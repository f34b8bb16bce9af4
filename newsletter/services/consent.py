"""Consent proof: statement versions and the append-only event log."""

from __future__ import annotations

import hashlib
import unicodedata
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.db import utcnow
from newsletter.models import ConsentEvent, ConsentKind, ConsentStatement, Subscriber

__all__ = [
    "FORM_SIGNUP",
    "Evidence",
    "find_statement",
    "record_event",
    "statement_hash",
    "statement_version",
]

IP_LENGTH = 64
USER_AGENT_LENGTH = 512
SOURCE_URL_LENGTH = 2048
# The method of consent given through the signup form: the one way back for a suppressed address.
FORM_SIGNUP = "web form"


@dataclass(frozen=True)
class Evidence:
    """How an event happened: the channel and, for web requests, where from."""

    method: str
    ip: str | None = None
    user_agent: str | None = None
    source_url: str | None = None
    note: str | None = None
    # The style of signup box (``newsletter.boxes.BoxStyle``); None outside the signup form.
    box_style: str | None = None


def statement_hash(text: str) -> str:
    """The key a wording is stored under; a signup box carries it to name what it showed."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def find_statement(session: Session, digest: str) -> ConsentStatement | None:
    """The stored version whose wording hashes to ``digest``, if there is one."""
    return session.scalar(select(ConsentStatement).where(ConsentStatement.text_hash == digest))


def statement_version(session: Session, text: str) -> ConsentStatement:
    """The stored version of ``text``, created the first time this wording is used."""
    digest = statement_hash(text)
    statement = find_statement(session, digest)
    if statement is not None:
        return statement
    try:
        with session.begin_nested():
            statement = ConsentStatement(text_hash=digest, text=text)
            session.add(statement)
    except IntegrityError:
        # Another request stored the same wording first.
        statement = session.scalars(
            select(ConsentStatement).where(ConsentStatement.text_hash == digest)
        ).one()
    return statement


def record_event(
    session: Session,
    subscriber: Subscriber,
    kind: ConsentKind,
    evidence: Evidence,
    statement: ConsentStatement | None = None,
    at: datetime | None = None,
) -> ConsentEvent:
    event = ConsentEvent(
        subscriber=subscriber,
        kind=kind,
        statement=statement,
        at=at or utcnow(),
        method=evidence.method,
        ip=_stored(evidence.ip, IP_LENGTH),
        user_agent=_stored(evidence.user_agent, USER_AGENT_LENGTH),
        source_url=_stored(evidence.source_url, SOURCE_URL_LENGTH),
        note=evidence.note,
        box_style=evidence.box_style,
    )
    session.add(event)
    session.flush()
    return event


def _stored(value: str | None, length: int) -> str | None:
    """Request headers as they can be stored: a client may send NUL or other control
    characters, which PostgreSQL refuses in text; they carry no evidence anyway."""
    text = "".join(char for char in value or "" if unicodedata.category(char) != "Cc")
    return text[:length] or None
