"""The one database write every message needs: record the last accepted message ``sent`` and
mark the next one ``sending``, committed before its SMTP transaction starts.

This runs once per message, so its cost sets the pace of a send. SQLite does it in one
short transaction on the driver's connection, with the statements compiled once, queued
behind other writers on the writers' lock like every transaction of the service. A run's
workers take turns on one connection (``WritesConnection``): SQLite writes one transaction
at a time anyway, and a connection whose database another connection wrote to since its
last transaction throws its whole page cache away and reads each page again (twenty reads
a message with a connection per worker).

PostgreSQL does it in one statement on a worker's own autocommit connection: a
data-modifying CTE records ``sent`` while the main UPDATE marks ``sending``, so a message
costs one round trip to the server instead of four (BEGIN, two UPDATEs, COMMIT). A single
statement is atomic on its own, so nothing is lost against the transaction. Claims go
through the same connection, also as one statement each. While that round trip is under
way the worker composes its next messages (``meanwhile``): the wait for the server, a
third of a worker's time, no longer adds to composing.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import Enum
from typing import TYPE_CHECKING, Any, Protocol, cast

from sqlalchemy import Engine, String, Update, literal
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.engine.interfaces import Compiled

from newsletter.db import utcnow
from newsletter.models import Delivery
from newsletter.sending import ledger
from newsletter.sending.jobs import ClaimedDelivery, Job
from newsletter.sqlite_writers import QueuedWriterConnection

if TYPE_CHECKING:
    import psycopg

__all__ = ["Accepted", "MessageWrites", "WritesConnection", "message_writes", "writes_connection"]

#: Messages the server accepted and not yet recorded: (delivery id, Message-ID).
Accepted = list[tuple[int, str]]
#: How many accepted messages were recorded, and the deliveries newly claimed.
ClaimResult = tuple[int, list[ClaimedDelivery]]

# PostgreSQL runs a data-modifying CTE to completion even when the main statement does not
# read it; the two UPDATEs touch different rows of the same worker's claim.
_RECORDED = ledger.RECORD_SENT.returning(Delivery.id).cte("recorded")


def _nothing() -> None:
    pass


class MessageWrites(Protocol):
    """One worker's writes around each message. Not shared between threads."""

    def record(self, accepted: Accepted) -> int:
        """Record ``accepted`` as sent (and empty it); return how many were recorded."""

    def claim(
        self, accepted: Accepted, size: int, lease: timedelta, only: list[int] | None = None
    ) -> ClaimResult:
        """Record ``accepted`` (and empty it), then lease up to ``size`` queued deliveries
        (of ``only``, if given)."""

    def advance(
        self, accepted: Accepted, delivery_id: int, meanwhile: Callable[[], None] = _nothing
    ) -> tuple[int, bool]:
        """Record ``accepted`` (and empty it), then mark ``delivery_id`` sending, as one
        commit, and run ``meanwhile`` (work that writes nothing): while the database works
        where it can, else after. What ``meanwhile`` raises is raised once the write is made.
        Returns how many were recorded and whether the delivery may be sent; if
        not, it is already ``skipped``."""

    def claim_and_mark(
        self, size: int, lease: timedelta, only: list[int]
    ) -> tuple[list[ClaimedDelivery], bool]:
        """Lease up to ``size`` queued deliveries of ``only`` and mark the first of them
        sending, as one commit (for a batch sent at once, its connection already open).
        Returns them and whether the first may be sent; if not, it is already ``skipped``."""

    def close(self) -> None: ...


class WritesConnection:
    """The SQLite connection of the per-message writes: one worker's own, or taken in turns
    (one transaction each) by the workers of a run that share it."""

    def __init__(self, db: Connection) -> None:
        self.db = db
        self.turn = threading.Lock()

    def close(self) -> None:
        self.db.close()


def writes_connection(engine: Engine) -> WritesConnection | None:
    """A connection for the per-message writes, where the database is SQLite and its
    transactions queue on the writers' lock; None elsewhere (on PostgreSQL each worker has
    its own, see ``StatementWrites``)."""
    if engine.dialect.name != "sqlite":
        return None
    db = engine.connect()
    if not isinstance(db.connection.driver_connection, QueuedWriterConnection):
        db.close()  # an engine that lets the driver begin transactions: the general way
        return None
    return WritesConnection(db)


