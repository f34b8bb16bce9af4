"""A statement prepared on PostgreSQL and run through libpq itself, so that the caller's
work goes on while the server runs it."""

from __future__ import annotations

import functools
import hashlib
import re
import weakref
from collections.abc import Callable, Mapping
from dataclasses import dataclass
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
        self._text = _in_libpq_form(compiled)
        self._prepared = False

    def run(self, values: Mapping[str, Any], meanwhile: Callable[[], None]) -> int:
        """Run it with ``values`` for its parameters; the number of rows it changed."""
        if not self._prepared:
            self._prepare()
        text = self._text
        params = [
            _text(values[name]) if name in values else text.constants[name] for name in text.order
        ]
        results = self._send(params, meanwhile)
        if _no_longer_prepared(results[-1]):
            # psycopg deallocates every prepared statement of a connection after a ROLLBACK
            # on it (the pool's reset, say) once it has prepared its own: prepared again. The
            # statement did not run, so running it now runs it once.
            _PREPARED.pop(self._driver, None)
            self._prepare()
            results = self._send(params, lambda: None)
        for result in results:
            self._check(result)
        return results[-1].command_tuples or 0

    def _send(
        self, params: list[bytes | None], meanwhile: Callable[[], None]
    ) -> list[pq.abc.PGresult]:
        pgconn = self._driver.pgconn
        pgconn.send_query_prepared(self._text.name, params)
        try:
            waiting.wait(generators.send(pgconn), pgconn.socket)
            meanwhile()
        finally:
            # Whatever happened meanwhile, the result is read: the connection stays usable.
            results: list[pq.abc.PGresult] = waiting.wait(
                generators.fetch_many(pgconn), pgconn.socket
            )
        return results

    def _prepare(self) -> None:
        """On this connection, unless an earlier user of it did."""
        prepared = _PREPARED.setdefault(self._driver, set())
        if self._text.name not in prepared:
            self._check(self._driver.pgconn.prepare(self._text.name, self._text.sql))
            prepared.add(self._text.name)
        self._prepared = True

    def _check(self, result: pq.abc.PGresult) -> None:
        if result.status not in (pq.ExecStatus.COMMAND_OK, pq.ExecStatus.TUPLES_OK):
            raise psycopg.errors.error_from_result(result, encoding=self._driver.info.encoding)


@dataclass(frozen=True)
class _LibpqText:
    """A compiled statement as libpq takes it: numbered parameters, and a name for it."""

    sql: bytes
    name: bytes
    #: The parameters' names in the order of their numbers.
    order: tuple[str, ...]
    #: The statement's own constants, in text form; the rest come with each run.
    constants: dict[str, bytes | None]


@functools.cache
def _in_libpq_form(compiled: Compiled) -> _LibpqText:
    """Once per compiled statement (a confirmation email's writes are made for each batch)."""
    order: list[str] = []

    def numbered(match: re.Match[str]) -> str:
        if match[1] not in order:
            order.append(match[1])
        return f"${order.index(match[1]) + 1}"

    sql = re.sub(r"%\((\w+)\)s", numbered, compiled.string).replace("%%", "%").encode()
    assert isinstance(compiled, SQLCompiler)
    constants = {
        name: _text(bind.effective_value)
        for name, bind in compiled.binds.items()
        if not bind.required
    }
    name = b"newsletter_" + hashlib.sha256(sql).hexdigest()[:16].encode()
    return _LibpqText(sql, name, tuple(order), constants)


#: The statements prepared on each connection, by name.
_PREPARED: weakref.WeakKeyDictionary[psycopg.Connection[Any], set[bytes]] = (
    weakref.WeakKeyDictionary()
)


def _no_longer_prepared(result: pq.abc.PGresult) -> bool:
    """The server answered that the statement's name is not prepared (SQLSTATE 26000)."""
    return (
        result.status == pq.ExecStatus.FATAL_ERROR
        and result.error_field(pq.DiagnosticField.SQLSTATE) == b"26000"
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
