"""The sender: worker threads that claim deliveries, send them over reused SMTP connections
and record each outcome as soon as the server answers.

A run ends when every delivery of the job is final (``sent``, ``failed``, ``skipped``,
``unknown``), when a run of consecutive errors of the server (refused or lost connections,
messages it never answered) trips the threshold, or when it is asked to stop (Ctrl-C). Rows
claimed but not yet attempted are given back on a stop; rows left ``sending`` by a crash
become ``unknown`` once their lease runs out.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from enum import Enum

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from newsletter.cpus import current_cpu, keep_to
from newsletter.db import utcnow
from newsletter.mail.transports import (
    Connection,
    ConnectionFailure,
    PermanentFailure,
    SendError,
    TemporaryFailure,
    Transport,
    UncertainDelivery,
)
from newsletter.models import Delivery, DeliveryStatus, Subscriber
from newsletter.sending import ledger
from newsletter.sending.composer import Composer
from newsletter.sending.jobs import ClaimedDelivery, Job, Skip
from newsletter.sending.message_writes import (
    Accepted,
    MessageWrites,
    WritesConnection,
    message_writes,
    writes_connection,
)
from newsletter.sending.ratelimit import TokenBucket
from newsletter.suppressions import record_hard_bounce

__all__ = ["Outcome", "RunResult", "SendOptions", "Sender"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class SendOptions:
    workers: int = 4
    batch: int = 100
    rate: float | None = None
    max_errors: int = 10
    lease: timedelta = timedelta(seconds=30)
    backoff: ledger.Backoff = field(default_factory=ledger.Backoff)
    #: How long to wait between looks when other senders hold the remaining deliveries.
    poll: float = 1.0


class Outcome(Enum):
    COMPLETE = 0
    FAILED = 1
    TOO_MANY_ERRORS = 2
    INTERRUPTED = 130


@dataclass
class RunResult:
    outcome: Outcome
    counts: Counter[str]
    seconds: float
    message: str = ""

    @property
    def rate(self) -> float:
        return self.counts[DeliveryStatus.SENT] / self.seconds if self.seconds > 0 else 0.0


class Sender:
    """Runs one job to completion (or until stopped) with ``options.workers`` threads."""

    def __init__(
        self,
        sessions: sessionmaker[Session],
        transport: Transport,
        sender_address: str,
        job: Job,
        options: SendOptions | None = None,
        notice: Callable[[str], None] | None = None,
        return_path: Callable[[int], str] | None = None,
    ) -> None:
        self.sessions = sessions
        self.engine: Engine = sessions.kw["bind"]
        self.transport = transport
        self.sender_address = sender_address
        # The envelope sender of each delivery's message (a VERP address names the delivery,
        # so a bounce finds its way back); the sender's own address by default.
        self.return_path = return_path or (lambda _delivery_id: sender_address)
        self.job = job
        self.options = options or SendOptions()
        self.owner = ledger.sender_id()
        self.notice = notice or (lambda text: log.info("%s", text))
        self.counts: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._cpu: frozenset[int] = frozenset()
        self._shared: WritesConnection | None = None
        self._errors = 0
        self._tripped: str | None = None
        self._bucket = TokenBucket(self.options.rate) if self.options.rate else None
        self._last_wait_notice = ""
        self._interrupted = False
        self._failure: str | None = None

    # -- control -------------------------------------------------------------------------

    def stop(self) -> None:
        """Stop claiming; messages in flight finish and are recorded."""
        self._stop.set()

    @property
    def stopping(self) -> bool:
        return self._stop.is_set()

    # -- the run -------------------------------------------------------------------------

    def prepare(self) -> None:
        """Take back what a crashed run left behind."""
        now = utcnow()
        with self.engine.begin() as db:
            ledger.expire_dead_claims(db, self.job, now)
            lost = ledger.take_back_expired(db, self.job, now)
        if lost:
            self.notice(
                f"{lost} deliveries were being sent when an earlier run stopped; "
                "they are marked unknown and will not be resent (see --resend-unknown)"
            )

    def run(self) -> RunResult:
        started = time.monotonic()
        self.prepare()
        # The workers share one CPU, the one the run started on (see newsletter.cpus).
        self._cpu = current_cpu()
        renewer = threading.Thread(target=self._renew_leases, name="lease", daemon=True)
        renewer.start()
        # The workers take turns on one SQLite connection (see sending.message_writes).
        self._shared = writes_connection(self.engine)
        workers = [
            threading.Thread(target=self._work, name=f"sender-{n}", daemon=True)
            for n in range(self.options.workers)
        ]
        try:
            for worker in workers:
                worker.start()
            for worker in workers:
                # Join in slices so the main thread stays responsive to Ctrl-C.
                while worker.is_alive():
                    worker.join(timeout=0.2)
        finally:
            self._stop.set()
            renewer.join(timeout=5)
            if self._shared is not None and not any(w.is_alive() for w in workers):
                self._shared.close()
        seconds = time.monotonic() - started
        if self._failure:
            return RunResult(Outcome.FAILED, self.counts, seconds, self._failure)
        if self._tripped:
            return RunResult(Outcome.TOO_MANY_ERRORS, self.counts, seconds, self._tripped)
        if self._interrupted:
            return RunResult(Outcome.INTERRUPTED, self.counts, seconds, "stopped on request")
        return RunResult(Outcome.COMPLETE, self.counts, seconds)

    def interrupt(self) -> None:
        """Ctrl-C: finish what is in flight, give back the rest, report."""
        self._interrupted = True
        self.stop()

    def send_now(
        self, delivery_ids: list[int], connection: Connection | None = None
    ) -> Counter[str]:
        """Send these deliveries at once on one connection (a confirmation after a signup):
        ``connection`` if given (the caller keeps it open for more), else a new one."""
        writes = message_writes(self.engine, self.job, self.owner)
        own_connection = connection is None
        try:
            # The first delivery is marked ``sending`` with its claim: one commit fewer a
            # batch, on SQLite one turn fewer on the writers' lock. A transport that connects
            # at once does so first; one that cannot reach its server at the first message
            # puts it back in the queue untried, as any other.
            if connection is None:
                connection = self.transport.connect()
            first_marked: bool | None = None
            if self._bucket is None:
                batch, first_marked = writes.claim_and_mark(
                    len(delivery_ids), self.options.lease, delivery_ids
                )
            else:  # the rate limit is waited for before a delivery is marked
                _, batch = writes.claim([], len(delivery_ids), self.options.lease, delivery_ids)
            composer = Composer(self.job)
            accepted: Accepted = []
            for index, delivery in enumerate(batch):
                marked = first_marked if index == 0 else None
                if self.stopping and marked is None:
                    # The mail server keeps failing: leave the rest queued for later.
                    self._give_back([d.id for d in batch[index:]], accepted)
                    break
                self._deliver(connection, writes, composer, delivery, accepted, marked=marked)
            self._note_recorded(writes.record(accepted))
        finally:
            writes.close()
            if own_connection and connection is not None:
                connection.close()
        return self.counts

    def _renew_leases(self) -> None:
        interval = max(self.options.lease.total_seconds() / 3, 0.2)
        while not self._stop.wait(interval):
            try:
                with self.engine.begin() as db:
                    ledger.renew(db, self.owner, self.options.lease)
            except Exception:
                # A failed renewal only shortens the lease; the next one may succeed.
                log.warning("could not renew the send lease", exc_info=True)

    def _work(self) -> None:
        keep_to(self._cpu)
        try:
            self._work_until_done()
        except Exception as error:
            # A worker that cannot go on (database gone, say) stops the whole run loudly;
            # whatever it had claimed comes back when its lease runs out.
            log.exception("sending stopped by an unexpected error")
            with self._lock:
                self._failure = self._failure or f"stopped by an unexpected error: {error}"
            self._stop.set()

    def _work_until_done(self) -> None:
        connection = self.transport.connect()
        writes = message_writes(self.engine, self.job, self.owner, self._shared)
        composer = Composer(self.job)
        accepted: Accepted = []
        try:
            while not self.stopping:
                recorded, batch = writes.claim(accepted, self.options.batch, self.options.lease)
                self._note_recorded(recorded)
                if not batch:
                    if not self._wait_for_more():
                        return
                    continue
                for index, delivery in enumerate(batch):
                    if self.stopping:
                        self._give_back([d.id for d in batch[index:]], accepted)
                        return
                    following = batch[index + 1 : index + 1 + composer.depth]
                    self._deliver(connection, writes, composer, delivery, accepted, following)
        finally:
            try:
                self._note_recorded(writes.record(accepted))
            finally:
                writes.close()
                connection.close()

    def _note_recorded(self, recorded: int) -> None:
        if recorded:
            with self._lock:
                self._errors = 0
                self.counts[DeliveryStatus.SENT] += recorded

    def _give_back(self, ids: list[int], accepted: Accepted) -> None:
        with self.engine.begin() as db:
            self._note_recorded(ledger.record_accepted(db, self.owner, accepted))
            ledger.release(db, self.owner, ids)

    def _wait_for_more(self) -> bool:
        """Nothing claimable now: finish, or wait for retries and other senders' leases."""
        with self.engine.connect() as db:
            waiting = ledger.waiting_summary(db, self.job, self.owner)
        if waiting.open == 0:
            return False
        if waiting.held_by_others:
            until = waiting.next_claimable_at
            text = f"waiting for another sender's claim on {waiting.held_by_others} deliveries" + (
                f" (lease ends {until:%H:%M:%S} UTC)" if until else ""
            )
            with self._lock:
                if text != self._last_wait_notice:
                    self._last_wait_notice = text
                    self.notice(text)
        # While this run's own threads finish their batches, look again soon.
        pause = self.options.poll if not waiting.held_by_me else min(self.options.poll, 0.05)
        if waiting.next_claimable_at is not None:
            ahead = (waiting.next_claimable_at - utcnow()).total_seconds()
            pause = min(max(ahead, 0.05), pause)
        self._stop.wait(pause)
        now = utcnow()
        with self.engine.begin() as db:
            ledger.expire_dead_claims(db, self.job, now)
            ledger.take_back_expired(db, self.job, now)
        return True

    # -- one message ---------------------------------------------------------------------

    def _deliver(
        self,
        connection: Connection,
        writes: MessageWrites,
        composer: Composer,
        delivery: ClaimedDelivery,
        accepted: Accepted,
        following: Sequence[ClaimedDelivery] = (),
        marked: bool | None = None,
    ) -> None:
        """Send ``delivery``, the messages of ``following`` (the next of the batch) composed
        before it goes. ``marked`` says whether it was marked ``sending`` with its claim;
        None when it is marked here."""
        # The message composed ahead is taken before the following ones are composed while
        # the database marks this one (composing marks nothing).
        composed = composer.take(delivery)
        if marked is None:
            marked = self._mark(
                writes, delivery, accepted, meanwhile=lambda: composer.compose_ahead(following)
            )
            if marked is None:
                return
        else:
            composer.compose_ahead(following)
        if not marked:
            self._count(DeliveryStatus.SKIPPED)
            return
        try:
            message = composed.result()
        except SQLAlchemyError:
            raise  # the database, not the message: the worker cannot go on
        except Exception as error:
            # One person's data (an address no domain can have, say) must not stop the run.
            self._record_unbuilt(delivery, error)
            return
        if message is None or isinstance(message, Skip):
            reason = message.reason if message is not None else None
            with self.engine.begin() as db:
                ledger.skip(db, self.owner, delivery.id, reason)
            self._count(DeliveryStatus.SKIPPED)
            return
        try:
            # A signed message is finished here, its signatures asked for when it was composed.
            data = message.data
        except Exception as error:
            self._record_unbuilt(delivery, error)
            return
        try:
            connection.send(data, self.return_path(delivery.id), [delivery.person.email])
        except SendError as error:
            self._record_failure(delivery, error)
            return
        accepted.append((delivery.id, message.message_id))

    def _mark(
        self,
        writes: MessageWrites,
        delivery: ClaimedDelivery,
        accepted: Accepted,
        meanwhile: Callable[[], None],
    ) -> bool | None:
        """Mark ``delivery`` sending (recording ``accepted`` in the same commit), doing
        ``meanwhile`` while the database works: whether it may be sent, or None when the run
        stopped while it waited for the rate limit."""
        if self._bucket is not None:
            # Wait for the rate limit before marking anything: a crash while waiting must not
            # leave a message marked as being sent, or one sent but not recorded.
            self._note_recorded(writes.record(accepted))
            if not self._bucket.take(self._stop):
                with self.engine.begin() as db:
                    ledger.release(db, self.owner, [delivery.id])
                return None
        recorded, marked = writes.advance(accepted, delivery.id, meanwhile)
        self._note_recorded(recorded)
        return marked

    def _record_unbuilt(self, delivery: ClaimedDelivery, error: Exception) -> None:
        reason = f"could not build the message: {str(error) or type(error).__name__}"
        # The reason may quote part of an address, so the log names only the kind of error.
        log.warning(
            "delivery %s: could not build the message (%s); the reason is in its record",
            delivery.id,
            type(error).__name__,
        )
        with self.engine.begin() as db:
            ledger.resolve(db, self.owner, delivery.id, DeliveryStatus.FAILED, error=reason)
        self._count(DeliveryStatus.FAILED)

    def _record_failure(self, delivery: ClaimedDelivery, error: SendError) -> None:
        with self.sessions.begin() as session:
            status, retry_at = self._classify(session, delivery.id, error)
            ledger.resolve(
                session,
                self.owner,
                delivery.id,
                status,
                error=str(error),
                retry_at=retry_at,
                # Nothing reached the server, so the try does not count against the message.
                uncount_attempt=isinstance(error, ConnectionFailure),
            )
            if isinstance(error, PermanentFailure) and error.hard_bounce:
                subscriber = session.get(Subscriber, delivery.person.id)
                if subscriber is not None:
                    record_hard_bounce(session, subscriber)
        if status != DeliveryStatus.QUEUED:
            self._count(status)
        self._note_error(error)

    def _classify(
        self, session: Session, delivery_id: int, error: SendError
    ) -> tuple[DeliveryStatus, datetime | None]:
        """The state a failed try leaves the delivery in, and when to try again."""
        if isinstance(error, ConnectionFailure):
            return DeliveryStatus.QUEUED, None
        if isinstance(error, UncertainDelivery):
            return DeliveryStatus.UNKNOWN, None
        if isinstance(error, TemporaryFailure):
            attempts = session.get_one(Delivery, delivery_id).attempts
            if attempts < self.options.backoff.attempts:
                return DeliveryStatus.QUEUED, utcnow() + self.options.backoff.delay(attempts)
        return DeliveryStatus.FAILED, None

    def _note_error(self, error: SendError) -> None:
        """Errors of the server in a row stop the run: it is down, refusing us, or no longer
        answering. A message that got no answer in time counts as much as a refused
        connection: going on would only leave one ``unknown`` delivery per timeout."""
        with self._lock:
            if isinstance(error, ConnectionFailure | UncertainDelivery):
                self._errors += 1
            elif isinstance(error, TemporaryFailure | PermanentFailure):
                self._errors = 0
            if self._errors >= self.options.max_errors and not self._tripped:
                self._tripped = (
                    f"Stopped: the mail server failed {self._errors} times in a row "
                    f"(last: {error}). The deliveries not yet tried stay queued. "
                    "Run the command again to resume."
                )
                self._stop.set()
        if isinstance(error, ConnectionFailure) and not self.stopping:
            # Give a restarting server a moment instead of spinning through the queue.
            self._stop.wait(min(0.1 * self._errors, 2.0))

    def _count(self, status: str) -> None:
        with self._lock:
            self.counts[status] += 1
