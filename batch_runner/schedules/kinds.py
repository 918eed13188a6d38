"""The kinds of schedule (SPEC 4), as immutable values the parser produces."""

from __future__ import annotations

from datetime import time

from batch_runner.valuetype import Record


class ScheduleError(ValueError):
    """schedule_time does not fit schedule_type, or a time zone is unknown.

    The message is one sentence naming the value found and what is allowed.
    """


# Records, not dataclasses: ``list`` and ``next`` parse every schedule, and importing
# dataclasses (with inspect, ast, tokenize) cost them more than a millisecond.
class IntervalSchedule(Record):
    seconds: float


class DailySchedule(Record):
    at: time


class WeeklySchedule(Record):
    days: frozenset[int]  # Python weekday numbers, Monday = 0 ... Sunday = 6
    at: time


Schedule = IntervalSchedule | DailySchedule | WeeklySchedule

SCHEDULE_TYPES = ("interval", "daily", "weekly")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NUMBERS = {name: i for i, name in enumerate(DAY_NAMES)} | {
    name[:3]: i for i, name in enumerate(DAY_NAMES)
}
