"""Helpers for the subscriber command tests: CSV files, rows put straight into the database,
the form's signup-and-confirm path, and a scan of every text value the database holds."""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from datetime import datetime
from email.message import EmailMessage
from pathlib import Path
from urllib.parse import urlsplit

from flask.testing import FlaskClient
from sqlalchemy import Engine, column, inspect, select, table
from sqlalchemy.orm import Session

from newsletter.addresses import email_key
from newsletter.db import utcnow
from newsletter.models import Subscriber
from tests.conftest import csrf_token, post_signup
from tests.support.mailbox import find_link

__all__ = ["add_subscriber", "sign_up_and_confirm", "text_values", "write_csv"]


def write_csv(path: Path, header: Sequence[str], rows: Sequence[Sequence[str]]) -> Path:
    """A UTF-8 CSV file with ``header`` then ``rows``."""
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(header)
        writer.writerows(rows)
    return path


def add_subscriber(
    session: Session,
    email: str,
    first_name: str = "Ada",
    last_name: str = "Lovelace",
    status: str = "active",
    created_at: datetime | None = None,
) -> Subscriber:
    """A subscriber row written directly (no validation), committed."""
    subscriber = Subscriber(
        email=email,
        email_key=email_key(email),
        first_name=first_name,
        last_name=last_name,
        status=status,
        created_at=created_at or utcnow(),
    )
    session.add(subscriber)
    session.commit()
    return subscriber


def sign_up_and_confirm(
    client: FlaskClient,
    sent_mail: Callable[[], list[EmailMessage]],
    email: str,
    first_name: str,
    last_name: str,
) -> None:
    """Sign up through the form, then open the emailed link and press Confirm."""
    response = post_signup(client, email=email, first_name=first_name, last_name=last_name)
    assert response.status_code == 303
    messages = [message for message in sent_mail() if email in str(message["To"])]
    assert messages, f"no confirmation email to {email}"
    path = urlsplit(find_link(messages[-1], "/confirm/")).path
    page = client.get(path)
    assert page.status_code == 200
    done = client.post(path, data={"csrf_token": csrf_token(page)})
    assert done.status_code == 200, done.get_data(as_text=True)


def text_values(engine: Engine) -> list[tuple[str, str, str]]:
    """(table, column, value as text) for every non-empty value in every table and column the
    database holds, whatever the column's type."""
    found: list[tuple[str, str, str]] = []
    inspector = inspect(engine)
    # Read the schema first: each inspector call takes a connection of its own, and on SQLite
    # a second connection opened inside the first would wait for its write lock.
    tables = {
        name: [column["name"] for column in inspector.get_columns(name)]
        for name in inspector.get_table_names()
    }
    with engine.connect() as connection:
        for name, columns in tables.items():
            query = select(*(column(each) for each in columns)).select_from(table(name))
            for row in connection.execute(query):
                for each, value in zip(columns, row, strict=True):
                    if value is not None and value != "":
                        found.append((name, each, str(value)))
    return found
