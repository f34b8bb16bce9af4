"""The app's database: its engine and session factory, and one session per request or command.

The Flask side of ``newsletter.db``, which stays plain SQLAlchemy so that the layers below the
app never import Flask.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import create_db_engine

__all__ = ["get_engine", "get_reader", "get_session", "init_app", "session_factory"]


def init_app(app: Flask) -> None:
    """Create the engine and session factory for ``app`` and close sessions after each request."""
    engine = create_db_engine(app.config["DATABASE_URL"])
    app.extensions["newsletter.engine"] = engine
    app.extensions["newsletter.db"] = sessionmaker(engine, expire_on_commit=False)
    # PostgreSQL reads what is committed, statement by statement, with no BEGIN and ROLLBACK
    # around them (two round trips); SQLite's reads stay in the request's session, whose
    # transactions queue on the writers' lock.
    if engine.dialect.name == "postgresql":
        readers = engine.execution_options(isolation_level="AUTOCOMMIT")
        app.extensions["newsletter.readers"] = sessionmaker(readers, expire_on_commit=False)
    app.teardown_appcontext(_close_session)


def get_engine(app: Flask | None = None) -> Engine:
    """The app's engine."""
    engine: Engine = (app or current_app).extensions["newsletter.engine"]
    return engine


def session_factory(app: Flask | None = None) -> sessionmaker[Session]:
    """The app's session factory (for code that manages its own transactions)."""
    factory: sessionmaker[Session] = (app or current_app).extensions["newsletter.db"]
    return factory


def get_session() -> Session:
    """The session of the current request or command, opened on first use."""
    if "db_session" not in g:
        g.db_session = session_factory()()
    session: Session = g.db_session
    return session


def get_reader() -> Session:
    """A session for one request's reads alone (never its writes): on PostgreSQL outside any
    transaction, each statement seeing what is committed; elsewhere the request's session."""
    readers: sessionmaker[Session] | None = current_app.extensions.get("newsletter.readers")
    if readers is None:
        return get_session()
    if "db_reader" not in g:
        g.db_reader = readers()
    session: Session = g.db_reader
    return session


def _close_session(_error: BaseException | None) -> None:
    for name in ("db_session", "db_reader"):
        session: Session | None = g.pop(name, None)
        if session is not None:
            session.close()
