"""Pure next-run arithmetic: a schedule and an instant in, the next instant out.

Nothing here reads the clock: every function takes the instant it reasons about, so the
scheduler loop owns time and the tests can pass any instant (SPEC section 4).

Daylight saving, as the SPEC wants it: a wall-clock time that does not exist on a day (the
spring-forward gap) runs at the first instant after the gap; a time that occurs twice (fall
back) runs once, at its first occurrence. Aware datetimes that share a tzinfo compare and
subtract by wall time, ignoring the offset, so every comparison and sum below is done in UTC.
"""

from __future__ import annotations

import difflib
import functools
import json
import math
import os
import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, tzinfo
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones


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
_DAY_NUMBERS = {name: i for i, name in enumerate(DAY_NAMES)} | {
    name[:3]: i for i, name in enumerate(DAY_NAMES)
}
_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Far beyond any sensible batch interval, and well inside what timedelta can hold.
MAX_INTERVAL_SECONDS = 3650 * 86400
_INTERVAL_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)\s*([smhd]?)", re.IGNORECASE)
_TIME_RE = re.compile(r"(\d{1,2}):(\d{2})(?::(\d{2}))?")
_INTERVAL_ALLOWED = 'seconds as a number, or a number with a unit such as "90s", "15m", "2h", "1d"'
_TIME_ALLOWED = '"HH:MM" or "HH:MM:SS" (00:00 to 23:59:59)'
_WEEKLY_ALLOWED = (
    "day names (full or three letters) separated by commas, optionally followed by a time, "
    'such as "sunday", "sunday 03:30" or "mon,wed,fri 09:00"'
)


# --- parsing -------------------------------------------------------------------------------


def parse_schedule(schedule_type: str, schedule_time: str | int | float) -> Schedule:
    """The schedule ``schedule_type`` and ``schedule_time`` describe; ScheduleError if bad."""
    try:
        return _parse_cached(schedule_type, schedule_time)
    except TypeError:  # a list or an object in the config cannot be a cache key
        return _parse_schedule(schedule_type, schedule_time)


# Schedules are immutable and configs repeat them ("02:00", "1h"): each is parsed once. Typed,
# so that 1, 1.0 and true (refused) are told apart.
@functools.lru_cache(maxsize=4096, typed=True)
def _parse_cached(schedule_type: str, schedule_time: str | int | float) -> Schedule:
    return _parse_schedule(schedule_type, schedule_time)


def _parse_schedule(schedule_type: str, schedule_time: str | int | float) -> Schedule:
    if schedule_type == "interval":
        return IntervalSchedule(_parse_interval(schedule_time))
    if schedule_type == "daily":
        return DailySchedule(_parse_time(_require_text("daily", schedule_time), "daily"))
    if schedule_type == "weekly":
        return _parse_weekly(_require_text("weekly", schedule_time))
    raise ScheduleError(
        f"schedule_type {_show(schedule_type)} is not one of {', '.join(SCHEDULE_TYPES)}"
        f"{_did_you_mean(str(schedule_type).lower(), SCHEDULE_TYPES)}."
    )


def _parse_interval(value: object) -> float:
    found = f"interval schedule_time {_show(value)}"
    # bool is an int subclass, but `true` as an interval is a mistake, not one second.
    if isinstance(value, bool) or not isinstance(value, int | float | str):
        raise ScheduleError(f"{found} is not {_INTERVAL_ALLOWED}.")
    match = _INTERVAL_RE.fullmatch(value.strip()) if isinstance(value, str) else None
    if isinstance(value, str) and match is None:
        raise ScheduleError(f"{found} is not {_INTERVAL_ALLOWED}.")
    try:
        seconds = float(match[1]) * _UNIT_SECONDS[match[2].lower()] if match else float(value)
    except OverflowError:  # an int too big for a float; reported as out of range below
        seconds = math.inf
    if not math.isfinite(seconds) or not 0 < seconds <= MAX_INTERVAL_SECONDS:
        limit = MAX_INTERVAL_SECONDS // 86400
        raise ScheduleError(f"{found} must be more than 0 seconds and at most {limit} days.")
    # Occurrences are computed in whole microseconds; a shorter period would never advance.
    if timedelta(seconds=seconds) == timedelta(0):
        raise ScheduleError(f"{found} is shorter than one microsecond.")
    return seconds


def _require_text(kind: str, value: object) -> str:
    if not isinstance(value, str):
        allowed = _TIME_ALLOWED if kind == "daily" else _WEEKLY_ALLOWED
        raise ScheduleError(f"{kind} schedule_time {_show(value)} is not a string; use {allowed}.")
    return value


