"""DKIM signatures made by signing processes on the CPUs the send's workers were kept off,
shared by the workers: each answer reaches the request it answers, the signatures verify
(dkimpy), and the sending process makes them itself when a signing process cannot."""

from __future__ import annotations

import hashlib
import os
import signal
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import dkim

from newsletter.cpus import keep_to
from newsletter.mail import signing_process
from newsletter.mail.dkim import Signer
from newsletter.mail.dkim_keys import dns_record, load_rsa_key, new_rsa_key
from newsletter.mail.signing_child import sign_digest
from newsletter.mail.signing_process import SigningProcess

ALLOWED = frozenset(os.sched_getaffinity(0))
CPU = frozenset({min(ALLOWED)})
OTHERS = ALLOWED - CPU
PEM = new_rsa_key()
KEY = load_rsa_key(PEM)
MESSAGE = b"From: news@example.org\r\nTo: ada@example.org\r\nSubject: Hi\r\n\r\nHello\r\n"


def in_kept_thread(call: Callable[[], Any]) -> Any:
    """``call()`` on a thread of its own kept to one CPU, as a send's worker is."""
    box: list[Any] = []

    def kept() -> None:
        keep_to(CPU)
        box.append(call())

    thread = threading.Thread(target=kept)
    thread.start()
    thread.join()
    return box[0]


def verifies(data: bytes) -> bool:
    record = dns_record(KEY).encode()
    return bool(dkim.verify(data, dnsfunc=lambda name, timeout=5: record))


def digest(text: str) -> bytes:
    return hashlib.sha256(text.encode()).digest()


class Fallback:
    """Signs here, counting how often it was needed."""

    def __init__(self, text: str) -> None:
        self.digest = digest(text)
        self.calls = 0

    def __call__(self) -> bytes:
        self.calls += 1
        return sign_digest(KEY, self.digest)


def test_a_kept_threads_signature_is_made_by_a_process_on_the_other_cpus() -> None:
    signer = Signer("example.org", "kept", KEY)

    def sign() -> tuple[bytes, SigningProcess | None]:
        return signer.sign(MESSAGE), signing_process.for_this_thread()

    data, process = in_kept_thread(sign)
    assert verifies(data)
    if OTHERS:
        assert process is not None and process.pid != os.getpid()
        assert frozenset(os.sched_getaffinity(process.pid)) <= OTHERS
        # The next kept thread shares a process with it (two CPUs: one process).
        _, again = in_kept_thread(sign)
        assert again is process or len(OTHERS) > 1
    else:  # one CPU: nowhere else to sign, so the thread signs itself
        assert process is None


def test_a_thread_not_kept_signs_where_it_runs() -> None:
    assert signing_process.for_this_thread() is None
    assert verifies(Signer("example.org", "kept", KEY).sign(MESSAGE))


def test_each_answer_reaches_its_own_request_whoever_reads_it() -> None:
    process = SigningProcess(OTHERS or ALLOWED)
    try:
        first, second, third = Fallback("first"), Fallback("second"), Fallback("third")
        asked = [process.request(PEM, f.digest, f) for f in (first, second, third)]
        # RSA PKCS#1 v1.5 signatures are deterministic: the process's equal the ones made here.
        made_in_a_thread: list[bytes] = []
        reader = threading.Thread(target=lambda: made_in_a_thread.append(asked[1].result()))
        reader.start()
        reader.join()
        assert made_in_a_thread == [sign_digest(KEY, second.digest)]
        # The first answer was read on the way to the second's, and kept for its request.
        assert asked[0].result() == sign_digest(KEY, first.digest)
        assert asked[2].result() == sign_digest(KEY, third.digest)
        assert asked[2].result() == sign_digest(KEY, third.digest)  # kept, not read twice
        assert (first.calls, second.calls, third.calls) == (0, 0, 0)
    finally:
        process.close()


def test_threads_taking_turns_on_one_process_each_get_their_own_signatures() -> None:
    process = SigningProcess(OTHERS or ALLOWED)
    results: dict[str, list[bool]] = {}

    def ask(name: str) -> None:
        fallbacks = [Fallback(f"{name}{n}") for n in range(40)]
        asked = [process.request(PEM, f.digest, f) for f in fallbacks]
        results[name] = [
            pending.result() == sign_digest(KEY, f.digest) and f.calls == 0
            for pending, f in zip(asked, fallbacks, strict=True)
        ]

    try:
        threads = [threading.Thread(target=ask, args=(name,)) for name in "abcd"]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        assert results == {name: [True] * 40 for name in "abcd"}
    finally:
        process.close()


def test_a_signing_process_that_dies_is_replaced_by_signing_here() -> None:
    process = SigningProcess(OTHERS or ALLOWED)
    before = Fallback("before")
    os.kill(process.pid, signal.SIGSTOP)  # so that it cannot answer before it is killed
    pending = process.request(PEM, before.digest, before)
    os.kill(process.pid, signal.SIGKILL)
    assert pending.result() == sign_digest(KEY, before.digest)
    assert before.calls == 1
    after = Fallback("after")
    assert process.request(PEM, after.digest, after).result() == sign_digest(KEY, after.digest)
    assert after.calls == 1


def test_a_key_the_signing_process_cannot_read_is_signed_here() -> None:
    process = SigningProcess(OTHERS or ALLOWED)
    fallback = Fallback("unreadable")
    pending = process.request(
        b"-----BEGIN PRIVATE KEY-----\nnot a key\n", fallback.digest, fallback
    )
    assert pending.result() == sign_digest(KEY, fallback.digest)
    assert fallback.calls == 1


def test_a_signing_process_ends_when_closed() -> None:
    process = SigningProcess(OTHERS or ALLOWED)
    fallback = Fallback("before closing")
    assert process.request(PEM, fallback.digest, fallback).result() == sign_digest(
        KEY, fallback.digest
    )
    process.close()
    deadline = time.monotonic() + 10
    while Path(f"/proc/{process.pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not Path(f"/proc/{process.pid}").exists()
