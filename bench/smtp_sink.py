"""An SMTP sink for benchmarks: accepts every message, keeps only counts.

Run as ``python bench/smtp_sink.py PORT``; prints ``ready`` when listening and the number of
messages and recipients received when it gets SIGTERM or SIGINT. :class:`Sink` starts one in
its own process for a benchmark script.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from aiosmtpd.controller import Controller


class CountingHandler:
    def __init__(self) -> None:
        self.messages = 0
        self.recipients = 0
        self.bytes = 0

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages += 1
        self.recipients += len(envelope.rcpt_tos)
        self.bytes += len(envelope.content)
        return "250 OK"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Sink:
    """This sink in its own process, on a free port of 127.0.0.1."""

    def __init__(self) -> None:
        self.port = free_port()
        self.process = subprocess.Popen(
            [sys.executable, str(Path(__file__).resolve()), str(self.port)],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        assert self.process.stdout.readline().strip() == "ready"

    def stop(self) -> int:
        """Stop it; the number of messages it accepted."""
        self.process.terminate()
        output, _ = self.process.communicate(timeout=60)
        match = re.search(r"messages=(\d+)", output)
        assert match, output
        return int(match.group(1))


def main() -> None:
    port = int(sys.argv[1])
    handler = CountingHandler()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print("ready", flush=True)
    done.wait()
    controller.stop()
    print(f"messages={handler.messages} recipients={handler.recipients} bytes={handler.bytes}")


if __name__ == "__main__":
    main()
