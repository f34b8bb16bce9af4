"""UTC times: stored as UTC on both databases, aware when read back, a naive one refused; the
conversion a batch insert repeats for one moment gives what it gives each time."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from flask import Flask
from sqlalchemy import insert, select
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import StatementError

from newsletter.app_db import get_engine
from newsletter.db import UTCDateTime
from newsletter.models import Suppression


@pytest.mark.parametrize("dialect", [sqlite.dialect(), postgresql.dialect()])
def test_the_same_moment_again_converts_as_the_first_time(dialect: object) -> None:
    process = UTCDateTime().bind_processor(dialect)
    assert process is not None
    fresh = UTCDateTime().bind_processor(dialect)
    assert fresh is not None
    moment = datetime(2026, 1, 2, 3, 4, 5, 6, tzinfo=timezone(timedelta(hours=2)))
    other = datetime(2026, 1, 2, 3, 4, 5, 7, tzinfo=UTC)
    for value in (moment, moment, other, moment, None, moment):
        assert process(value) == fresh(value)
    with pytest.raises(ValueError, match="naive"):
        process(datetime(2026, 1, 2))


def test_a_batch_of_rows_with_one_moment_reads_back_as_stored(app: Flask) -> None:
    now = datetime(2026, 5, 6, 7, 8, 9, 123456, tzinfo=UTC)
    later = now + timedelta(seconds=1)
    rows = [
        {"email_hash": f"{n:064x}", "reason": "test", "created_at": now if n % 3 else later}
        for n in range(10)
    ]
    with get_engine(app).begin() as db:
        db.execute(insert(Suppression), rows)
    with get_engine(app).connect() as db:
        stored = db.execute(
            select(Suppression.email_hash, Suppression.created_at).order_by(Suppression.email_hash)
        ).all()
    assert [(h, at) for h, at in stored] == [(r["email_hash"], r["created_at"]) for r in rows]
    with pytest.raises(StatementError, match="naive"), get_engine(app).begin() as db:
        db.execute(
            insert(Suppression),
            [{**rows[0], "email_hash": "f" * 64, "created_at": datetime(2026, 1, 1)}],
        )
