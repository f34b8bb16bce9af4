"""Many rows in one INSERT, the way each database takes them fastest.

For the work that writes thousands of rows at a time (a CSV import's batches, their consent
events and suppressions), where adding ORM objects one by one would cost more than the
database does.
"""

from __future__ import annotations

from itertools import chain
from typing import Any, cast

from sqlalchemy import Column, Table, bindparam, func, insert, select
from sqlalchemy import cast as sql_cast
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Row as ResultRow
from sqlalchemy.orm import Session

__all__ = ["bulk_insert", "table_of"]


def bulk_insert(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    conflict_key: str | None = None,
    returning: tuple[Any, ...] = (),
) -> list[ResultRow[Any]]:
    """Insert ``rows`` (all with the same keys) in one statement; a row whose
    ``conflict_key`` is already taken is left out (and not returned).

    PostgreSQL gets ``INSERT … SELECT FROM unnest(arrays)``: one short statement whatever the
    batch size, where a multi-row VALUES list would cost psycopg more to prepare than the
    database takes to run it. SQLite gets a plain executemany, which is fast in-process, on
    the driver (see :func:`_sqlite_insert`).
    """
    dialect = session.get_bind().dialect.name
    if dialect == "sqlite":
        done = _sqlite_insert(session, table, rows, conflict_key, returning)
        if done is not None:
            return done
    names = list(rows[0])
    statement: Any
    if dialect == "postgresql":
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
        if dialect == "sqlite" and conflict_key:
            statement = sqlite.insert(table).on_conflict_do_nothing(index_elements=[conflict_key])
        else:
            # Elsewhere a concurrent duplicate makes the batch fail whole, which is reported.
            statement = insert(table)
        parameters = rows
    if returning:
        return list(session.execute(statement.returning(*returning), parameters))
    session.execute(statement, parameters)
    return []


# SQLite's default limit on the parameters of one statement (SQLITE_MAX_VARIABLE_NUMBER).
SQLITE_MAX_PARAMETERS = 32766


def _sqlite_insert(
    session: Session,
    table: Table,
    rows: list[dict[str, Any]],
    conflict_key: str | None,
    returning: tuple[Any, ...],
) -> list[ResultRow[Any]] | None:
    """The rows converted once by each column's type and handed to the sqlite3 driver.

    SQLAlchemy's executemany builds and converts each row's parameters through the compiled
    statement, which cost more than SQLite's own work for an import's batches. Returns None,
    leaving it to SQLAlchemy, when a column with a Python-side default is not given (only
    SQLAlchemy fills those in) or the driver takes another parameter style.
    """
    names = list(rows[0])
    given = set(names)
    bind = session.get_bind()
    dialect = bind.dialect
    if dialect.paramstyle != "qmark" or any(
        column.default is not None and column.name not in given for column in table.c
    ):
        return None
    processors = [
        (name, table.c[name].type.dialect_impl(dialect).bind_processor(dialect)) for name in names
    ]
    values = [
        tuple(row[name] if process is None else process(row[name]) for name, process in processors)
        for row in rows
    ]
    quote = dialect.identifier_preparer.quote
    head = (
        f"INSERT INTO {dialect.identifier_preparer.format_table(table)} "
        f"({', '.join(quote(name) for name in names)}) VALUES "
    )
    group = f"({', '.join('?' * len(names))})"
    tail = f" ON CONFLICT ({quote(conflict_key)}) DO NOTHING" if conflict_key else ""
    connection = session.connection()
    if not returning:
        connection.exec_driver_sql(head + group + tail, values)
        return []
    # sqlite3's executemany returns no rows, so RETURNING needs multi-row VALUES lists.
    back = ", ".join(quote(cast(Column[Any], item.expression).name) for item in returning)
    per_statement = SQLITE_MAX_PARAMETERS // len(names)
    found: list[ResultRow[Any]] = []
    for start in range(0, len(values), per_statement):
        chunk = values[start : start + per_statement]
        statement = f"{head}{', '.join([group] * len(chunk))}{tail} RETURNING {back}"
        found.extend(connection.exec_driver_sql(statement, tuple(chain.from_iterable(chunk))))
    return found


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped class."""
    return cast(Table, model.__table__)
