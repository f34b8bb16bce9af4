"""Many rows in one INSERT, the way each database takes them fastest.

For the work that writes thousands of rows at a time (a CSV import's batches, their consent
events and suppressions), where adding ORM objects one by one would cost more than the
database does.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Collection
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import chain
from operator import itemgetter
from typing import Any, cast

from sqlalchemy import (
    Column,
    ColumnElement,
    Connection,
    Table,
    any_,
    bindparam,
    func,
    insert,
    select,
)
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Dialect
from sqlalchemy.engine import Row as ResultRow
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session
from sqlalchemy.types import Text

__all__ = ["among", "bulk_insert", "table_of"]


def bulk_insert(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    conflict_key: str | None = None,
    returning: tuple[Any, ...] = (),
) -> list[ResultRow[Any]]:
    """Insert ``rows`` (all with the same keys) in one statement; a row whose
    ``conflict_key`` is already taken is left out (and not returned).

    The rows are converted once by their columns' types and handed to the driver: SQLite
    gets a plain executemany, fast in-process (see :func:`_sqlite_insert`); PostgreSQL gets
    them by COPY (see :func:`_postgresql_copy`). A table whose Python-side defaults are not
    all given goes through SQLAlchemy, which alone fills them in.
    """
    connection = session.connection()
    dialect = connection.dialect
    names = list(rows[0])
    if dialect.name in ("sqlite", "postgresql") and _defaults_given(table, names):
        batch = _Rows(
            table, names, _driver_values(dialect, table, names, rows), conflict_key, returning
        )
        if dialect.name == "postgresql":
            return _postgresql_copy(connection, batch)
        if dialect.paramstyle == "qmark":
            return _sqlite_insert(connection, batch)
    statement: Any
    if dialect.name == "postgresql":
        # With a 1,000-row VALUES list psycopg spent longer preparing each statement than the
        # server took to run it: one short statement over arrays instead.
        arrays = [
            sql_cast(bindparam(f"column_{name}", [row[name] for row in rows], type_=array), array)
            for name, array in ((name, postgresql.ARRAY(table.c[name].type)) for name in names)
        ]
        source = func.unnest(*arrays).table_valued(*names).render_derived()
        statement = postgresql.insert(table).from_select(
            names, select(*(source.c[name] for name in names))
        )
        if conflict_key:
            statement = statement.on_conflict_do_nothing(index_elements=[conflict_key])
        parameters: Any = None
    else:
        if dialect.name == "sqlite" and conflict_key:
            statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=[conflict_key])
        else:
            # Elsewhere a concurrent duplicate makes the batch fail whole, which is reported.
            statement = insert(table)
        parameters = rows
    if returning:
        return list(session.execute(statement.returning(*returning), parameters))
    session.execute(statement, parameters)
    return []


@dataclass(frozen=True)
class _Rows:
    """Rows to insert as the driver takes them: ``values`` holds each row's ``names``."""

    table: Table
    names: list[str]
    values: list[tuple[Any, ...]]
    conflict_key: str | None
    returning: tuple[Any, ...]


def _defaults_given(table: Table, names: list[str]) -> bool:
    """Whether every column with a Python-side default is among ``names`` (only SQLAlchemy
    fills those in; the database's own defaults apply on every path)."""
    given = set(names)
    return all(column.default is None or column.name in given for column in table.c)


def _driver_values(
    dialect: Dialect, table: Table, names: list[str], rows: list[dict[str, Any]]
) -> list[tuple[Any, ...]]:
    """Each row as the driver takes it, converted by its columns' types.

    SQLAlchemy's executemany builds and converts each row's parameters through the compiled
    statement, which cost more than the database's own work for an import's batches. Here
    each row's values are taken in one call, and only the columns whose type converts them
    (times, mostly) are touched, each distinct time once.
    """
    # itemgetter of one name gives the bare value, of several a tuple: always a tuple here.
    take: Callable[[dict[str, Any]], tuple[Any, ...]] = (
        itemgetter(*names) if len(names) > 1 else lambda row: (row[names[0]],)
    )
    converting = [
        (index, process)
        for index, name in enumerate(names)
        if (process := table.c[name].type.dialect_impl(dialect).bind_processor(dialect))
    ]
    if not converting:
        return list(map(take, rows))
    values = [list(take(row)) for row in rows]
    for index, process in converting:
        converted: dict[datetime, Any] = {}
        for value in values:
            given = value[index]
            # A time in UTC equals another only at the same moment (no fold, no zone), so
            # the times a batch repeats (its own "now", dates of consent) convert once.
            if isinstance(given, datetime) and given.tzinfo is UTC:
                if given not in converted:
                    converted[given] = process(given)
                value[index] = converted[given]
            else:
                value[index] = process(given)
    # The drivers' executemany takes tuples.
    return [tuple(value) for value in values]


def _column_list(dialect: Dialect, names: list[str]) -> str:
    return ", ".join(dialect.identifier_preparer.quote(name) for name in names)


def _returned_names(dialect: Dialect, returning: tuple[Any, ...]) -> str:
    quote = dialect.identifier_preparer.quote
    return ", ".join(quote(cast(Column[Any], item.expression).name) for item in returning)


