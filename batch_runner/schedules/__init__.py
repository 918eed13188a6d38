"""Pure next-run arithmetic: a schedule and an instant in, the next instant out.

Nothing here reads the clock: every function takes the instant it reasons about, so the
scheduler loop owns time and the tests can pass any instant (SPEC section 4).

Daylight saving, as the SPEC wants it: a wall-clock time that does not exist on a day (the
spring-forward gap) runs at the first instant after the gap; a time that occurs twice (fall
back) runs once, at its first occurrence. Aware datetimes that share a tzinfo compare and
subtract by wall time, ignoring the offset, so every comparison and sum below is done in UTC.

The package: ``kinds`` (the schedule values), ``parse`` (from the config's words), ``cron``
(cron expressions, parsed with cronsim, imported only when a config has one),
``arithmetic`` (the next occurrences), ``words`` (a schedule described), ``zones``.
"""

from __future__ import annotations

from batch_runner.schedules.arithmetic import (
    next_fire,
    next_interval_fire,
    next_run,
    occurrences,
    upcoming,
    wall_to_utc,
)
from batch_runner.schedules.kinds import (
    DAY_NAMES,
    SCHEDULE_TYPES,
    CronSchedule,
    DailySchedule,
    IntervalSchedule,
    Schedule,
    ScheduleError,
    StartupSchedule,
    WeeklySchedule,
)
from batch_runner.schedules.parse import MAX_INTERVAL_SECONDS, parse_schedule
from batch_runner.schedules.words import describe
from batch_runner.schedules.zones import resolve_tz

__all__ = [
    "DAY_NAMES",
    "MAX_INTERVAL_SECONDS",
    "SCHEDULE_TYPES",
    "CronSchedule",
    "DailySchedule",
    "IntervalSchedule",
    "Schedule",
    "ScheduleError",
    "StartupSchedule",
    "WeeklySchedule",
    "describe",
    "next_fire",
    "next_interval_fire",
    "next_run",
    "occurrences",
    "parse_schedule",
    "resolve_tz",
    "upcoming",
    "wall_to_utc",
]
