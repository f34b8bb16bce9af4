"""The per-client counts kept in memory (the default ``memory://``)."""

from __future__ import annotations

import time

from limits import parse

from newsletter.web.limits import MemoryWindows


def test_a_client_gets_its_allowance_per_window_and_again_after_it() -> None:
    windows = MemoryWindows()
    two_a_second = parse("2 per second")
    assert [windows.hit(two_a_second, "signup", "192.0.2.1") for _ in range(3)] == [
        True,
        True,
        False,
    ]
    # Another client, or another limited page, has a count of its own.
    assert windows.hit(two_a_second, "signup", "192.0.2.2")
    assert windows.hit(two_a_second, "webhooks", "192.0.2.1")
    time.sleep(1.05)
    assert windows.hit(two_a_second, "signup", "192.0.2.1")


def test_counts_whose_window_ended_are_swept_away() -> None:
    windows = MemoryWindows(sweep_every=0.5)
    one_a_second = parse("1 per second")
    for number in range(100):
        windows.hit(one_a_second, "signup", f"192.0.2.{number}")
    assert len(windows) == 100
    time.sleep(1.05)
    # The next hit sweeps: only its own client is counted now.
    assert windows.hit(one_a_second, "signup", "198.51.100.1")
    assert len(windows) == 1
