"""DKIM signatures made by processes of their own, on the CPUs a send's workers were kept off.

A send's worker threads share one CPU (``newsletter.cpus``). An RSA-2048 signature costs a
quarter of a millisecond, about as much as building and sending the message; made by a
thread, it still hands the interpreter lock between the cores twice per signature, and each
hand-over costs a worker as much as the signature saves. A process has its own lock. There
is one signing process (``signing_child``) for each CPU the workers were kept off, shared by
the workers, which take turns on it: each asks for a message's signature before it sends
the message before it, so that by the time it is needed, it is made. The answers come back
in the order asked; whichever worker reads one hands it to the request it answers.

When a process cannot be started, or fails, the signatures are made here instead: signing
never stops a send.
"""

from __future__ import annotations

import itertools
import logging
import os
import struct
import subprocess
import sys
import threading
import weakref
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import IO

from newsletter.cpus import other_cpus
from newsletter.mail import signing_child

__all__ = ["Pending", "SigningProcess", "for_this_thread"]

log = logging.getLogger(__name__)

_CHILD = Path(signing_child.__file__)


class Pending:
    """A signature asked for; :meth:`result` waits for it."""

    __slots__ = ("_failed", "_fallback", "_process", "_value")

    def __init__(
        self,
        process: SigningProcess | None,
        fallback: Callable[[], bytes],
        value: bytes | None = None,
    ) -> None:
        self._process = process
        self._fallback = fallback
        self._value = value
        self._failed = False

    @classmethod
    def made(cls, value: bytes) -> Pending:
        return cls(None, lambda: value, value)

    @property
    def answered(self) -> bool:
        return self._value is not None or self._failed

    def answer(self, value: bytes | None) -> None:
        """The process's answer: the signature, or None when it could not make it."""
        if value is None:
            self._failed = True
        else:
            self._value = value

    def result(self) -> bytes:
        if self._value is None:
            if self._process is not None and not self._failed:
                self._process.wait_for(self)
            if self._value is None:
                self._value = self._fallback()
        return self._value


class SigningProcess:
    """A signing process kept to ``cpus``, shared by the threads that ask it."""

    def __init__(self, cpus: frozenset[int]) -> None:
        self._child = subprocess.Popen(
            [sys.executable, str(_CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        # Ends when its input does: closed here, or by the system when this process ends.
        self._finalizer = weakref.finalize(self, _stop, self._child)
        os.sched_setaffinity(self._child.pid, cpus)
        self._keys: dict[bytes, int] = {}
        self._waiting: deque[Pending] = deque()
        # Requests are written in the order they join ``_waiting``; answers are read in that
        # order. Separate locks, so that a thread waiting to write never stops one reading.
        self._writing = threading.Lock()
        self._reading = threading.Lock()
        self.broken = False

    @property
    def pid(self) -> int:
        return self._child.pid

    def close(self) -> None:
        self._finalizer()

    def request(self, pem: bytes, digest: bytes, fallback: Callable[[], bytes]) -> Pending:
        """Ask for the signature of ``digest`` with the key ``pem``; ``fallback`` makes it
        here if the process cannot."""
        pending = Pending(self, fallback)
        with self._writing:
            if self.broken:
                return Pending.made(fallback())
            try:
                stdin = _pipe(self._child.stdin)
                if pem not in self._keys:
                    self._keys[pem] = len(self._keys)
                    stdin.write(signing_child.LOAD + struct.pack(">I", len(pem)) + pem)
                stdin.write(signing_child.SIGN + bytes([self._keys[pem]]) + digest)
                stdin.flush()
            except OSError:
                self._break("could not be asked")
                return Pending.made(fallback())
            self._waiting.append(pending)
        return pending

    def wait_for(self, pending: Pending) -> None:
        """Read answers, each into the request it answers, until ``pending`` has its own."""
        with self._reading:
            stdout = _pipe(self._child.stdout)
            while not pending.answered:
                if self.broken or not self._waiting:
                    pending.answer(None)
                    return
                asked = self._waiting.popleft()
                try:
                    head = stdout.read(3)
                    kind, size = head[:1], struct.unpack(">H", head[1:])[0]
                    payload = stdout.read(size)
                except (OSError, struct.error):
                    asked.answer(None)
                    self._break("ended")
                    continue
                if kind == signing_child.SIGNED and len(payload) == size:
                    asked.answer(payload)
                else:
                    why = payload.decode(errors="replace")
                    log.warning("the signing process could not sign: %s", why)
                    asked.answer(None)

    def _break(self, what: str) -> None:
        log.warning("the signing process %s; signing in the sending process instead", what)
        self.broken = True
        for asked in list(self._waiting):
            asked.answer(None)
        self._waiting.clear()
        self.close()


def _pipe(stream: IO[bytes] | None) -> IO[bytes]:
    assert stream is not None, "started with both pipes"
    return stream


def _stop(child: subprocess.Popen[bytes]) -> None:
    for stream in (child.stdin, child.stdout):
        if stream is not None:
            try:
                stream.close()
            except OSError:
                pass
    try:
        child.wait(timeout=5)
    except subprocess.TimeoutExpired:
        child.kill()
        child.wait()


class _Pool:
    """One signing process for each of a set of CPUs, started when first needed; a process
    that failed is not started again."""

    def __init__(self, cpus: frozenset[int]) -> None:
        self.cpus = sorted(cpus)
        self._processes: dict[int, SigningProcess | None] = {}
        self._turns = itertools.count()
        self._lock = threading.Lock()

    def for_a_thread(self) -> SigningProcess | None:
        with self._lock:
            cpu = self.cpus[next(self._turns) % len(self.cpus)]
            if cpu not in self._processes:
                try:
                    self._processes[cpu] = SigningProcess(frozenset({cpu}))
                except OSError:
                    log.warning("could not start a signing process; signing in the sending process")
                    self._processes[cpu] = None
            return self._processes[cpu]


_pools: dict[frozenset[int], _Pool] = {}
_pools_lock = threading.Lock()
_mine = threading.local()


def for_this_thread() -> SigningProcess | None:
    """The signing process the calling thread asks: only a thread ``keep_to`` kept off other
    CPUs (a send's worker) has one, a process on one of those CPUs that it shares with the
    other workers. None for every other thread, which signs where it runs, and when no
    process can be started or the thread's has failed."""
    others = other_cpus()
    if not others:
        return None
    if getattr(_mine, "cpus", None) != others:
        with _pools_lock:
            pool = _pools.setdefault(others, _Pool(others))
        _mine.cpus, _mine.process = others, pool.for_a_thread()
    process: SigningProcess | None = _mine.process
    return None if process is None or process.broken else process
