"""When automatic digests go out: the schedule read in its time zone, and each reader's rhythm.

Plain values and arithmetic on aware datetimes; no database. A *slot* is a moment the
schedule names (``weekly mon 09:00`` in Europe/London: every Monday at 09:00 London time).
A run sends the latest slot at or before its time if no run sent it yet, so a machine that was
down at 09:00 sends at its next run, once, however many slots it missed.

A reader's *rhythm* says which slots are theirs: every one (``each``), the first of each week
(``weekly``) or the first of each month (``monthly``), weeks and months counted in the
schedule's time zone.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

__all__ = [
    "RHYTHM_LABELS",
    "Rhythm",
    "Schedule",
    "ScheduleError",
    "parse_rhythm",
    "parse_schedule",
    "parse_zone",
]

DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
FORMS = "'daily HH:MM' or 'weekly DAY HH:MM' (DAY one of mon … sun)"


class ScheduleError(ValueError):
    """A schedule, time zone or rhythm that cannot be read; the message says what is expected."""


class Rhythm(StrEnum):
    """How often a reader wants a digest."""

    EACH = "each"
    WEEKLY = "weekly"
    MONTHLY = "monthly"


RHYTHM_LABELS = {
    Rhythm.EACH: "Every digest",
    Rhythm.WEEKLY: "Once a week",
    Rhythm.MONTHLY: "Once a month",
}


def parse_rhythm(text: str) -> Rhythm:
    """``each``, ``weekly`` or ``monthly``."""
    try:
        return Rhythm(text.strip().lower())
    except ValueError:
        message = f"expected each, weekly or monthly, got {text!r}"
        raise ScheduleError(message) from None


def parse_zone(name: str) -> ZoneInfo:
    """An IANA time zone such as ``Europe/London``."""
    try:
        return ZoneInfo(name.strip())
    except (ZoneInfoNotFoundError, ValueError):
        message = f"unknown time zone {name!r}; use an IANA name such as Europe/London or UTC"
        raise ScheduleError(message) from None


def _clock(text: str) -> time:
    hours, colon, minutes = text.partition(":")
    if colon and hours.isdigit() and minutes.isdigit() and len(minutes) == 2:
        if int(hours) < 24 and int(minutes) < 60:
            return time(int(hours), int(minutes))
    raise ScheduleError(f"expected a time of day as HH:MM, got {text!r}")


def parse_schedule(text: str, zone: ZoneInfo) -> Schedule:
    """``daily 09:00`` or ``weekly mon 09:00``, read in ``zone``."""
    words = text.lower().split()
    if len(words) == 2 and words[0] == "daily":
        return Schedule(None, _clock(words[1]), zone)
    if len(words) == 3 and words[0] == "weekly":
        day = words[1]
        names = [name for name in DAY_NAMES if day in (name, name[:3])]
        if not names:
            raise ScheduleError(f"expected {FORMS}, got an unknown day {day!r}")
        return Schedule(DAY_NAMES.index(names[0]), _clock(words[2]), zone)
    raise ScheduleError(f"expected {FORMS}, got {text!r}")


@dataclass(frozen=True)
class Schedule:
    """Every day (``weekday`` None) or every week on ``weekday`` (0 is Monday) at ``at``."""

    weekday: int | None
    at: time
    zone: ZoneInfo

    def describe(self) -> str:
        when = f"{self.at:%H:%M} {self.zone.key}"
        if self.weekday is None:
            return f"daily {when}"
        return f"weekly {DAY_NAMES[self.weekday][:3]} {when}"

    def _slot_on(self, day: date) -> datetime:
        # Built from the local date and clock, so a change of daylight saving time keeps the
        # slot at the same local time.
        return datetime.combine(day, self.at, tzinfo=self.zone).astimezone(UTC)

    def _step(self) -> int:
        return 1 if self.weekday is None else 7

    def latest_slot(self, now: datetime) -> datetime:
        """The latest slot at or before ``now`` (in UTC)."""
        today = now.astimezone(self.zone).date()
        back = 0 if self.weekday is None else (today.weekday() - self.weekday) % 7
        slot = self._slot_on(today - timedelta(days=back))
        if slot > now:
            slot = self._slot_on(today - timedelta(days=back + self._step()))
        return slot

    def next_slot(self, now: datetime) -> datetime:
        """The first slot after ``now`` (in UTC)."""
        latest = self.latest_slot(now).astimezone(self.zone).date()
        return self._slot_on(latest + timedelta(days=self._step()))

    def period_start(self, rhythm: Rhythm, slot: datetime) -> datetime | None:
        """When the week or month holding ``slot`` began, in UTC; None for ``each``.

        A reader of that rhythm is due at ``slot`` unless their last digest came at or after
        this moment: a weekly reader gets the first slot of each week (Monday 00:00 local time
        on), a monthly reader the first of each month.
        """
        local = slot.astimezone(self.zone).date()
        if rhythm == Rhythm.WEEKLY:
            first = local - timedelta(days=local.weekday())
        elif rhythm == Rhythm.MONTHLY:
            first = local.replace(day=1)
        else:
            return None
        return datetime.combine(first, time(0, 0), tzinfo=self.zone).astimezone(UTC)
