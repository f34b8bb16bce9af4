"""Which CPUs a thread runs on: a send's workers kept to one, long work outside the
interpreter lock handed to a thread on the others.

A send's worker threads run their Python one at a time (the interpreter lock), and hand the
lock over at every socket call and database statement. Spread over two cores, each hand-over
wakes a thread on the other core, and waking costs more than the work between: on two cores
`bench/send.py` sent 10,000 digests at 2,000 msg/s with the workers spread and at
2,860 msg/s with them kept to one core. What runs long without the lock (an RSA signature,
0.25 ms) then goes to a thread on the other cores, so it still runs beside them.
Linux only; elsewhere nothing changes.
"""

from __future__ import annotations

import os
import queue
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any, Generic, TypeVar

__all__ = ["Elsewhere", "current_cpu", "elsewhere", "keep_to", "off_this_core", "other_cpus"]

T = TypeVar("T")

# Per thread: the CPUs it was kept off by keep_to, so that asking costs no system call.
_kept = threading.local()


def current_cpu() -> frozenset[int]:
    """The CPU the calling thread is running on, or no CPU where that cannot be read."""
    try:
        # /proc/thread-self/stat: "processor" is the 39th field; the name in brackets before
        # the third may hold spaces.
        fields = Path("/proc/thread-self/stat").read_text().rpartition(")")[2].split()
        return frozenset({int(fields[36])})
    except (OSError, ValueError, IndexError):
        return frozenset()


def keep_to(cpus: frozenset[int]) -> bool:
    """Run the calling thread (and the threads it starts) on ``cpus`` alone; False when that
    cannot be done (no CPU given, no such call here, or CPUs the process may not use)."""
    if not cpus or not hasattr(os, "sched_setaffinity"):
        return False
    try:
        # The process's own set is its first thread's, which nothing here narrows.
        allowed = os.sched_getaffinity(os.getpid())
        os.sched_setaffinity(0, cpus)
    except OSError:
        return False
    _kept.others = frozenset(allowed - cpus)
    return True


def other_cpus() -> frozenset[int]:
    """The CPUs the process may use that :func:`keep_to` kept the calling thread off (none
    for a thread it did not keep)."""
    others: frozenset[int] = getattr(_kept, "others", frozenset())
    return others


def off_this_core(call: Callable[[], T]) -> T:
    """``call()``, made by a thread on the other CPUs when this thread was kept to its own
    (it then runs beside this thread's work), else made here."""
    others = other_cpus()
    return elsewhere(others).run(call) if others else call()


class _Call(Generic[T]):
    __slots__ = ("call", "done", "error", "result")

    def __init__(self, call: Callable[[], T]) -> None:
        self.call = call
        self.done = threading.Lock()
        self.done.acquire()
        self.result: T | None = None
        self.error: BaseException | None = None


class Elsewhere:
    """A thread kept to ``cpus`` that makes the calls handed to it, one at a time."""

    def __init__(self, cpus: frozenset[int]) -> None:
        self.cpus = cpus
        self._calls: queue.SimpleQueue[_Call[Any]] = queue.SimpleQueue()
        threading.Thread(target=self._serve, name="elsewhere", daemon=True).start()

    def _serve(self) -> None:
        keep_to(self.cpus)
        while True:
            call = self._calls.get()
            try:
                call.result = call.call()
            except BaseException as error:  # handed back to the caller, raised there
                call.error = error
            call.done.release()

    def run(self, call: Callable[[], T]) -> T:
        """``call()`` made on this thread; what it returns or raises, here."""
        waiting: _Call[T] = _Call(call)
        self._calls.put(waiting)
        waiting.done.acquire()
        if waiting.error is not None:
            raise waiting.error
        return waiting.result  # type: ignore[return-value]


_threads: dict[frozenset[int], Elsewhere] = {}
_threads_lock = threading.Lock()


def elsewhere(cpus: frozenset[int]) -> Elsewhere:
    """The one thread kept to ``cpus``, started the first time it is asked for."""
    with _threads_lock:
        if cpus not in _threads:
            _threads[cpus] = Elsewhere(cpus)
        return _threads[cpus]
