"""A send's workers are kept to one CPU, and what they hand elsewhere runs on the others:
the affinity calls themselves, a real send's worker threads, and a DKIM signature made from
a kept thread (verified by dkimpy)."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import dkim
import pytest
from flask import Flask

from newsletter.cpus import current_cpu, elsewhere, keep_to, off_this_core, other_cpus
from newsletter.mail.dkim import Signer
from newsletter.mail.dkim_keys import dns_record, load_rsa_key, new_rsa_key
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


def test_a_call_made_elsewhere_runs_on_those_cpus_and_returns_or_raises_here() -> None:
    cpus = frozenset({max(ALLOWED)})
    worker = elsewhere(cpus)
    assert elsewhere(cpus) is worker
    assert worker.run(lambda: frozenset(os.sched_getaffinity(0))) == cpus

    def fails() -> None:
        raise LookupError("raised over there")

    with pytest.raises(LookupError, match="raised over there"):
        worker.run(fails)
    assert worker.run(lambda: 6 * 7) == 42


def test_work_is_handed_off_this_core_only_by_a_kept_thread() -> None:
    assert off_this_core(threading.get_ident) == threading.get_ident()
    cpu = frozenset({min(ALLOWED)})

    def kept() -> tuple[int, int, frozenset[int]]:
        keep_to(cpu)
        here = threading.get_ident()
        return (
            here,
            off_this_core(threading.get_ident),
            off_this_core(lambda: frozenset(os.sched_getaffinity(0))),
        )

    here, there, cpus = in_thread(kept)
    if ALLOWED - cpu:
        assert there != here and cpus == ALLOWED - cpu
    else:  # one CPU: nowhere else to go
        assert there == here and cpus == cpu


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


def test_a_signature_made_from_a_kept_thread_verifies() -> None:
    pem = new_rsa_key()
    signer = Signer("example.org", "kept", load_rsa_key(pem))
    record = dns_record(load_rsa_key(pem)).encode()
    message = b"From: news@example.org\r\nTo: ada@example.org\r\nSubject: Hi\r\n\r\nHello\r\n"
    cpu = frozenset({min(ALLOWED)})

    def signed() -> bytes:
        keep_to(cpu)
        return signer.sign(message)

    data = in_thread(signed)
    assert dkim.verify(data, dnsfunc=lambda name, timeout=5: record)
    others = ALLOWED - cpu
    signing_threads = [
        thread
        for thread in threading.enumerate()
        if thread.name == "elsewhere"
        and thread.native_id is not None
        and frozenset(os.sched_getaffinity(thread.native_id)) == others
    ]
    # With one CPU there is nowhere else: the kept thread signs itself.
    assert len(signing_threads) == (1 if others else 0)