def _parse_time(text: str, kind: str, whole: str | None = None) -> time:
    match = _TIME_RE.fullmatch(text.strip())
    hour, minute, second = (int(g) if g else 0 for g in match.groups()) if match else (-1, 0, 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        where = f"{_show(text)} in {_show(whole)}" if whole is not None else _show(text)
        raise ScheduleError(
            f"{kind} schedule_time {where} is not a time of day; use {_TIME_ALLOWED}."
        )
    return time(hour, minute, second)


def _parse_weekly(text: str) -> WeeklySchedule:
    if re.search(r",\s*(,|$)|^\s*,", text):
        raise ScheduleError(
            f"weekly schedule_time {_show(text)} has an empty day between "
            f"commas; use {_WEEKLY_ALLOWED}."
        )
    words = [w for w in re.split(r"[,\s]+", text.strip()) if w]
    at = time(0, 0)
    problems: list[str] = []  # a bad day and a bad time are both reported, days first
    bad_time = None
    if words and any(c.isdigit() for c in words[-1]):
        try:
            at = _parse_time(words.pop(), "weekly", whole=text)
        except ScheduleError as exc:
            bad_time = str(exc)
    if not words:
        found = f"weekly schedule_time {_show(text)}"
        raise ScheduleError(f"{found} names no day; use {_WEEKLY_ALLOWED}.")
    days = set()
    for word in words:
        try:
            days.add(_parse_day(word, text))
        except ScheduleError as exc:
            problems.append(str(exc))
    if bad_time is not None:
        problems.append(bad_time)
    if problems:
        raise ScheduleError(" Also: ".join(problems))
    return WeeklySchedule(frozenset(days), at)


def _parse_day(word: str, whole: str) -> int:
    number = _DAY_NUMBERS.get(word.lower())
    if number is None:
        hint = _did_you_mean(word.lower(), [*DAY_NAMES, *_DAY_NUMBERS])
        raise ScheduleError(
            f"weekly schedule_time {_show(whole)}: {_show(word)} is not a day of the week{hint}; "
            f"use {_WEEKLY_ALLOWED}."
        )
    return number


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def _show(value: object) -> str:
    # Values are shown as they are written in the JSON config: "15x", true, null.
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


# --- next occurrences ----------------------------------------------------------------------


def next_fire(schedule: DailySchedule | WeeklySchedule, after: datetime, tz: tzinfo) -> datetime:
    """The first occurrence strictly after ``after`` (aware, any zone), aware in ``tz``.

    Compare results across zones with ``<``/``>`` or after ``astimezone(UTC)``: Python's ``==``
    is always False between zones for a time in a repeated hour (PEP 495).
    """
    after_utc = _to_utc(after, "after")
    # Start a day early: an occurrence belongs to its local date, and `after` may lie in any zone.
    day = after_utc.astimezone(tz).date() - timedelta(days=1)
    for _ in range(9):  # a weekly schedule has an occurrence in any 7 consecutive days
        if isinstance(schedule, DailySchedule) or day.weekday() in schedule.days:
            fire = wall_to_utc(day, schedule.at, tz)
            if fire > after_utc:
                return fire.astimezone(tz)
        day += timedelta(days=1)
    raise ValueError(f"{schedule!r} has no occurrence in the week after {after.isoformat()}")


def next_interval_fire(seconds: float, anchor: datetime, after: datetime) -> datetime:
    """The first ``anchor + k * seconds`` (k >= 1) strictly after ``after``, in anchor's zone.

    Counting whole periods from a fixed anchor keeps runs start to start with no drift,
    however late each run starts or however long it takes.
    """
    period = timedelta(seconds=seconds)
    if period <= timedelta(0):
        raise ValueError(f"interval must be at least one microsecond, not {seconds!r} seconds")
    anchor_utc = _to_utc(anchor, "anchor")
    periods = (_to_utc(after, "after") - anchor_utc) // period  # exact: whole microseconds
    return (anchor_utc + max(periods + 1, 1) * period).astimezone(anchor.tzinfo)


def next_run(
    schedule: Schedule, after: datetime, tz: tzinfo, anchor: datetime | None = None
) -> datetime:
    """The next occurrence of any schedule; an interval counts from ``anchor`` (else ``after``)."""
    if isinstance(schedule, IntervalSchedule):
        return next_interval_fire(schedule.seconds, anchor or after, after)
    return next_fire(schedule, after, tz)


def upcoming(
    schedule: Schedule,
    after: datetime,
    tz: tzinfo,
    count: int,
    anchor: datetime | None = None,
) -> list[datetime]:
    """The next ``count`` occurrences after ``after``, in order."""
    if count < 0:
        raise ValueError(f"count must be 0 or more, not {count}")
    anchor = anchor or after
    fires: list[datetime] = []
    for _ in range(count):
        after = next_run(schedule, after, tz, anchor)
        fires.append(after)
    return fires


def wall_to_utc(day: date, at: time, tz: tzinfo) -> datetime:
    """The instant (in UTC) when the wall clock in ``tz`` shows ``at`` on ``day``.

    A time in a spring-forward gap gives the first instant after the gap; a time shown
    twice gives its first occurrence (fold=0).
    """
    wall = datetime.combine(day, at)
    first = wall.replace(tzinfo=tz, fold=0).astimezone(UTC)
    # The round trip shows the wall time again only if it exists; in a gap it lands elsewhere.
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap, fold=1 reads the wall time with the offset after the transition, which gives an
    # instant before the gap, and fold=0 one after it; the transition lies between the two.
    before_gap = wall.replace(tzinfo=tz, fold=1).astimezone(UTC)
    return _first_instant_with_offset(before_gap, first, tz, first.astimezone(tz).utcoffset())


def _first_instant_with_offset(
    low: datetime, high: datetime, tz: tzinfo, offset: timedelta | None
) -> datetime:
    # Bisect to the microsecond: tzinfo offers no portable way to ask for its transitions.
    step = timedelta(microseconds=1)
    while high - low > step:
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset:
            high = middle
        else:
            low = middle
    return high


def _to_utc(moment: datetime, name: str) -> datetime:
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"{name} must be an aware datetime, not {moment.isoformat()}")
    return moment.astimezone(UTC)