def message_writes(
    engine: Engine, job: Job, owner: str, shared: WritesConnection | None = None
) -> MessageWrites:
    """One worker's writes: on ``shared`` when given (the caller closes it), else on a
    connection of their own."""
    if shared is not None:
        return DriverWrites(shared, job, owner, owned=False)
    if engine.dialect.name == "postgresql":
        return StatementWrites(engine, job, owner)
    own = writes_connection(engine)
    if own is not None:
        return DriverWrites(own, job, owner, owned=True)
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

    def claim(
        self, accepted: Accepted, size: int, lease: timedelta, only: list[int] | None = None
    ) -> ClaimResult:
        with self.engine.begin() as db:
            recorded = ledger.record_accepted(db, self.owner, accepted)
            return recorded, ledger.claim_batch(db, self.job, self.owner, size, lease, only)

    def advance(
        self, accepted: Accepted, delivery_id: int, meanwhile: Callable[[], None] = _nothing
    ) -> tuple[int, bool]:
        with self.engine.begin() as db:
            recorded = ledger.record_accepted(db, self.owner, accepted)
            marked = ledger.mark_sending(db, self.job, self.owner, delivery_id)
        meanwhile()
        return recorded, marked

    def claim_and_mark(
        self, size: int, lease: timedelta, only: list[int]
    ) -> tuple[list[ClaimedDelivery], bool]:
        with self.engine.begin() as db:
            return _claim_and_mark(db, self.job, self.owner, size, lease, only)

    def close(self) -> None:
        pass


class DriverWrites:
    """SQLite: the per-message transaction on the driver's connection, taking its turn on it.

    The same statements as ``TransactionWrites`` in the same single transaction, compiled once
    and run on the sqlite3 cursor: SQLAlchemy's connection checkout, transaction set-up and
    per-execution work cost more than SQLite's own work for these two small UPDATEs. The
    transaction starts with ``begin_immediate``, so it waits its turn on the writers' lock
    and takes SQLite's write lock at BEGIN, exactly as one begun through the engine does.
    Claims and everything else go through SQLAlchemy on the same connection.
    """

    def __init__(self, writer: WritesConnection, job: Job, owner: str, owned: bool) -> None:
        self.writer = writer
        self.db = writer.db
        self.job = job
        self.owner = owner
        self._owned = owned
        driver = self.db.connection.driver_connection
        assert isinstance(driver, QueuedWriterConnection)
        self._driver = driver
        self._cursor = driver.cursor()
        self._sql = _sqlite_statements(self.db.dialect, tuple(job.eligible))
        self._at = _datetime_param(self.db.dialect)

    def record(self, accepted: Accepted) -> int:
        return self._write(accepted, None)[0]

    def claim(
        self, accepted: Accepted, size: int, lease: timedelta, only: list[int] | None = None
    ) -> ClaimResult:
        with self.writer.turn, self.db.begin():
            recorded = ledger.record_accepted(self.db, self.owner, accepted)
            return recorded, ledger.claim_batch(self.db, self.job, self.owner, size, lease, only)

    def advance(
        self, accepted: Accepted, delivery_id: int, meanwhile: Callable[[], None] = _nothing
    ) -> tuple[int, bool]:
        # SQLite writes in this process, on this core: there is nothing to overlap.
        written = self._write(accepted, delivery_id)
        meanwhile()
        return written

    def claim_and_mark(
        self, size: int, lease: timedelta, only: list[int]
    ) -> tuple[list[ClaimedDelivery], bool]:
        with self.writer.turn, self.db.begin():
            return _claim_and_mark(self.db, self.job, self.owner, size, lease, only)

    def _write(self, accepted: Accepted, delivery_id: int | None) -> tuple[int, bool]:
        """Record ``accepted`` and mark ``delivery_id`` (if any) in one transaction."""
        if not accepted and delivery_id is None:
            return 0, False
        with self.writer.turn:
            self._driver.begin_immediate()
            marked = self._statements(accepted, delivery_id)
        recorded = len(accepted)
        accepted.clear()
        return recorded, marked

    def _statements(self, accepted: Accepted, delivery_id: int | None) -> bool:
        """In the transaction begun: record, mark, commit. Whether the delivery was marked."""
        record, mark, skip = self._sql
        cursor, owner = self._cursor, self.owner
        marked = False
        try:
            if accepted:
                at = self._at(utcnow())
                for sent_id, message_id in accepted:
                    cursor.execute(
                        record.sql,
                        record.fill(
                            {
                                "b_sent_id": sent_id,
                                "b_owner": owner,
                                "b_at": at,
                                "b_message_id": message_id,
                            }
                        ),
                    )
            if delivery_id is not None:
                ids = {"b_id": delivery_id, "b_owner": owner}
                cursor.execute(mark.sql, mark.fill(ids))
                marked = cursor.rowcount == 1
                if not marked:
                    cursor.execute(skip.sql, skip.fill(ids))
            self._driver.commit()
        except BaseException:
            self._driver.rollback()
            raise
        return marked

    def close(self) -> None:
        self._cursor.close()
        if self._owned:
            self.writer.close()


def _claim_and_mark(
    db: Connection, job: Job, owner: str, size: int, lease: timedelta, only: list[int]
) -> tuple[list[ClaimedDelivery], bool]:
    batch = ledger.claim_batch(db, job, owner, size, lease, only)
    return batch, bool(batch) and ledger.mark_sending(db, job, owner, batch[0].id)


