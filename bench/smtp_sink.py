"""An SMTP sink for benchmarks: accepts every message, keeps only counts.

    python bench/smtp_sink.py PORT [--rtt-ms N] [--no-pipelining] [--no-chunking] [--aiosmtpd]

By default it is the small asyncio server of ``tests/support/smtp_responder.py`` offering
PIPELINING, CHUNKING, 8BITMIME and SMTPUTF8, which costs a small fraction of a millisecond of
CPU a message, so that it is not what a benchmark measures. ``--rtt-ms`` makes each answer
leave that many milliseconds after the command it answers arrived (the commands of one read
answered together), as over a network with that round-trip time. ``--aiosmtpd`` is the
aiosmtpd sink the benchmarks used before (about 0.6 ms of CPU a message).

It prints ``ready`` when listening, and on SIGTERM or SIGINT the messages and recipients it
accepted and the CPU time it spent after start-up. :class:`Sink` starts one in its own process
for a benchmark script.
"""

from __future__ import annotations

import argparse
import asyncio
import re
import resource
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.support.smtp_responder import Hooks, Offer, Responder  # noqa: E402  (path set-up)


class Counting(Hooks):
    def __init__(self) -> None:
        super().__init__(keep_content=False)
        self.messages = 0
        self.recipients = 0

    def delivered(self, sender: str, recipients: list[str], content: bytes) -> None:
        self.messages += 1
        self.recipients += len(recipients)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        """aiosmtpd's hook, for ``--aiosmtpd``."""
        self.delivered(envelope.mail_from, envelope.rcpt_tos, b"")
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Sink:
    """This sink in its own process, on a free port of 127.0.0.1."""

    def __init__(
        self,
        rtt_ms: float = 0.0,
        pipelining: bool = True,
        chunking: bool = True,
        aiosmtpd: bool = False,
    ) -> None:
        self.port = free_port()
        options = [f"--rtt-ms={rtt_ms}"]
        options += [] if pipelining else ["--no-pipelining"]
        options += [] if chunking else ["--no-chunking"]
        options += ["--aiosmtpd"] if aiosmtpd else []
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(self.port), *options],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"
        #: CPU seconds the sink spent serving, known after :meth:`stop`.
        self.cpu = 0.0

    def stop(self) -> int:
        """Stop it; the number of messages it accepted."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=60)
        match = re.search(r"messages=(\d+) .*cpu=([\d.]+)", output)
        assert match, output
        self.cpu = float(match.group(2))
        return int(match.group(1))


def serve_aiosmtpd(counting: Counting, port: int) -> None:
    from aiosmtpd.controller import Controller

    controller = Controller(counting, hostname="127.0.0.1", port=port)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("ready", flush=True)
    started = cpu_seconds()
    done.wait()
    spent = cpu_seconds() - started
    controller.stop()
    report(counting, spent)


async def serve(counting: Counting, port: int, offer: Offer, rtt: float) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(
        lambda: Responder(counting, offer, rtt), "127.0.0.1", port, reuse_address=True
    )
    done = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, done.set)
    loop.add_signal_handler(signal.SIGINT, done.set)
    print("ready", flush=True)
    started = cpu_seconds()
    await done.wait()
    spent = cpu_seconds() - started
    server.close()
    report(counting, spent)


def report(counting: Counting, spent: float) -> None:
    print(f"messages={counting.messages} recipients={counting.recipients} cpu={spent:.3f}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("port", type=int)
    parser.add_argument("--rtt-ms", type=float, default=0.0)
    parser.add_argument("--no-pipelining", action="store_true")
    parser.add_argument("--no-chunking", action="store_true")
    parser.add_argument("--aiosmtpd", action="store_true")
    args = parser.parse_args()
    counting = Counting()
    if args.aiosmtpd:
        serve_aiosmtpd(counting, args.port)
        return
    offer = Offer(pipelining=not args.no_pipelining, chunking=not args.no_chunking)
    asyncio.run(serve(counting, args.port, offer, args.rtt_ms / 1000))


if __name__ == "__main__":
    main()
