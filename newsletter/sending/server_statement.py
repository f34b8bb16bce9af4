"""A statement prepared on PostgreSQL and run through libpq itself, so that the caller's
work goes on while the server runs it."""

from __future__ import annotations

import hashlib
import re
import weakref
from collections.abc import Callable, Mapping
from datetime import datetime
from enum import Enum
from typing import Any

import psycopg
from psycopg import generators, pq, waiting
from sqlalchemy.engine.interfaces import Compiled
from sqlalchemy.sql.compiler import SQLCompiler

__all__ = ["ServerStatement"]


class ServerStatement:
    """A statement prepared on the server and run through libpq itself: sent, then
    ``meanwhile`` done while the server runs it and its reply travels, then its result read.
    psycopg's cursor waits for the result before it returns, and its pipeline mode costs
    more per statement than the overlap saves.

    Prepared once per connection, under a name made from its text, at its first run: a
    pooled connection keeps it for the next worker, or the next confirmation email."""

    def __init__(self, driver: psycopg.Connection[Any], compiled: Compiled) -> None:
        self._driver = driver
        order: list[str] = []

        def numbered(match: re.Match[str]) -> str:
            if match[1] not in order:
                order.append(match[1])
            return f"${order.index(match[1]) + 1}"

        self._sql = re.sub(r"%\((\w+)\)s", numbered, compiled.string).replace("%%", "%")
        self._order = tuple(order)
        # The statement's own constants, in text form once; the rest come with each run.
        assert isinstance(compiled, SQLCompiler)
        self._constants = {
            name: _text(bind.effective_value)
            for name, bind in compiled.binds.items()
            if not bind.required
        }
        self.name = b"newsletter_" + hashlib.sha256(self._sql.encode()).hexdigest()[:16].encode()
        self._prepared = False

    def run(self, values: Mapping[str, Any], meanwhile: Callable[[], None]) -> int:
        """Run it with ``values`` for its parameters; the number of rows it changed."""
        pgconn = self._driver.pgconn
        if not self._prepared:
            self._prepare()
        constants = self._constants
        params = [
            _text(values[name]) if name in values else constants[name] for name in self._order
        ]
        pgconn.send_query_prepared(self.name, params)
        try:
            waiting.wait(generators.send(pgconn), pgconn.socket)
            meanwhile()
        finally:
            # Whatever happened meanwhile, the result is read: the connection stays usable.
            results = waiting.wait(generators.fetch_many(pgconn), pgconn.socket)
        for result in results:
            self._check(result)
        return results[-1].command_tuples or 0

    def _prepare(self) -> None:
        """On this connection, unless an earlier user of it did."""
        prepared = _PREPARED.setdefault(self._driver, set())
        if self.name not in prepared:
            self._check(self._driver.pgconn.prepare(self.name, self._sql.encode()))
            prepared.add(self.name)
        self._prepared = True

    def _check(self, result: pq.abc.PGresult) -> None:
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            raise psycopg.errors.error_from_result(result, encoding=self._driver.info.encoding)


#: The statements prepared on each connection, by name.
_PREPARED: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[bytes]] = (
    weakref.WeakKeyDictionary()
)


def _text(value: Any) -> bytes | None:
    """A parameter in PostgreSQL's text form."""
    if value is None:
        return None
    if isinstance(value, Enum):
        value = value.value
    if isinstance(value, datetime):
        return value.isoformat().encode()
    return str(value).encode()
