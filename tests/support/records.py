"""Reading the database the way a test checks it: a short session per look, so that no test
holds a transaction (and, on SQLite, the write lock) while the app works."""

from __future__ import annotations

from typing import Any

from flask import Flask
from sqlalchemy import Select, func, select

from newsletter.addresses import email_key
from newsletter.app_db import session_factory
from newsletter.models import ConsentEvent, ConsentStatement, Delivery, Subscriber

__all__ = ["all_rows", "count", "deliveries", "events", "statements", "subscriber"]


def all_rows(app: Flask, statement: Select[Any]) -> list[Any]:
    with session_factory(app)() as session:
        return list(session.scalars(statement))


def count(app: Flask, model: type[Any]) -> int:
    with session_factory(app)() as session:
        return int(session.scalar(select(func.count()).select_from(model)) or 0)


def subscriber(app: Flask, email: str) -> Subscriber | None:
    rows = all_rows(app, select(Subscriber).where(Subscriber.email_key == email_key(email)))
    return rows[0] if rows else None


def events(app: Flask, kind: str | None = None) -> list[ConsentEvent]:
    query = select(ConsentEvent).order_by(ConsentEvent.id)
    if kind is not None:
        query = query.where(ConsentEvent.kind == kind)
    return all_rows(app, query)


def statements(app: Flask) -> list[ConsentStatement]:
    return all_rows(app, select(ConsentStatement).order_by(ConsentStatement.id))


def deliveries(app: Flask) -> list[Delivery]:
    return all_rows(app, select(Delivery).order_by(Delivery.id))
