"""Which CPUs a thread runs on: a send's workers kept to one, and the others known, for the
long work that runs beside them (a DKIM signature, in a process of its own:
``mail.signing_process``).

A send's worker threads run their Python one at a time (the interpreter lock), and hand the
lock over at every socket call and database statement. Spread over two cores, each hand-over
wakes a thread on the other core, and waking costs more than the work between: on two cores
`bench/send.py` sent 10,000 digests at 2,000 msg/s with the workers spread and at
2,860 msg/s with them kept to one core. Linux only; elsewhere nothing changes.
"""

from __future__ import annotations

import os
import threading
from pathlib import Path

__all__ = ["current_cpu", "keep_to", "other_cpus"]

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