@dataclass(frozen=True)
class _Positional:
    """A statement compiled for a driver with positional parameters, its constant
    parameters already in place."""

    sql: str
    template: tuple[Any, ...]
    #: Where each parameter given per execution goes.
    slots: tuple[tuple[int, str], ...]

    @classmethod
    def of(cls, statement: Update, dialect: Dialect, given: tuple[str, ...]) -> _Positional:
        compiled = statement.compile(dialect=dialect)
        names = compiled.positiontup
        assert names is not None, "a positional paramstyle"
        fixed = compiled.construct_params({name: None for name in given})
        # The constants are strings, numbers and NULLs, which need no type processing; the
        # enumerations among them go to the driver as their plain values.
        template = tuple(
            value.value if isinstance(value, Enum) else value
            for value in (fixed[name] for name in names)
        )
        slots = tuple((index, name) for index, name in enumerate(names) if name in given)
        return cls(compiled.string, template, slots)

    def fill(self, values: Mapping[str, Any]) -> list[Any]:
        params = list(self.template)
        for index, name in self.slots:
            params[index] = values[name]
        return params


@functools.cache
def _sqlite_statements(
    dialect: Dialect, eligible: tuple[str, ...]
) -> tuple[_Positional, _Positional, _Positional]:
    """Record sent, mark sending, skip: compiled once per process."""
    statuses = [literal(status, String()) for status in eligible]
    return (
        _Positional.of(
            ledger.RECORD_SENT, dialect, ("b_sent_id", "b_owner", "b_at", "b_message_id")
        ),
        _Positional.of(ledger.marking(statuses), dialect, ("b_id", "b_owner")),
        _Positional.of(ledger.SKIP, dialect, ("b_id", "b_owner")),
    )


def _datetime_param(dialect: Dialect) -> Callable[[datetime], Any]:
    """How ``sent_at`` goes to the driver: as SQLAlchemy would store it."""
    column_type = Delivery.__table__.c.sent_at.type
    process = column_type.dialect_impl(dialect).bind_processor(dialect)
    return process if process is not None else (lambda value: value)


class StatementWrites:
    """Both writes in one autocommitted statement on a connection kept for the worker.

    The per-message statement is compiled once per process and run through libpq, prepared
    by the server (``server_statement``): it runs once per message, where SQLAlchemy's
    per-execution work is a large share of the sender's CPU, and the worker's other work
    goes on while it runs. Everything else goes through SQLAlchemy as usual.
    """

    def __init__(self, engine: Engine, job: Job, owner: str) -> None:
        self.job = job
        self.owner = owner
        # Autocommit: each statement is committed as it completes, with no BEGIN or COMMIT.
        self.db: Connection = engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        # Imported here: psycopg is loaded only where PostgreSQL is used (9 MiB).
        from newsletter.sending.server_statement import ServerStatement

        driver = cast("psycopg.Connection[Any]", self.db.connection.driver_connection)
        self._advance = ServerStatement(
            driver, _compiled_advance(engine.dialect, tuple(job.eligible))
        )

    def record(self, accepted: Accepted) -> int:
        return ledger.record_accepted(self.db, self.owner, accepted)

    def claim(
        self, accepted: Accepted, size: int, lease: timedelta, only: list[int] | None = None
    ) -> ClaimResult:
        recorded = ledger.record_accepted(self.db, self.owner, accepted)
        # One statement on PostgreSQL, so the claim is atomic without a transaction.
        return recorded, ledger.claim_batch(self.db, self.job, self.owner, size, lease, only)

    def claim_and_mark(
        self, size: int, lease: timedelta, only: list[int]
    ) -> tuple[list[ClaimedDelivery], bool]:
        return ledger.claim_and_mark_at_once(self.db, self.job, self.owner, size, lease, only)

    def advance(
        self, accepted: Accepted, delivery_id: int, meanwhile: Callable[[], None] = _nothing
    ) -> tuple[int, bool]:
        if len(accepted) != 1:
            # The first message of a batch (its claim recorded the one before) and the rare
            # case of several accepted: plain statements, committed one by one.
            recorded = ledger.record_accepted(self.db, self.owner, accepted)
            marked = ledger.mark_sending(self.db, self.job, self.owner, delivery_id)
            meanwhile()
            return recorded, marked
        ((sent_id, message_id),) = accepted
        accepted.clear()
        marked = (
            self._advance.run(
                {
                    "b_id": delivery_id,
                    "b_owner": self.owner,
                    "b_sent_id": sent_id,
                    "b_at": utcnow(),
                    "b_message_id": message_id,
                },
                meanwhile,
            )
            == 1
        )
        if not marked:
            ledger.skip(self.db, self.owner, delivery_id)
        return 1, marked

    def close(self) -> None:
        self.db.close()


@functools.cache
def _compiled_advance(dialect: Dialect, eligible: tuple[str, ...]) -> Compiled:
    """Compiled once per process: a confirmation email opens writes every few signups."""
    statuses = [literal(status, String()) for status in eligible]
    return ledger.marking(statuses).add_cte(_RECORDED).compile(dialect=dialect)
