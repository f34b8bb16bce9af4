"""The app's database: its engine and session factory, and one session per request or command.

The Flask side of ``newsletter.db``, which stays plain SQLAlchemy so that the layers below the
app never import Flask.
"""

from __future__ import annotations

from flask import Flask, current_app, g
from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from newsletter.db import create_db_engine, readers

__all__ = ["get_engine", "get_reader", "get_session", "init_app", "session_factory"]


def init_app(app: Flask) -> None:
    """Create the engine and session factory for ``app`` and close sessions after each request."""
    engine = create_db_engine(app.config["DATABASE_URL"])
    app.extensions["newsletter.engine"] = engine
    sessions = sessionmaker(engine, expire_on_commit=False)
    app.extensions["newsletter.db"] = sessions
    app.extensions["newsletter.readers"] = readers(sessions)
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
    """A session for one request's reads alone, never its writes (``db.readers``: outside
    the writers' queue)."""
    if "db_reader" not in g:
        reading: sessionmaker[Session] = current_app.extensions["newsletter.readers"]
        g.db_reader = reading()
    session: Session = g.db_reader
    return session


def _close_session(_error: BaseException | None) -> None:
    for name in ("db_session", "db_reader"):
        session: Session | None = g.pop(name, None)
        if session is not None:
            session.close()
