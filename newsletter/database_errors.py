"""One line for a database error, saying what to do about it.

The command line prints it after ``Error:`` and the web app logs it. SQLAlchemy's own text
runs to the failed SQL, its parameters and a link, and tells someone who has not yet run
``newsletter db upgrade`` less than these few words.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from alembic.script import ScriptDirectory
from sqlalchemy import Engine
from sqlalchemy.exc import DBAPIError, SQLAlchemyError

from newsletter.db import create_db_engine
from newsletter.migrate import alembic_config, current_revision

__all__ = ["MISSING_SCHEMA", "explain", "schema_missing", "schema_problem"]

MISSING_SCHEMA = "the database has no tables yet; run `newsletter db upgrade` first"

# PostgreSQL's codes for "no such table" and "no such column" (SQLite says so in words).
UNDEFINED_OBJECT_CODES = {"42P01", "42703"}
SQLITE_UNDEFINED_OBJECT = ("no such table", "no such column")
SQLITE_HINTS = {
    "unable to open database file": "its folder must exist and be writable",
    "attempt to write a readonly database": "the file and its folder must be writable",
}


def explain(error: SQLAlchemyError, engine: Engine) -> str:
    """What went wrong with ``engine``'s database, in one line without SQL or passwords."""
    detail = _first_line(error)
    hint = next((text for known, text in SQLITE_HINTS.items() if known in detail), None)
    if hint is not None:
        detail = f"{detail} ({hint})"
    if isinstance(error, DBAPIError) and error.statement is None:
        # It failed while connecting: the address, the server or the file is the problem.
        shown = engine.url.render_as_string(hide_password=True)
        return f"cannot open the database {shown}: {detail}"
    if _names_a_missing_object(error):
        problem = schema_problem(engine)
        if problem is not None:
            return problem
    return f"database error: {detail}"


def schema_missing(engine: Engine) -> bool:
    """True while the database has no schema at all (``newsletter db upgrade`` never ran)."""
    with _observer(engine) as observer:
        return current_revision(observer) is None


def schema_problem(engine: Engine) -> str | None:
    """Why the schema does not fit this version of newsletter, or None when it does (or
    when the database cannot be read to tell)."""
    try:
        with _observer(engine) as observer:
            revision = current_revision(observer)
    except SQLAlchemyError:
        return None
    if revision is None:
        return MISSING_SCHEMA
    scripts = ScriptDirectory.from_config(alembic_config(engine))
    head = scripts.get_current_head()
    if revision == head:
        return None
    if revision in {script.revision for script in scripts.walk_revisions()}:
        return (
            f"the database schema is at revision {revision} and this version of newsletter "
            f"needs {head}; run `newsletter db upgrade` first"
        )
    return (
        f"the database schema is at revision {revision}, which this version of newsletter "
        f"does not know (its newest is {head}); install the newer version that made it"
    )


@contextmanager
def _observer(engine: Engine) -> Iterator[Engine]:
    """An engine of its own whose SQLite reads take no write lock: work that failed may still
    hold one, and waiting for it would hang the very report of the failure."""
    observer = create_db_engine(
        engine.url.render_as_string(hide_password=False), sqlite_immediate=False
    )
    try:
        yield observer
    finally:
        observer.dispose()


def _first_line(error: SQLAlchemyError) -> str:
    original = getattr(error, "orig", None)
    lines = str(original or error).strip().splitlines()
    return lines[0].strip() if lines else type(error).__name__


def _names_a_missing_object(error: SQLAlchemyError) -> bool:
    original = getattr(error, "orig", None)
    if getattr(original, "sqlstate", None) in UNDEFINED_OBJECT_CODES:
        return True
    return str(original).startswith(SQLITE_UNDEFINED_OBJECT)
