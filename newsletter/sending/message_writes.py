"""The one database write every message needs: record the last accepted message ``sent`` and
mark the next one ``sending``, committed before its SMTP transaction starts.

This runs once per message, so its cost sets the pace of a send. SQLite does it in one
short transaction. PostgreSQL does it in one statement on a worker's own autocommit
connection: a data-modifying CTE records ``sent`` while the main UPDATE marks ``sending``, so
a message costs one round trip to the server instead of four (BEGIN, two UPDATEs, COMMIT).
A single statement is atomic on its own, so nothing is lost against the transaction. Claims
go through the same connection, also as one statement each.
"""

from __future__ import annotations

import functools
from datetime import timedelta
from typing import Protocol

from sqlalchemy import Engine, String, literal
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.interfaces import Compiled

from newsletter.db import utcnow
from newsletter.models import Delivery
from newsletter.sending import ledger
from newsletter.sending.jobs import ClaimedDelivery, Job

__all__ = ["Accepted", "MessageWrites", "message_writes"]

#: Messages the server accepted and not yet recorded: (delivery id, Message-ID).
Accepted = list[tuple[int, str]]
#: How many accepted messages were recorded, and the deliveries newly claimed.
ClaimResult = tuple[int, list[ClaimedDelivery]]

# PostgreSQL runs a data-modifying CTE to completion even when the main statement does not
# read it; the two UPDATEs touch different rows of the same worker's claim.
_RECORDED = ledger.RECORD_SENT.returning(Delivery.id).cte("recorded")


class MessageWrites(Protocol):
    """One worker's writes around each message. Not shared between threads."""

    def record(self, accepted: Accepted) -> int:
        """Record ``accepted`` as sent (and empty it); return how many were recorded."""

    def claim(self, accepted: Accepted, size: int, lease: timedelta) -> ClaimResult:
        """Record ``accepted`` (and empty it), then lease up to ``size`` queued deliveries."""

    def advance(self, accepted: Accepted, delivery_id: int) -> tuple[int, bool]:
        """Record ``accepted`` (and empty it), then mark ``delivery_id`` sending, as one
        commit. Returns how many were recorded and whether the delivery may be sent; if not,
        it is already ``skipped``."""

    def close(self) -> None: ...


def message_writes(engine: Engine, job: Job, owner: str) -> MessageWrites:
    if engine.dialect.name == "postgresql":
        return StatementWrites(engine, job, owner)
    return TransactionWrites(engine, job, owner)


class TransactionWrites:
    """Both writes in one short transaction (SQLite, and any database without DML in WITH)."""

    def __init__(self, engine: Engine, job: Job, owner: str) -> None:
        self.engine = engine
        self.job = job
        self.owner = owner

    def record(self, accepted: Accepted) -> int:
        if not accepted:
            return 0
        with self.engine.begin() as db:
            return ledger.record_accepted(db, self.owner, accepted)

    def claim(self, accepted: Accepted, size: int, lease: timedelta) -> ClaimResult:
        with self.engine.begin() as db:
            recorded = ledger.record_accepted(db, self.owner, accepted)
            return recorded, ledger.claim_batch(db, self.job, self.owner, size, lease)

    def advance(self, accepted: Accepted, delivery_id: int) -> tuple[int, bool]:
        with self.engine.begin() as db:
            recorded = ledger.record_accepted(db, self.owner, accepted)
            return recorded, ledger.mark_sending(db, self.job, self.owner, delivery_id)

    def close(self) -> None:
        pass


class StatementWrites:
    """Both writes in one autocommitted statement on a connection kept for the worker.

    The per-message statement is compiled once per worker and run on the driver's own
    cursor, prepared by the server: it runs once per message, where SQLAlchemy's
    per-execution work is a large share of the sender's CPU. Everything else goes through
    SQLAlchemy as usual.
    """

    def __init__(self, engine: Engine, job: Job, owner: str) -> None:
        self.job = job
        self.owner = owner
        # Autocommit: each statement is committed as it completes, with no BEGIN or COMMIT.
        self.db: Connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        self._advance = _compiled_advance(engine.dialect, tuple(job.eligible))
        self._cursor = self.db.connection.driver_connection.cursor()  # type: ignore[union-attr]

    def record(self, accepted: Accepted) -> int:
        return ledger.record_accepted(self.db, self.owner, accepted)

    def claim(self, accepted: Accepted, size: int, lease: timedelta) -> ClaimResult:
        recorded = ledger.record_accepted(self.db, self.owner, accepted)
        # One statement on PostgreSQL, so the claim is atomic without a transaction.
        return recorded, ledger.claim_batch(self.db, self.job, self.owner, size, lease)

    def advance(self, accepted: Accepted, delivery_id: int) -> tuple[int, bool]:
        if len(accepted) != 1:
            # The first message of a batch (its claim recorded the one before) and the rare
            # case of several accepted: plain statements, committed one by one.
            recorded = ledger.record_accepted(self.db, self.owner, accepted)
            return recorded, ledger.mark_sending(self.db, self.job, self.owner, delivery_id)
        ((sent_id, message_id),) = accepted
        accepted.clear()
        params = self._advance.construct_params(
            {
                "b_id": delivery_id,
                "b_owner": self.owner,
                "b_sent_id": sent_id,
                "b_at": utcnow(),
                "b_message_id": message_id,
            }
        )
        self._cursor.execute(self._advance.string, params, prepare=True)
        marked = self._cursor.rowcount == 1
        if not marked:
            ledger.skip(self.db, self.owner, delivery_id)
        return 1, marked

    def close(self) -> None:
        self._cursor.close()
        self.db.close()


@functools.cache
def _compiled_advance(dialect: Dialect, eligible: tuple[str, ...]) -> Compiled:
    """Compiled once per process: a confirmation email opens writes every few signups."""
    statuses = [literal(status, String()) for status in eligible]
    return ledger.marking(statuses).add_cte(_RECORDED).compile(dialect=dialect)
