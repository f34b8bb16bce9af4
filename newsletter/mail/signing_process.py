"""DKIM signatures made by a process of their own, on the CPUs a send's workers were kept off.

A send's worker threads share one CPU (``newsletter.cpus``). An RSA-2048 signature costs a
quarter of a millisecond, about as much as building and sending the message; made by a
thread, it still hands the interpreter lock between the cores twice per signature, and each
hand-over costs a worker as much as the signature saves. A process has its own lock. Each
kept worker thread gets its own signing process (``signing_child``), so its answers come back
in the order the thread asked, and the worker asks for a message's signature before it sends
the message before it: by the time it is needed, it is made.

When the process cannot be started, or fails, the signature is made here instead: signing
never stops a send.
"""

from __future__ import annotations

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
_mine = threading.local()


class Pending:
    """A signature asked for; :meth:`result` waits for it."""

    __slots__ = ("_fallback", "_process", "_value")

    def __init__(
        self,
        process: SigningProcess | None,
        fallback: Callable[[], bytes],
        value: bytes | None = None,
    ) -> None:
        self._process = process
        self._fallback = fallback
        self._value = value

    @classmethod
    def made(cls, value: bytes) -> Pending:
        return cls(None, lambda: value, value)

    def result(self) -> bytes:
        if self._value is None:
            answered = self._process.answer_for(self) if self._process is not None else None
            self._value = answered if answered is not None else self._fallback()
        return self._value


class SigningProcess:
    """One thread's signing process, kept to ``cpus``. Not shared between threads."""

    def __init__(self, cpus: frozenset[int]) -> None:
        self._child = subprocess.Popen(
            [sys.executable, str(_CHILD)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
        os.sched_setaffinity(self._child.pid, cpus)
        self._keys: dict[bytes, int] = {}
        self._waiting: deque[Pending] = deque()
        self._broken = False
        # The process ends when its input does: when this object goes with its thread.
        weakref.finalize(self, _stop, self._child)

    @property
    def pid(self) -> int:
        return self._child.pid

    def request(self, pem: bytes, digest: bytes, fallback: Callable[[], bytes]) -> Pending:
        """Ask for the signature of ``digest`` with the key ``pem``; ``fallback`` makes it
        here if the process cannot."""
        if self._broken:
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
        pending = Pending(self, fallback)
        self._waiting.append(pending)
        return pending

    def answer_for(self, pending: Pending) -> bytes | None:
        """Read answers in order up to ``pending``'s (those asked for earlier and never
        wanted are dropped); None when the process cannot give it."""
        if pending not in self._waiting:
            return None
        stdout = _pipe(self._child.stdout)
        while self._waiting:
            asked = self._waiting.popleft()
            try:
                head = stdout.read(3)
                kind, size = head[:1], struct.unpack(">H", head[1:])[0]
                payload = stdout.read(size)
            except (OSError, struct.error):
                self._break("ended")
                return None
            if asked is pending:
                if kind == signing_child.SIGNED and len(payload) == size:
                    return payload
                why = payload.decode(errors="replace")
                log.warning("the signing process could not sign: %s", why)
                return None
        return None

    def _break(self, what: str) -> None:
        log.warning("the signing process %s; signing in the sending process instead", what)
        self._broken = True
        self._waiting.clear()
        _stop(self._child)


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


def for_this_thread() -> SigningProcess | None:
    """The calling thread's signing process: only for a thread ``keep_to`` kept off other
    CPUs (a send's worker), started the first time it is asked for. None for every other
    thread, which signs where it runs, and when no process can be started."""
    others = other_cpus()
    if not others:
        return None
    process: SigningProcess | None = getattr(_mine, "process", None)
    if process is None and not getattr(_mine, "failed", False):
        try:
            process = _mine.process = SigningProcess(others)
        except OSError:
            log.warning("could not start a signing process; signing in the sending process")
            _mine.failed = True
    return process
