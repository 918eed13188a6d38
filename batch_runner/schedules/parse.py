"""``schedule_type`` and ``schedule_time`` as written in the config, parsed into a schedule.

Every refusal is one sentence naming the value found and what is allowed."""

from __future__ import annotations

import difflib
import functools
import json
import math
import re
from collections.abc import Iterable
from datetime import time, timedelta

from batch_runner.schedules.kinds import (
    DAY_NAMES,
    DAY_NUMBERS,
    SCHEDULE_TYPES,
    DailySchedule,
    IntervalSchedule,
    Schedule,
    ScheduleError,
    StartupSchedule,
    WeeklySchedule,
)

_UNIT_SECONDS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400}
# Far beyond any sensible batch interval, and well inside what timedelta can hold.
MAX_INTERVAL_SECONDS = 3650 * 86400
# [0-9], not \d (any Unicode digit: Arabic-Indic "02:00" was a time), and the units spelled
# out, not IGNORECASE (which lets U+017F, the long s, match "s" and then find no unit for it).
_INTERVAL_RE = re.compile(r"([0-9]+(?:\.[0-9]*)?|\.[0-9]+)\s*([smhdSMHD]?)")
_TIME_RE = re.compile(r"([0-9]{1,2}):([0-9]{2})(?::([0-9]{2}))?")
_INTERVAL_ALLOWED = 'seconds as a number, or a number with a unit such as "90s", "15m", "2h", "1d"'
_TIME_ALLOWED = '"HH:MM" or "HH:MM:SS" (00:00 to 23:59:59)'
_WEEKLY_ALLOWED = (
    "day names (full or three letters) separated by commas, optionally followed by a time, "
    'such as "sunday", "sunday 03:30" or "mon,wed,fri 09:00"'
)


def parse_schedule(schedule_type: str, schedule_time: str | int | float | None) -> Schedule:
    """The schedule ``schedule_type`` and ``schedule_time`` describe; ScheduleError if bad."""
    try:
        return _parse_cached(schedule_type, schedule_time)
    except TypeError:  # a list or an object in the config cannot be a cache key
        return _parse_schedule(schedule_type, schedule_time)


# Schedules are immutable and configs repeat them ("02:00", "1h"): each is parsed once. Typed,
# so that 1, 1.0 and true (refused) are told apart.
@functools.lru_cache(maxsize=4096, typed=True)
def _parse_cached(schedule_type: str, schedule_time: str | int | float | None) -> Schedule:
    return _parse_schedule(schedule_type, schedule_time)


def _parse_schedule(schedule_type: str, schedule_time: str | int | float | None) -> Schedule:
    if schedule_type == "interval":
        return IntervalSchedule(_parse_interval(schedule_time))
    if schedule_type == "daily":
        return DailySchedule(_parse_time(_require_text("daily", schedule_time), "daily"))
    if schedule_type == "weekly":
        return _parse_weekly(_require_text("weekly", schedule_time))
    if schedule_type == "cron":
        # Imported here: cron.py imports show() from this module, and only cron jobs need it.
        from batch_runner.schedules.cron import parse_cron

        return parse_cron(schedule_time)
    if schedule_type == "startup":
        return _parse_startup(schedule_time)
    raise ScheduleError(
        f"schedule_type {show(schedule_type)} is not one of {', '.join(SCHEDULE_TYPES)}"
        f"{did_you_mean(str(schedule_type).lower(), SCHEDULE_TYPES)}."
    )


def _parse_interval(value: object) -> float:
    found = f"interval schedule_time {show(value)}"
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


def _parse_startup(value: object) -> StartupSchedule:
    if value is None or (isinstance(value, str) and not value.strip()):
        return StartupSchedule()
    raise ScheduleError(
        f"startup schedule_time {show(value)}: a startup job takes no schedule_time; leave it "
        'out or set it to "" (the job runs once each time the scheduler starts).'
    )


def _require_text(kind: str, value: object) -> str:
    if not isinstance(value, str):
        allowed = _TIME_ALLOWED if kind == "daily" else _WEEKLY_ALLOWED
        raise ScheduleError(f"{kind} schedule_time {show(value)} is not a string; use {allowed}.")
    return value


def _parse_time(text: str, kind: str, whole: str | None = None) -> time:
    match = _TIME_RE.fullmatch(text.strip())
    hour, minute, second = (int(g) if g else 0 for g in match.groups()) if match else (-1, 0, 0)
    if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 59):
        where = f"{show(text)} in {show(whole)}" if whole is not None else show(text)
        hint = _clock_hint(text)
        hint = f' (did you mean "{hint}"?)' if hint else ""
        raise ScheduleError(
            f"{kind} schedule_time {where} is not a time of day; use {_TIME_ALLOWED}{hint}."
        )
    return time(hour, minute, second)


# "9am", "9:30 PM", "0930", "9.30", "9h30": what people write for a time of day.
_TWELVE_HOUR_RE = re.compile(r"(\d{1,2})(?:[:.](\d{2}))?\s*([ap])\.?m\.?", re.IGNORECASE)
_OTHER_CLOCK_RE = re.compile(r"(\d{1,2})(?:[.hH]|(?=\d{2}$))(\d{2})?")


def _clock_hint(text: str) -> str | None:
    """The "HH:MM" a time written another way means, if it is clear."""
    text = text.strip()
    match = _TWELVE_HOUR_RE.fullmatch(text)
    if match:
        hour, minute = int(match[1]), int(match[2] or 0)
        if not 1 <= hour <= 12:
            return None
        hour = hour % 12 + (12 if match[3].lower() == "p" else 0)
    else:
        match = _OTHER_CLOCK_RE.fullmatch(text)
        if not match:
            return None
        hour, minute = int(match[1]), int(match[2] or 0)
    return f"{hour:02d}:{minute:02d}" if hour <= 23 and minute <= 59 else None


def _parse_weekly(text: str) -> WeeklySchedule:
    if re.search(r",\s*(,|$)|^\s*,", text):
        raise ScheduleError(
            f"weekly schedule_time {show(text)} has an empty day between "
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
        found = f"weekly schedule_time {show(text)}"
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
    number = DAY_NUMBERS.get(word.lower())
    if number is None:
        hint = did_you_mean(word.lower(), [*DAY_NAMES, *DAY_NUMBERS])
        raise ScheduleError(
            f"weekly schedule_time {show(whole)}: {show(word)} is not a day of the week{hint}; "
            f"use {_WEEKLY_ALLOWED}."
        )
    return number


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(dict.fromkeys(choices)), n=1, cutoff=0.6)
    return f' (did you mean "{close[0]}"?)' if close else ""


def show(value: object) -> str:
    # Values are shown as they are written in the JSON config: "15x", true, null.
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)