# SQLite's default limit on the parameters of one statement (SQLITE_MAX_VARIABLE_NUMBER).
SQLITE_MAX_PARAMETERS = 32766


def _sqlite_insert(connection: Connection, batch: _Rows) -> list[ResultRow[Any]]:
    """The converted rows handed to the sqlite3 driver: executemany, or multi-row VALUES
    lists where the new rows are returned."""
    dialect = connection.dialect
    quote = dialect.identifier_preparer.quote
    head = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(batch.table)} "
        f"({_column_list(dialect, batch.names)}) VALUES "
    )
    group = f"({', '.join('?' * len(batch.names))})"
    tail = f" ON CONFLICT ({quote(batch.conflict_key)}) DO NOTHING" if batch.conflict_key else ""
    if not batch.returning:
        connection.exec_driver_sql(head + group + tail, batch.values)
        return []
    # sqlite3's executemany returns no rows, so RETURNING needs multi-row VALUES lists.
    back = _returned_names(dialect, batch.returning)
    per_statement = SQLITE_MAX_PARAMETERS // len(batch.names)
    found: list[ResultRow[Any]] = []
    for start in range(0, len(batch.values), per_statement):
        chunk = batch.values[start : start + per_statement]
        statement = f"{head}{', '.join([group] * len(chunk))}{tail} RETURNING {back}"
        found.extend(connection.exec_driver_sql(statement, tuple(chain.from_iterable(chunk))))
    return found


def _postgresql_copy(connection: Connection, batch: _Rows) -> list[ResultRow[Any]]:
    """The converted rows sent by COPY, which psycopg writes in C: turning each column into
    an array for ``unnest`` (in Python) was over half of an import's insert time.

    Rows that need neither a conflict check nor their new ids back are copied straight into
    the table. The others are copied into a temporary staging table of the same columns
    (made once per connection, emptied at each commit), then moved into the table by one
    ``INSERT … SELECT … ON CONFLICT DO NOTHING RETURNING``.
    """
    dialect = connection.dialect
    columns = _column_list(dialect, batch.names)
    target = dialect.identifier_preparer.format_table(batch.table)
    if not batch.conflict_key and not batch.returning:
        _copy(connection, f"{target} ({columns})", batch.values)
        return []
    # One staging table for each table and set of columns.
    digest = hashlib.blake2b(columns.encode(), digest_size=4).hexdigest()
    staging = dialect.identifier_preparer.quote(f"staging_{batch.table.name}_{digest}")
    connection.exec_driver_sql(
        f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} ON COMMIT DELETE ROWS AS "
        f"SELECT {columns} FROM {target} WITH NO DATA"
    )
    _copy(connection, f"{staging} ({columns})", batch.values)
    # Taken out of the staging table as they go in, so a second call in the same
    # transaction starts from an empty one.
    statement = (
        f"WITH staged AS (DELETE FROM {staging} RETURNING {columns}) "
        f"INSERT INTO {target} ({columns}) SELECT {columns} FROM staged"
    )
    if batch.conflict_key:
        statement += (
            f" ON CONFLICT ({dialect.identifier_preparer.quote(batch.conflict_key)}) DO NOTHING"
        )
    if not batch.returning:
        connection.exec_driver_sql(statement)
        return []
    return list(
        connection.exec_driver_sql(
            f"{statement} RETURNING {_returned_names(dialect, batch.returning)}"
        )
    )


def _copy(connection: Connection, into: str, values: list[tuple[Any, ...]]) -> None:
    """COPY ``values`` into ``into`` (a table and its column list) on the connection's own
    transaction; the driver's errors are raised as SQLAlchemy raises those of a statement."""
    statement = f"COPY {into} FROM STDIN"
    driver: Any = connection.connection.driver_connection
    driver_error = connection.dialect.loaded_dbapi.Error
    try:
        with driver.cursor() as cursor, cursor.copy(statement) as copy:
            for row in values:
                copy.write_row(row)
    except driver_error as error:
        raise DBAPIError.instance(
            statement, None, error, driver_error, dialect=connection.dialect
        ) from error


def among(session: Session, column: Any, values: Collection[str]) -> ColumnElement[bool]:
    """``column IN values`` for a batch's thousand keys, as one parameter.

    An IN list of a thousand parameters costs more to render (SQLAlchemy) and to parse
    (psycopg, for each batch anew) than the look-up costs the database. SQLite gets the
    values as a JSON array (``json_each``), PostgreSQL as one text split into an array
    (``string_to_array``); both still look each one up in the column's index.
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        each = func.json_each(
            bindparam(None, json.dumps(list(values), ensure_ascii=False), type_=Text)
        )
        return cast(ColumnElement[bool], column.in_(select(each.table_valued("value").c.value)))
    joined = "\n".join(values)
    # Split at line ends, which no value may hold; nor may one be empty, which would vanish.
    if dialect == "postgresql" and joined.count("\n") == len(values) - 1 and "" not in values:
        parts = func.string_to_array(bindparam(None, joined, type_=Text), "\n")
        return cast(ColumnElement[bool], column == any_(parts))
    return cast(ColumnElement[bool], column.in_(values))


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped class."""
    return cast(Table, model.__table__)
