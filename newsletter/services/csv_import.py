"""Importing people from CSV, streamed: a million rows in the memory of a thousand.

The file is read row by row; every row is checked with the form's own rules; rows are written
in batches, each batch one transaction holding the subscribers, their consent events and any
confirmation emails together. A batch is all or nothing, so no one is ever left half imported
(a subscriber without the consent that put them there). If a batch cannot be written the
import stops there: the batches before it stay, and running the same import again carries on,
because people already on the list are skipped.

Addresses seen earlier in the file are remembered in a temporary SQLite file (as keyed hashes,
not addresses), not in memory, which is what keeps memory flat however long the file is.
"""

from __future__ import annotations

import hashlib
import secrets
import sqlite3
import tempfile
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from enum import StrEnum
from pathlib import Path

from sqlalchemy import Engine, select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from newsletter.addresses import key_hashes
from newsletter.db import utcnow
from newsletter.models import (
    ConsentKind,
    DeliveryStatus,
    Subscriber,
    SubscriberStatus,
    SubscriberTopic,
    Suppression,
)
from newsletter.services.bulk import among, bulk_insert, table_of
from newsletter.services.confirmations import Outbox, hand_over_after_commit, queue_confirmation
from newsletter.services.consent import Evidence, record_events
from newsletter.services.csv_rows import Problem, Row
from newsletter.services.errors import ServiceError
from newsletter.services.topics import topic_ids_by_slug
from newsletter.site import Site
from newsletter.validation import InvalidValue

__all__ = [
    "BATCH_SIZE",
    "IMPORT_METHOD",
    "ImportCounts",
    "ImportStatus",
    "ImportStopped",
    "SeenAddresses",
    "SubscriberImport",
]

BATCH_SIZE = 1000
IMPORT_METHOD = "import"
# After this many confirmation emails in a row could not reach the mail server, the rest wait
# in the outbox for `newsletter outbox flush` instead of each waiting for a timeout.
MAIL_FAILURES_BEFORE_GIVING_UP = 3


class ImportStatus(StrEnum):
    ACTIVE = "active"
    PENDING = "pending"


class ImportStopped(ServiceError, RuntimeError):
    """A batch could not be written; it was rolled back whole and the import stopped."""

    def __init__(self, first_line: int, last_line: int, cause: BaseException) -> None:
        reason = str(cause).splitlines()[0] if str(cause) else type(cause).__name__
        super().__init__(f"lines {first_line}-{last_line} could not be written: {reason}")
        self.first_line = first_line
        self.last_line = last_line


class SeenAddresses(AbstractContextManager["SeenAddresses"]):
    """Which addresses came earlier in the file, and on which line, kept on disk.

    In memory they would grow with the file; a temporary SQLite table costs a couple of
    megabytes of cache whatever its size. Keys are stored as keyed hashes, so the temporary
    file holds no address even while it exists.
    """

    def __init__(self) -> None:
        self._folder = tempfile.TemporaryDirectory(prefix="newsletter-import-")
        # Held in memory only: the file alone does not tell which addresses it saw.
        self._salt = secrets.token_bytes(16)
        self._db = sqlite3.connect(Path(self._folder.name) / "seen.db")
        self._db.execute("PRAGMA journal_mode=OFF")
        self._db.execute("PRAGMA synchronous=OFF")
        self._db.execute("CREATE TABLE seen (key BLOB PRIMARY KEY, line INTEGER) WITHOUT ROWID")

    def _hash(self, key: str) -> bytes:
        return hashlib.blake2b(key.encode(), digest_size=16, key=self._salt).digest()

    def first_lines(self, lines: dict[str, int]) -> dict[str, int]:
        """The line each key of ``lines`` first appeared on, for those seen before; the
        others are remembered with their line in ``lines``. (Each key is hashed once.)"""
        hashed = {self._hash(key): key for key in lines}
        added = self._db.executemany(
            "INSERT OR IGNORE INTO seen (key, line) VALUES (?, ?)",
            ((digest, lines[key]) for digest, key in hashed.items()),
        ).rowcount
        found: dict[str, int] = {}
        if added == len(hashed):
            # All new, as most are: no need to look for earlier lines.
            return found
        items = list(hashed)
        for start in range(0, len(items), 500):
            chunk = items[start : start + 500]
            marks = ",".join("?" * len(chunk))
            query = f"SELECT key, line FROM seen WHERE key IN ({marks})"
            for digest, line in self._db.execute(query, chunk):
                # A key kept with another line than this batch's was seen before.
                if line != lines[hashed[digest]]:
                    found[hashed[digest]] = line
        return found

    def __exit__(self, *exc: object) -> None:
        self._db.close()
        self._folder.cleanup()


