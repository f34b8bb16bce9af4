"""Consent proof: statement versions and the append-only event log.

Every consent event is written here, whoever records it (the form, a link, an import), so
the evidence is cleaned and stored the same way for all of them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from weakref import WeakKeyDictionary

from sqlalchemy import Engine, bindparam, insert, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from newsletter.controls import replace_controls
from newsletter.db import utcnow
from newsletter.models import ConsentEvent, ConsentKind, ConsentStatement, Subscriber
from newsletter.people import Person
from newsletter.services.bulk import bulk_insert, table_of

__all__ = [
    "Evidence",
    "event_fields",
    "find_statement",
    "latest_given_event",
    "record_event",
    "record_events",
    "statement_hash",
    "statement_id",
    "statement_version",
]

IP_LENGTH = 64
USER_AGENT_LENGTH = 512
SOURCE_URL_LENGTH = 2048


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
    # The topics the form offered and those chosen, as JSON; None when it offered none.
    choices: str | None = None


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


# The id of each wording found stored, per database (engine). A stored wording is never
# changed or deleted, so its id holds for the life of the process; only ids read from
# committed rows go in, never one this transaction created (it may yet roll back).
_statement_ids: WeakKeyDictionary[Engine, dict[str, int]] = WeakKeyDictionary()
_STATEMENT_ID = select(ConsentStatement.id).where(ConsentStatement.text_hash == bindparam("hash"))


def statement_id(session: Session, text: str) -> int:
    """The id of the stored version of ``text`` (see :func:`statement_version`), read from the
    database once per process: a signup asks for it every time."""
    digest = statement_hash(text)
    known = _statement_ids.setdefault(session.get_bind().engine, {})
    found = known.get(digest)
    if found is None:
        found = session.scalar(_STATEMENT_ID, {"hash": digest})
        if found is None:
            return statement_version(session, text).id
        known[digest] = found
    return found


_EVENT = insert(table_of(ConsentEvent))


def record_event(
    session: Session,
    subscriber_id: int,
    kind: ConsentKind,
    evidence: Evidence,
    statement_id: int | None = None,
    at: datetime | None = None,
) -> None:
    """Record one event about subscriber ``subscriber_id``, now unless ``at`` says when, in
    one INSERT without the ORM's unit of work (the signup form records one for every post)."""
    values = {"subscriber_id": subscriber_id, "statement_id": statement_id}
    session.execute(_EVENT, values | event_fields(kind, evidence, at))


def record_events(
    session: Session,
    kind: ConsentKind,
    events: Iterable[tuple[int, Evidence, datetime | None]],
    statement: ConsentStatement | None = None,
) -> None:
    """Record an event of ``kind`` for each (subscriber id, evidence, time) in one statement:
    what :func:`record_event` writes, for the thousands of people of an import's batch."""
    statement_id = statement.id if statement is not None else None
    now = utcnow()
    # An import's thousand rows share a few pieces of evidence: each one's columns are made
    # once (kept with the evidence itself, so that its id is not reused for another).
    stored: dict[int, tuple[Evidence, dict[str, Any]]] = {}
    rows = []
    for subscriber_id, evidence, at in events:
        fields = stored.get(id(evidence))
        if fields is None:
            fields = stored[id(evidence)] = (evidence, event_fields(kind, evidence, now))
        rows.append(
            {
                "subscriber_id": subscriber_id,
                "statement_id": statement_id,
                **fields[1],
                "at": at or now,
            }
        )
    if rows:
        bulk_insert(session, table_of(ConsentEvent), rows)


def event_fields(kind: ConsentKind, evidence: Evidence, at: datetime | None) -> dict[str, Any]:
    """An event's own columns, from its evidence."""
    return {
        "kind": kind.value,
        "at": at or utcnow(),
        "method": evidence.method,
        "ip": _stored(evidence.ip, IP_LENGTH),
        "user_agent": _stored(evidence.user_agent, USER_AGENT_LENGTH),
        "source_url": _stored(evidence.source_url, SOURCE_URL_LENGTH),
        "note": evidence.note,
        "box_style": evidence.box_style,
        "choices": evidence.choices,
    }


def _stored(value: str | None, length: int) -> str | None:
    """Request headers as they can be stored: a client may send NUL or other control
    characters, which PostgreSQL refuses in text; they carry no evidence anyway."""
    text = replace_controls(value or "")
    return text[:length] or None


def latest_given_event(session: Session, subscriber: Subscriber | Person) -> ConsentEvent | None:
    """The consent a person gave last (what a confirmation link confirms)."""
    return session.scalar(
        select(ConsentEvent)
        .where(
            ConsentEvent.subscriber_id == subscriber.id,
            ConsentEvent.kind == ConsentKind.GIVEN,
        )
        .order_by(ConsentEvent.id.desc())
        .limit(1)
    )
