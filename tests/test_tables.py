"""Counts by state as the commands print them: one formatter, several layouts."""

from __future__ import annotations

from collections import Counter

from newsletter.cli.tables import RUN_STATES, state_counts
from newsletter.models import DeliveryStatus

COUNTS = Counter({"sent": 1200, "failed": 2, "queued": 3})


def test_a_run_summary_names_every_state_in_its_order() -> None:
    assert state_counts(COUNTS, RUN_STATES) == (
        "sent 1200, failed 2, skipped 0, unknown 0, queued 3"
    )
    renamed = state_counts(COUNTS, RUN_STATES, names={DeliveryStatus.QUEUED: "still waiting"})
    assert renamed.endswith("unknown 0, still waiting 3")


def test_totals_leave_out_states_with_none() -> None:
    totals = state_counts(COUNTS, DeliveryStatus, form="{count:,} {state}", skip_zero=True)
    assert totals == "3 queued, 1,200 sent, 2 failed"
    assert state_counts(Counter(), DeliveryStatus, skip_zero=True) == ""


def test_a_table_of_every_state() -> None:
    lines = state_counts(COUNTS, DeliveryStatus, form="{state:<8} {count}", separator="\n")
    assert lines.splitlines() == [
        "queued   3",
        "sending  0",
        "sent     1200",
        "failed   2",
        "skipped  0",
        "unknown  0",
    ]
