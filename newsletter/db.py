"""Database: engine set-up for SQLite and PostgreSQL, the declarative base, UTC times.

Plain SQLAlchemy: the app's engine and request sessions are in ``newsletter.app_db``.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import CursorResult, DateTime, Engine, MetaData, Result, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DisconnectionError
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

from newsletter.sqlite_writers import QueuedWriterConnection

__all__ = [
    "MAX_ID",
    "Base",
    "UTCDateTime",
    "create_db_engine",
    "readers",
    "rowcount",
    "utcnow",
]

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}
SQLITE_BUSY_TIMEOUT_MS = 30_000
# A send keeps one connection per worker (at most 64, `digest send --workers`) for its
# per-message writes, and a worker briefly takes a second one to record a failure; the pool
# lets that many be open beyond its usual few (it opens them only when they are needed).
POOL_OVERFLOW = 2 * 64 + 8
# A PostgreSQL connection back from use within this long is taken as alive; one idle longer
# is checked first (a round trip), and replaced if the server closed it meanwhile.
PING_AFTER_IDLE_SECONDS = 1.0
# The execution option of SQLite's read-only sessions (``readers``).
READS_ONLY = "newsletter_reads_only"
# The largest id an Integer primary key holds on every database we run on (PostgreSQL's
# INTEGER; SQLite's goes further). A number past it names no row, and handed to a query it
# fails inside the driver instead of finding nothing, so callers check it first.
MAX_ID = 2**31 - 1


def utcnow() -> datetime:
    """The current time, timezone-aware in UTC."""
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """Stores UTC and always hands back aware datetimes, on SQLite too (which keeps no zone)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def bind_processor(self, dialect: Any) -> Any:
        """The usual conversion, remembering the last value: a batch insert of thousands of
        rows (an import) passes the same moment for every row, and converting it was a tenth
        of the import's time."""
        process = super().bind_processor(dialect)
        if process is None:
            return None
        # One (value, result) pair, replaced whole, so threads sharing it never see a mix.
        last: list[tuple[Any, Any]] = [(object(), None)]

        def remembering(value: Any) -> Any:
            seen, result = last[0]
            if value is seen:
                return result
            result = process(value)
            last[0] = (value, result)
            return result

        return remembering

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime()}


def rowcount(result: Result[Any]) -> int:
    """Rows matched by an UPDATE or DELETE (how a conditional UPDATE tells who won)."""
    return cast(CursorResult[Any], result).rowcount


def create_db_engine(url: str, *, sqlite_immediate: bool = True, **options: Any) -> Engine:
    """An engine with the pragmas SQLite needs to serve several threads and processes.

    ``sqlite_immediate=False`` leaves SQLite's driver to open transactions itself, at the
    first write: reads then hold no lock and no snapshot. It suits an observer (tests) that
    looks at the database between other parts' writes, not the service's own work.
    """
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        connect_args: dict[str, Any] = {"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000}
        if sqlite_immediate:
            connect_args["factory"] = QueuedWriterConnection
        options.setdefault("connect_args", connect_args)
        if parsed.database not in (None, "", ":memory:"):  # a file: a pool of connections
            options.setdefault("max_overflow", POOL_OVERFLOW)
        engine = create_engine(parsed, **options)
        _configure_sqlite(engine, take_write_lock_at_begin=sqlite_immediate)
        return engine
    options.setdefault("max_overflow", POOL_OVERFLOW)
    engine = create_engine(parsed, **options)
    if not options.get("pool_pre_ping"):
        _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def readers(sessions: sessionmaker[Session]) -> sessionmaker[Session]:
    """Sessions for reads alone, never for writes. On PostgreSQL outside any transaction
    (autocommit: each statement sees what is committed, with no BEGIN and ROLLBACK round
    trips around it); on SQLite in a deferred transaction that does not queue on the
    writers' lock (a read snapshot)."""
    engine: Engine = sessions.kw["bind"]
    if engine.dialect.name == "postgresql":
        reading = engine.execution_options(isolation_level="AUTOCOMMIT")
    else:
        reading = engine.execution_options(**{READS_ONLY: True})
    return sessionmaker(reading, expire_on_commit=False)


def _ping_when_idle(engine: Engine, idle: float) -> None:
    """Check a pooled connection on checkout only when it has been idle ``idle`` seconds.

    SQLAlchemy's ``pool_pre_ping`` checks every checkout, a round trip each: five of a
    signup's twenty-two. A connection used a moment ago is alive but for a server restart in
    that moment; a restart's first failed statement makes the pool drop every connection.
    """

    @event.listens_for(engine, "connect")
    def _connected(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkin")
    def _returned(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _taken(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is not None and time.monotonic() - since < idle:
            return
        dialect = engine.dialect
        try:
            alive = dialect.do_ping(dbapi_connection)
        except dialect.loaded_dbapi.Error as error:
            if not dialect.is_disconnect(error, dbapi_connection, None):
                raise
            alive = False
        if not alive:
            # The pool discards this connection and hands out another.
            raise DisconnectionError("the database server closed this connection")


def _configure_sqlite(engine: Engine, take_write_lock_at_begin: bool) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        if take_write_lock_at_begin:
            # Let the begin event below issue BEGIN (the driver would defer it to the first
            # write).
            dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    if take_write_lock_at_begin:

        @event.listens_for(engine, "begin")
        def _on_begin(connection: Any) -> None:
            if connection.get_execution_options().get(READS_ONLY):
                # A snapshot for reads alone (``readers``): writers neither wait for it nor
                # make it wait, in WAL mode.
                connection.exec_driver_sql("BEGIN")
                return
            # Take the write lock up front: a deferred transaction that reads and then writes
            # fails at once with SQLITE_BUSY (no waiting) when another connection wrote in
            # between.
            driver = connection.connection.driver_connection
            if isinstance(driver, QueuedWriterConnection):
                driver.begin_immediate()  # waits its turn behind other writers first
            else:
                connection.exec_driver_sql("BEGIN IMMEDIATE")