@dataclass
class ImportCounts:
    """What an import did (or, for a dry run, would do)."""

    rows: int = 0
    imported: Counter[str] = field(default_factory=Counter)
    skipped: int = 0
    rejected: int = 0
    suppressed: int = 0
    emails: Counter[str] = field(default_factory=Counter)

    @property
    def emails_waiting(self) -> int:
        return self.emails[DeliveryStatus.QUEUED]


@dataclass
class _Batch:
    rows: list[Row] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    first_line: int = 0
    last_line: int = 0

    def add(self, item: Row | Problem) -> None:
        if not self.rows and not self.problems:
            self.first_line = item.line
        self.last_line = item.line
        if isinstance(item, Row):
            self.rows.append(item)
        else:
            self.problems.append(item)

    def __len__(self) -> int:
        return len(self.rows) + len(self.problems)


@dataclass
class _Plan:
    """What a batch's checks decided: who is inserted with which status, who is suppressed."""

    people: list[tuple[Row, str]] = field(default_factory=list)
    suppress: dict[str, str] = field(default_factory=dict)


class _Suppressions:
    """The suppression entries covering a batch's rows, read in one query.

    A row is covered by the hash of its own address, or by an older folded hash it shares with
    its look-alikes (see :func:`newsletter.suppressions.suppression_of`).
    """

    def __init__(self, session: Session, rows: list[Row]) -> None:
        self._hashes = {row.key: key_hashes(row.key) for row in rows}
        wanted = {digest for pair in self._hashes.values() for digest in pair}
        self._entries: dict[str, tuple[str, bool]] = {
            digest: (reason, folded)
            for digest, reason, folded in session.execute(
                select(Suppression.email_hash, Suppression.reason, Suppression.folded).where(
                    among(session, Suppression.email_hash, sorted(wanted))
                )
            )
        }

    def own_hash(self, row: Row) -> str:
        """The hash kept for ``row``'s address once it is suppressed."""
        return self._hashes[row.key][0]

    def reason(self, row: Row) -> str | None:
        """Why ``row``'s address is suppressed, or None when it is not."""
        own, folded = self._hashes[row.key]
        if own in self._entries:
            return self._entries[own][0]
        reason, entry_folded = self._entries.get(folded, ("", False))
        return reason if entry_folded else None


