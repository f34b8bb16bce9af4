"""An SMTP sink for benchmarks: accepts every message, keeps only counts.

Run as ``python bench/smtp_sink.py PORT``; prints ``ready`` when listening and the number of
messages and recipients received when it gets SIGTERM or SIGINT.
"""

from __future__ import annotations

import signal
import sys
import threading
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
