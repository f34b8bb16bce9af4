"""The schedule of automatic digests, read in its time zone, and each reader's rhythm."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from newsletter.schedule import Rhythm, ScheduleError, parse_rhythm, parse_schedule, parse_zone

LONDON = ZoneInfo("Europe/London")


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_daily_slots_are_the_latest_at_or_before_and_the_next_after() -> None:
    schedule = parse_schedule("daily 09:00", ZoneInfo("UTC"))
    assert schedule.latest_slot(at("2027-03-03 09:00")) == at("2027-03-03 09:00")
    assert schedule.latest_slot(at("2027-03-03 08:59")) == at("2027-03-02 09:00")
    assert schedule.next_slot(at("2027-03-03 09:00")) == at("2027-03-04 09:00")
    assert schedule.next_slot(at("2027-03-03 08:59")) == at("2027-03-03 09:00")


def test_weekly_slots_fall_on_the_day() -> None:
    schedule = parse_schedule("weekly mon 09:00", ZoneInfo("UTC"))
    # 2027-03-01 is a Monday.
    assert schedule.latest_slot(at("2027-03-01 09:30")) == at("2027-03-01 09:00")
    assert schedule.latest_slot(at("2027-03-01 08:30")) == at("2027-02-22 09:00")
    assert schedule.latest_slot(at("2027-03-05 12:00")) == at("2027-03-01 09:00")
    assert schedule.next_slot(at("2027-03-05 12:00")) == at("2027-03-08 09:00")
    assert parse_schedule("weekly Monday 9:00", ZoneInfo("UTC")) == schedule


def test_a_schedule_keeps_its_local_time_across_daylight_saving() -> None:
    schedule = parse_schedule("daily 09:00", LONDON)
    # British Summer Time starts on 28 March 2027.
    assert schedule.latest_slot(at("2027-03-27 12:00")) == at("2027-03-27 09:00")
    assert schedule.latest_slot(at("2027-03-28 12:00")) == at("2027-03-28 08:00")
    assert schedule.describe() == "daily 09:00 Europe/London"


def test_a_missed_slot_is_the_latest_one_only() -> None:
    schedule = parse_schedule("daily 09:00", ZoneInfo("UTC"))
    # Down for three days: the run finds one slot to send, not three.
    assert schedule.latest_slot(at("2027-03-06 10:00")) == at("2027-03-06 09:00")


def test_period_start_of_each_rhythm() -> None:
    schedule = parse_schedule("daily 09:00", LONDON)
    slot = at("2027-06-16 08:00")  # a Wednesday, 09:00 in London
    assert schedule.period_start(Rhythm.EACH, slot) is None
    assert schedule.period_start(Rhythm.WEEKLY, slot) == at("2027-06-13 23:00")
    assert schedule.period_start(Rhythm.MONTHLY, slot) == at("2027-05-31 23:00")


@pytest.mark.parametrize(
    ("text", "explains"),
    [
        ("hourly", "'daily HH:MM' or 'weekly DAY HH:MM'"),
        ("daily", "'daily HH:MM'"),
        ("daily 9", "HH:MM"),
        ("daily 09:60", "HH:MM"),
        ("daily 24:00", "HH:MM"),
        ("weekly 09:00", "'weekly DAY HH:MM'"),
        ("weekly mo 09:00", "unknown day 'mo'"),
        ("weekly funday 09:00", "unknown day 'funday'"),
    ],
)
def test_a_bad_schedule_says_what_is_expected(text: str, explains: str) -> None:
    with pytest.raises(ScheduleError, match=explains):
        parse_schedule(text, ZoneInfo("UTC"))


def test_zones_and_rhythms_are_checked() -> None:
    assert parse_zone("Europe/London") == LONDON
    with pytest.raises(ScheduleError, match="unknown time zone"):
        parse_zone("Europe/Atlantis")
    with pytest.raises(ScheduleError, match="unknown time zone"):
        parse_zone("../etc/passwd")
    assert parse_rhythm(" Weekly ") == Rhythm.WEEKLY
    with pytest.raises(ScheduleError, match="each, weekly or monthly"):
        parse_rhythm("daily")
