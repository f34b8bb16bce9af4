"""Many rows in one INSERT, the way each database takes them fastest.

For the work that writes thousands of rows at a time (a CSV import's batches, their consent
events and suppressions), where adding ORM objects one by one would cost more than the
database does.
"""

from __future__ import annotations

from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select
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
    database takes to run it. SQLite gets a plain executemany, which is fast in-process.
    """
    dialect = session.get_bind().dialect.name
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


def table_of(model: type[Any]) -> Table:
    """The Core table of a mapped class."""
    return cast(Table, model.__table__)
