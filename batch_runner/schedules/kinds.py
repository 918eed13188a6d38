"""The kinds of schedule (SPEC 4), as immutable values the parser produces."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import time


class ScheduleError(ValueError):
    """schedule_time does not fit schedule_type, or a time zone is unknown.

    The message is one sentence naming the value found and what is allowed.
    """


@dataclass(frozen=True, slots=True)
class IntervalSchedule:
    seconds: float


@dataclass(frozen=True, slots=True)
class DailySchedule:
    at: time


@dataclass(frozen=True, slots=True)
class WeeklySchedule:
    days: frozenset[int]  # Python weekday numbers, Monday = 0 ... Sunday = 6
    at: time


Schedule = IntervalSchedule | DailySchedule | WeeklySchedule

SCHEDULE_TYPES = ("interval", "daily", "weekly")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NUMBERS = {name: i for i, name in enumerate(DAY_NAMES)} | {
    name[:3]: i for i, name in enumerate(DAY_NAMES)
}