class SubscriberImport:
    """Imports rows from a :class:`PeopleCSV` in batches, each committed on its own.

    Unlike other services it commits, one transaction per batch: an import of a million rows
    that stops keeps what it wrote, and running it again carries on from there.

    Active imports record the consent note as each person's ``given`` consent event; pending
    ones record it too (when given) and queue a confirmation email, sent after the batch
    commits through ``outbox``. A dry run checks everything against the database and writes
    nothing.
    """

    def __init__(
        self,
        engine: Engine,
        site: Site,
        *,
        status: ImportStatus,
        consent_note: str | None,
        dry_run: bool = False,
        outbox: Outbox | None = None,
        batch_size: int = BATCH_SIZE,
    ) -> None:
        if status is ImportStatus.ACTIVE and not consent_note:
            raise InvalidValue("an active import needs a consent note")
        self.engine = engine
        self.site = site
        self.status = status
        self.consent_note = consent_note
        self.dry_run = dry_run
        self.outbox = outbox
        self.batch_size = batch_size
        self.counts = ImportCounts()
        self._mail_failures = 0
        self._topics: dict[str, int] = {}

    def run(
        self,
        rows: Iterable[Row | Problem],
        report: Callable[[Problem], None],
        progress: Callable[[], None] | None = None,
    ) -> ImportCounts:
        """Import every row; ``report`` hears of each row not imported, in line order, and
        ``progress`` is called after each batch. Raises :class:`ImportStopped` when a batch
        cannot be written (the batches before it stay committed)."""
        with Session(self.engine) as session:
            self._topics = topic_ids_by_slug(session)
        with SeenAddresses() as seen:
            batch = _Batch()
            for item in rows:
                self.counts.rows += 1
                batch.add(item)
                if len(batch) >= self.batch_size:
                    self._finish(batch, seen, report, progress)
                    batch = _Batch()
            if len(batch):
                self._finish(batch, seen, report, progress)
        return self.counts

    def _finish(
        self,
        batch: _Batch,
        seen: SeenAddresses,
        report: Callable[[Problem], None],
        progress: Callable[[], None] | None,
    ) -> None:
        problems = batch.problems
        fresh = self._drop_repeats(batch.rows, seen, problems)
        delivery_ids: list[int] = []
        if fresh:
            try:
                delivery_ids = self._write(fresh, problems)
            except SQLAlchemyError as error:
                raise ImportStopped(batch.first_line, batch.last_line, error) from error
        self._send(delivery_ids)
        for problem in sorted(problems, key=lambda problem: problem.line):
            if problem.rejected:
                self.counts.rejected += 1
            else:
                self.counts.skipped += 1
            report(problem)
        if progress is not None:
            progress()

    @staticmethod
    def _drop_repeats(rows: list[Row], seen: SeenAddresses, problems: list[Problem]) -> list[Row]:
        first_in_batch: dict[str, int] = {}
        for row in rows:
            first_in_batch.setdefault(row.key, row.line)
        earlier = seen.first_lines(first_in_batch)
        fresh = []
        for row in rows:
            first = earlier.get(row.key, first_in_batch[row.key])
            if first != row.line:
                problems.append(Problem(row.line, f"the same address as line {first}"))
            else:
                fresh.append(row)
        return fresh

    def _write(self, rows: list[Row], problems: list[Problem]) -> list[int]:
        if self.dry_run:
            with Session(self.engine) as session:
                plan = self._plan(session, rows, problems)
            for _row, status in plan.people:
                self.counts.imported[status] += 1
            self.counts.suppressed += len(plan.suppress)
            return []
        delivery_ids: list[int] = []
        with self._transaction(delivery_ids.extend) as session:
            plan = self._plan(session, rows, problems)
            created = self._insert(session, plan, problems)
            self._suppress(session, plan)
            self._queue_confirmations(session, created)
        # Counted only once the batch has committed.
        for status in created.values():
            self.counts.imported[status] += 1
        self.counts.suppressed += len(plan.suppress)
        return delivery_ids

    @contextmanager
    def _transaction(self, committed: Callable[[list[int]], None]) -> Iterator[Session]:
        """One batch's transaction; ``committed`` hears of the confirmation emails it queued
        once it has committed. (On SQLite the engine takes the write lock at BEGIN, so a
        batch that reads and then writes waits for the web app's writes instead of failing.)"""
        with Session(self.engine) as session:
            hand_over_after_commit(session, committed)
            with session.begin():
                yield session

    def _plan(self, session: Session, rows: list[Row], problems: list[Problem]) -> _Plan:
        keys = [row.key for row in rows]
        existing = {
            key: status
            for key, status in session.execute(
                select(Subscriber.email_key, Subscriber.status).where(
                    among(session, Subscriber.email_key, keys)
                )
            )
        }
        suppressed = _Suppressions(session, rows)
        plan = _Plan()
        for row in rows:
            suppressed_as = suppressed.reason(row)
            if row.key in existing:
                reason = f"already on the list ({existing[row.key]})"
                problems.append(Problem(row.line, reason, rejected=False))
            elif row.file_status in (SubscriberStatus.UNSUBSCRIBED, SubscriberStatus.BOUNCED):
                # Someone who left (or whose address bounced) elsewhere is not added, but is
                # remembered so that no later import brings them in by mistake.
                if suppressed_as is None:
                    plan.suppress[suppressed.own_hash(row)] = row.file_status
            elif suppressed_as is not None:
                reason = (
                    f"the address is on the suppression list ({suppressed_as}); "
                    "only a signup through the form can bring it back"
                )
                problems.append(Problem(row.line, reason))
            elif unknown := [slug for slug in row.topics if slug not in self._topics]:
                # Never imported without the topics they chose: the whole row is refused.
                names = ", ".join(unknown)
                reason = f"topics: there is no topic {names} (see `newsletter topics list`)"
                problems.append(Problem(row.line, reason))
            else:
                plan.people.append((row, self._status_for(row)))
        return plan

    def _status_for(self, row: Row) -> str:
        # The file can hold someone back (pending, never confirmed) but never push them on.
        if row.file_status == SubscriberStatus.PENDING:
            return SubscriberStatus.PENDING
        return self.status.value

    def _insert(self, session: Session, plan: _Plan, problems: list[Problem]) -> dict[int, str]:
        """Insert the planned people and their consent events; returns {id: status}."""
        if not plan.people:
            return {}
        now = utcnow()
        # One call for the batch's nonces rather than one a person (each reads the system's
        # random source).
        nonces = secrets.token_hex(8 * len(plan.people))
        inserted = bulk_insert(
            session,
            table_of(Subscriber),
            [
                {
                    "email": row.email,
                    "email_key": row.key,
                    "first_name": row.first_name,
                    "last_name": row.last_name,
                    "status": status,
                    "token_nonce": nonces[16 * index : 16 * index + 16],
                    "created_at": now,
                    "updated_at": now,
                }
                for index, (row, status) in enumerate(plan.people)
            ],
            conflict_key="email_key",
            returning=(Subscriber.id, Subscriber.email_key),
        )
        ids: dict[str, int] = {row.email_key: row.id for row in inserted}
        created: dict[int, str] = {}
        events: list[tuple[int, Evidence, datetime | None]] = []
        # One piece of evidence for each source in the batch, not one a row.
        evidence: dict[str | None, Evidence] = {}
        for row, status in plan.people:
            subscriber_id = ids.get(row.key)
            if subscriber_id is None:
                reason = "already on the list (added while this import ran)"
                problems.append(Problem(row.line, reason, rejected=False))
                continue
            created[subscriber_id] = status
            given = evidence.get(row.source)
            if given is None:
                given = evidence[row.source] = Evidence(
                    IMPORT_METHOD, source_url=row.source, note=self.consent_note
                )
            events.append((subscriber_id, given, row.consented_at or now))
        # Through the same function as every other consent event, in one statement.
        record_events(session, ConsentKind.GIVEN, events)
        choices = [
            {"subscriber_id": ids[row.key], "topic_id": self._topics[slug]}
            for row, _status in plan.people
            if ids.get(row.key) in created
            for slug in row.topics
        ]
        if choices:
            bulk_insert(session, table_of(SubscriberTopic), choices)
        return created

    @staticmethod
    def _suppress(session: Session, plan: _Plan) -> None:
        if not plan.suppress:
            return
        now = utcnow()
        bulk_insert(
            session,
            table_of(Suppression),
            [
                {"email_hash": digest, "reason": reason, "created_at": now}
                for digest, reason in plan.suppress.items()
            ],
            conflict_key="email_hash",
        )

    def _queue_confirmations(self, session: Session, created: dict[int, str]) -> None:
        # Only people this batch added: none has had a confirmation yet.
        for subscriber_id in sorted(created):
            if created[subscriber_id] == SubscriberStatus.PENDING:
                queue_confirmation(session, self.site, subscriber_id, new=True)

    def _send(self, delivery_ids: list[int]) -> None:
        """Send the batch's confirmation emails, now that the batch has committed. After the
        mail server has failed a few batches in a row, the rest wait for ``outbox flush``."""
        if not delivery_ids:
            return
        if self.outbox is None or self._mail_failures >= MAIL_FAILURES_BEFORE_GIVING_UP:
            self.counts.emails[DeliveryStatus.QUEUED] += len(delivery_ids)
            return
        outcome = self.outbox.send_many(delivery_ids)
        for status, number in outcome.items():
            self.counts.emails[status] += number
        waiting = outcome[DeliveryStatus.QUEUED]
        self._mail_failures = self._mail_failures + 1 if waiting == len(delivery_ids) else 0
