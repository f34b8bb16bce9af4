"""A send's workers are kept to one CPU, and know the others: the affinity calls themselves
and a real send's worker threads (the signing process on the others: test_signing_process)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

from flask import Flask

from newsletter.cpus import current_cpu, keep_to, other_cpus
from newsletter.mail.transports import Connection, Transport
from newsletter.models import DeliveryStatus
from newsletter.sending.engine import Outcome
from tests.sending_support import queued_digest, sender
from tests.support.smtp import SMTPServer

ALLOWED = frozenset(os.sched_getaffinity(0))


def in_thread(call: Callable[[], Any]) -> Any:
    """``call()`` made on a thread of its own (so a test never narrows its own thread)."""
    box: list[Any] = []
    thread = threading.Thread(target=lambda: box.append(call()))
    thread.start()
    thread.join()
    return box[0]


def test_the_current_cpu_is_one_the_process_may_use() -> None:
    cpu = current_cpu()
    assert len(cpu) == 1 and cpu <= ALLOWED


def test_a_kept_thread_runs_on_its_cpu_and_sees_the_others() -> None:
    cpu = frozenset({min(ALLOWED)})

    def kept() -> tuple[bool, frozenset[int], frozenset[int]]:
        return keep_to(cpu), frozenset(os.sched_getaffinity(0)), other_cpus()

    assert in_thread(kept) == (True, cpu, ALLOWED - cpu)
    # Nothing narrowed this thread, nor the process.
    assert frozenset(os.sched_getaffinity(0)) == ALLOWED
    assert other_cpus() == frozenset()


def test_no_cpu_or_a_cpu_not_allowed_keeps_the_thread_as_it_was() -> None:
    def refused() -> tuple[bool, bool, frozenset[int]]:
        unknown = frozenset({max(ALLOWED) + 4096})
        return keep_to(frozenset()), keep_to(unknown), frozenset(os.sched_getaffinity(0))

    assert in_thread(refused) == (False, False, ALLOWED)


class RecordingTransport:
    """The real transport; notes the CPUs of each thread that opens a connection."""

    def __init__(self, transport: Transport) -> None:
        self.transport = transport
        self.cpus: list[frozenset[int]] = []

    def connect(self) -> Connection:
        self.cpus.append(frozenset(os.sched_getaffinity(0)))
        return self.transport.connect()


def test_a_sends_workers_share_one_cpu_and_the_rest_of_the_process_is_untouched(
    make_app: Callable[..., Flask], smtp_server: SMTPServer
) -> None:
    app = make_app(MAIL_URL=smtp_server.url)
    digest_id = queued_digest(app, 20)
    send = sender(app, digest_id)
    recording = RecordingTransport(send.transport)
    send.transport = recording
    result = send.run()
    assert result.outcome is Outcome.COMPLETE
    assert result.counts[DeliveryStatus.SENT] == 20
    assert len(recording.cpus) == send.options.workers > 1
    [cpu] = set(recording.cpus)
    assert len(cpu) == 1 and cpu <= ALLOWED
    assert frozenset(os.sched_getaffinity(0)) == ALLOWED