def apply_jitter(when: datetime, jitter: float, unit_random: float) -> datetime:
    """``when`` delayed by ``jitter * unit_random`` seconds; pass ``random.random()``."""
    if jitter < 0 or not 0 <= unit_random <= 1:
        raise ValueError(f"jitter {jitter} must be >= 0 and unit_random {unit_random} in [0, 1]")
    # Added in UTC: wall-clock addition could land in a DST gap or the wrong fold.
    delay = timedelta(seconds=jitter * unit_random)
    return (_to_utc(when, "when") + delay).astimezone(when.tzinfo)


# --- words ---------------------------------------------------------------------------------


def describe(schedule: Schedule) -> str:
    """The schedule in words: "every 15 minutes", "every Sunday at 03:30"."""
    if isinstance(schedule, IntervalSchedule):
        return f"every {_describe_seconds(schedule.seconds)}"
    at = _describe_time(schedule.at)
    if isinstance(schedule, DailySchedule) or len(schedule.days) == 7:
        return f"every day at {at}"
    names = [DAY_NAMES[d].capitalize() for d in sorted(schedule.days)]
    listed = names[0] if len(names) == 1 else f"{', '.join(names[:-1])} and {names[-1]}"
    return f"every {listed} at {at}"


def _describe_seconds(seconds: float) -> str:
    for unit, size in (("day", 86400), ("hour", 3600), ("minute", 60)):
        if seconds % size == 0:
            count = int(seconds // size)
            return unit if count == 1 else f"{count} {unit}s"
    return "second" if seconds == 1 else f"{seconds:g} seconds"


def _describe_time(at: time) -> str:
    return at.strftime("%H:%M:%S" if at.second else "%H:%M")


# --- time zones ----------------------------------------------------------------------------


def resolve_tz(name: str | None) -> tzinfo:
    """The named IANA zone, or with None the system's local zone; ScheduleError if unknown."""
    if name is None:
        return _local_tz()
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        hint = _did_you_mean(name, available_timezones())
        raise ScheduleError(
            f"time zone {_show(name)} is not a known IANA time zone{hint}; "
            'use a name such as "Europe/Berlin", "America/New_York" or "UTC".'
        ) from exc


def _local_tz() -> tzinfo:
    # $TZ wins, as it does for the C library; else the zone /etc/localtime points at.
    source = os.environ["TZ"].lstrip(":") if "TZ" in os.environ else "/etc/localtime"
    zone = _zone_from(source) if source else None
    # Last resort, e.g. a POSIX rule such as "JST-9" that the C library honours: its offset now.
    return zone or datetime.now().astimezone().tzinfo or UTC


def _zone_from(source: str) -> ZoneInfo | None:
    if not source.startswith("/"):
        return _zone_named(source)
    # Prefer the zone's name (".../zoneinfo/Europe/Berlin") so str(zone) means something.
    _, marker, key = os.path.realpath(source).partition("/zoneinfo/")
    if marker and (zone := _zone_named(key)):
        return zone
    try:
        with open(source, "rb") as handle:
            return ZoneInfo.from_file(handle, key=source)
    except (OSError, ValueError):
        return None


def _zone_named(key: str) -> ZoneInfo | None:
    try:
        return ZoneInfo(key)
    except (ZoneInfoNotFoundError, ValueError):
        return None
