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


class CronSchedule(Record):
    """A 5-field cron expression, with the sets cronsim expands each field into."""

    expression: str  # as written, whitespace collapsed: what `cron NAME` prints
    fields: tuple[str, ...]  # the five fields (a macro such as "@daily" spelled out)
    times: tuple[time, ...]  # every (hour, minute) the expression names, in order
    days: frozenset[int]  # days of the month, 1-31
    months: frozenset[int]  # 1-12
    weekdays: frozenset[int]  # Python weekday numbers, Monday = 0 ... Sunday = 6
    either_day: bool  # both day fields restricted: a day matching either runs (cron's OR)


class StartupSchedule(Record):
    """Once each time the scheduler starts; it has no next occurrence of its own."""


Schedule = IntervalSchedule | DailySchedule | WeeklySchedule | CronSchedule | StartupSchedule

SCHEDULE_TYPES = ("interval", "daily", "weekly", "cron", "startup")
DAY_NAMES = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
DAY_NUMBERS = {name: i for i, name in enumerate(DAY_NAMES)} | {
    name[:3]: i for i, name in enumerate(DAY_NAMES)
}
