"""schedules.py: parsing, words, and next-run arithmetic at explicit instants (SPEC section 4).

DST days used below (all Sundays in 2026):
  Europe/Berlin     2026-03-29 02:00 CET -> 03:00 CEST at 01:00 UTC (02:00-03:00 does not exist)
                    2026-10-25 03:00 CEST -> 02:00 CET at 01:00 UTC (02:00-03:00 happens twice)
  America/New_York  2026-03-08 02:00 EST -> 03:00 EDT at 07:00 UTC
                    2026-11-01 02:00 EDT -> 01:00 EST at 06:00 UTC (01:00-02:00 happens twice)
"""

from __future__ import annotations

import itertools
from datetime import UTC, date, datetime, time, timedelta, timezone, tzinfo
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from freezegun import freeze_time

from batch_runner.schedules import (
    DailySchedule,
    IntervalSchedule,
    Schedule,
    ScheduleError,
    WeeklySchedule,
    describe,
    next_fire,
    next_interval_fire,
    parse_schedule,
    resolve_tz,
    upcoming,
    wall_to_utc,
)

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
TOKYO = ZoneInfo("Asia/Tokyo")
MON, TUE, WED, THU, FRI, SAT, SUN = range(7)


def utc(*args: int) -> datetime:
    return datetime(*args, tzinfo=UTC)  # type: ignore[misc]


def daily(at: str) -> Schedule:
    return parse_schedule("daily", at)


# --- parse_schedule ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_type", "schedule_time", "expected"),
    [
        ("interval", 3600, IntervalSchedule(3600.0)),
        ("interval", 0.5, IntervalSchedule(0.5)),
        ("interval", "3600", IntervalSchedule(3600.0)),
        ("interval", " 45 ", IntervalSchedule(45.0)),
        ("interval", "0.5", IntervalSchedule(0.5)),
        ("interval", ".25", IntervalSchedule(0.25)),
        ("interval", "90s", IntervalSchedule(90.0)),
        ("interval", "15m", IntervalSchedule(900.0)),
        ("interval", "2h", IntervalSchedule(7200.0)),
        ("interval", "1d", IntervalSchedule(86400.0)),
        ("interval", "1.5h", IntervalSchedule(5400.0)),
        ("interval", "10 M", IntervalSchedule(600.0)),
        ("daily", "02:00", DailySchedule(time(2, 0))),
        ("daily", "2:00", DailySchedule(time(2, 0))),
        ("daily", "00:00", DailySchedule(time(0, 0))),
        ("daily", "23:59:59", DailySchedule(time(23, 59, 59))),
        ("daily", " 09:30 ", DailySchedule(time(9, 30))),
        ("weekly", "sunday", WeeklySchedule(frozenset({SUN}), time(0, 0))),
        ("weekly", "Sunday 03:30", WeeklySchedule(frozenset({SUN}), time(3, 30))),
        ("weekly", "SUN 3:30", WeeklySchedule(frozenset({SUN}), time(3, 30))),
        ("weekly", "mon,wed,fri 09:00", WeeklySchedule(frozenset({MON, WED, FRI}), time(9))),
        ("weekly", "Mon, Wed,  fri 09:00", WeeklySchedule(frozenset({MON, WED, FRI}), time(9))),
        ("weekly", "tuesday,thu 18:45:10", WeeklySchedule(frozenset({TUE, THU}), time(18, 45, 10))),
        ("weekly", "sat,saturday", WeeklySchedule(frozenset({SAT}), time(0, 0))),
    ],
)
def test_parse_valid(schedule_type: str, schedule_time: str | float, expected: Schedule) -> None:
    assert parse_schedule(schedule_type, schedule_time) == expected


@pytest.mark.parametrize(
    ("schedule_type", "schedule_time", "fragment"),
    [
        ("interval", 0, "more than 0"),
        ("interval", -5, "more than 0"),
        ("interval", "0", "more than 0"),
        ("interval", "0m", "more than 0"),
        ("interval", float("inf"), "more than 0"),
        ("interval", float("nan"), "more than 0"),
        ("interval", 10**12, "at most 3650 days"),
        ("interval", 10**400, "at most 3650 days"),
        ("interval", "1" * 400, "at most 3650 days"),
        ("interval", 1e-9, "microsecond"),
        ("interval", True, 'seconds as a number, or a number with a unit such as "90s"'),
        ("interval", None, "interval schedule_time null is not"),
        ("interval", [60], "interval schedule_time [60] is not"),
        ("interval", "", 'interval schedule_time "" is not'),
        ("interval", "-5", "is not"),
        ("interval", "15 minutes", '"15 minutes" is not'),
        ("interval", "1h30m", "is not"),
        ("interval", "nan", "is not"),
        ("interval", "5w", "is not"),
        ("daily", "24:00", '"24:00" is not a time of day; use "HH:MM" or "HH:MM:SS"'),
        ("daily", "12:60", "is not a time of day"),
        ("daily", "12:00:60", "is not a time of day"),
        ("daily", "2", "is not a time of day"),
        ("daily", "02:5", "is not a time of day"),
        ("daily", "2pm", "is not a time of day"),
        ("daily", "", "is not a time of day"),
        ("daily", "every day", "is not a time of day"),
        ("daily", 200, "daily schedule_time 200 is not a string"),
        ("weekly", "funday", '"funday" is not a day of the week (did you mean "sunday"?)'),
        ("weekly", "mon,tusday 09:00", '(did you mean "tuesday"?)'),
        ("weekly", "xyz", '"xyz" is not a day of the week; use day names'),
        ("weekly", "09:00", "names no day"),
        ("weekly", "", "names no day"),
        ("weekly", "sunday 25:00", '"25:00" in "sunday 25:00" is not a time of day'),
        ("weekly", "sunday 3", "is not a time of day"),
        (
            "weekly",
            "mnday 25:00",
            '(did you mean "monday"?); use day names (full or three '
            'letters) separated by commas, optionally followed by a time, such as "sunday", '
            '"sunday 03:30" or "mon,wed,fri 09:00". Also: weekly schedule_time "25:00"',
        ),
        ("weekly", "mon,,wed", "has an empty day between commas"),
        ("weekly", 7, "weekly schedule_time 7 is not a string"),
        (
            "hourly",
            "1",
            'schedule_type "hourly" is not one of interval, daily, weekly, cron, startup.',
        ),
        ("dialy", "02:00", '(did you mean "daily"?)'),
    ],
)
def test_parse_invalid(schedule_type: str, schedule_time: object, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule(schedule_type, schedule_time)  # type: ignore[arg-type]
    message = str(caught.value)
    assert fragment in message
    assert message.endswith(".") and "\n" not in message


def test_schedule_error_is_a_value_error() -> None:
    # pydantic turns a ValueError raised in a validator into a validation problem.
    assert issubclass(ScheduleError, ValueError)


# --- describe ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_type", "schedule_time", "words"),
    [
        ("interval", "15m", "every 15 minutes"),
        ("interval", 90, "every 90 seconds"),
        ("interval", "2h", "every 2 hours"),
        ("interval", 60, "every minute"),
        ("interval", 1, "every second"),
        ("interval", 0.5, "every 0.5 seconds"),
        ("interval", "90m", "every 90 minutes"),
        ("interval", "1d", "every day"),
        ("interval", "2d", "every 2 days"),
        ("daily", "02:00", "every day at 02:00"),
        ("daily", "2:05:30", "every day at 02:05:30"),
        ("weekly", "fri,mon,wed 09:00", "every Monday, Wednesday and Friday at 09:00"),
        ("weekly", "sunday", "every Sunday at 00:00"),
        ("weekly", "sat,sun 10:00", "every Saturday and Sunday at 10:00"),
        ("weekly", "mon,tue,wed,thu,fri,sat,sun 08:00", "every day at 08:00"),
    ],
)
def test_describe(schedule_type: str, schedule_time: str | int, words: str) -> None:
    assert describe(parse_schedule(schedule_type, schedule_time)) == words


# --- next_fire around daylight saving ------------------------------------------------------

DST_CASES = [
    # Berlin, spring forward: 02:30 does not exist on 03-29 and runs at 03:00 CEST.
    (BERLIN, "02:30", utc(2026, 3, 28, 23), utc(2026, 3, 29, 1), "2026-03-29T03:00:00+02:00"),
    (BERLIN, "02:30", utc(2026, 3, 29, 0, 59, 59), utc(2026, 3, 29, 1), None),
    (BERLIN, "02:30", utc(2026, 3, 29, 1), utc(2026, 3, 30, 0, 30), "2026-03-30T02:30:00+02:00"),
    (BERLIN, "02:30", utc(2026, 3, 29, 1, 10), utc(2026, 3, 30, 0, 30), None),
    (BERLIN, "02:00", utc(2026, 3, 28, 23), utc(2026, 3, 29, 1), "2026-03-29T03:00:00+02:00"),
    (BERLIN, "02:59:59", utc(2026, 3, 28, 23), utc(2026, 3, 29, 1), None),
    # ...and the times around the gap are not moved.
    (BERLIN, "01:59:59", utc(2026, 3, 28, 23), utc(2026, 3, 29, 0, 59, 59), None),
    (BERLIN, "03:00", utc(2026, 3, 28, 23), utc(2026, 3, 29, 1), "2026-03-29T03:00:00+02:00"),
    (BERLIN, "03:30", utc(2026, 3, 28, 23), utc(2026, 3, 29, 1, 30), None),
    (BERLIN, "01:30", utc(2026, 3, 28, 23), utc(2026, 3, 29, 0, 30), "2026-03-29T01:30:00+01:00"),
    (BERLIN, "02:30", utc(2026, 3, 27, 12), utc(2026, 3, 28, 1, 30), "2026-03-28T02:30:00+01:00"),
    # Berlin, fall back: 02:30 happens twice on 10-25 and runs at the first (CEST) only.
    (BERLIN, "02:30", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0, 30), "2026-10-25T02:30:00+02:00"),
    (BERLIN, "02:30", utc(2026, 10, 25, 0, 29), utc(2026, 10, 25, 0, 30), None),
    (BERLIN, "02:30", utc(2026, 10, 25, 0, 30), utc(2026, 10, 26, 1, 30), None),
    (BERLIN, "02:30", utc(2026, 10, 25, 0, 45), utc(2026, 10, 26, 1, 30), None),
    (BERLIN, "02:30", utc(2026, 10, 25, 1, 15), utc(2026, 10, 26, 1, 30), None),
    (BERLIN, "02:00", utc(2026, 10, 24, 12), utc(2026, 10, 25, 0), "2026-10-25T02:00:00+02:00"),
    (BERLIN, "03:00", utc(2026, 10, 24, 12), utc(2026, 10, 25, 2), "2026-10-25T03:00:00+01:00"),
    (BERLIN, "01:30", utc(2026, 10, 24, 12), utc(2026, 10, 24, 23, 30), None),
    (BERLIN, "12:00", utc(2026, 10, 24, 12), utc(2026, 10, 25, 11), "2026-10-25T12:00:00+01:00"),
    # New York, spring forward: 02:30 runs at 03:00 EDT.
    (NEW_YORK, "02:30", utc(2026, 3, 8, 5), utc(2026, 3, 8, 7), "2026-03-08T03:00:00-04:00"),
    (NEW_YORK, "02:30", utc(2026, 3, 8, 6, 59), utc(2026, 3, 8, 7), None),
    (NEW_YORK, "02:30", utc(2026, 3, 8, 7), utc(2026, 3, 9, 6, 30), "2026-03-09T02:30:00-04:00"),
    (NEW_YORK, "01:59", utc(2026, 3, 8, 5), utc(2026, 3, 8, 6, 59), "2026-03-08T01:59:00-05:00"),
    (NEW_YORK, "03:15", utc(2026, 3, 8, 5), utc(2026, 3, 8, 7, 15), "2026-03-08T03:15:00-04:00"),
    # New York, fall back: 01:30 runs at 01:30 EDT only.
    (NEW_YORK, "01:30", utc(2026, 11, 1, 4), utc(2026, 11, 1, 5, 30), "2026-11-01T01:30:00-04:00"),
    (NEW_YORK, "01:30", utc(2026, 11, 1, 5, 30), utc(2026, 11, 2, 6, 30), None),
    (NEW_YORK, "01:30", utc(2026, 11, 1, 6, 15), utc(2026, 11, 2, 6, 30), None),
    (NEW_YORK, "01:00", utc(2026, 10, 31, 12), utc(2026, 11, 1, 5), "2026-11-01T01:00:00-04:00"),
    (NEW_YORK, "02:00", utc(2026, 10, 31, 12), utc(2026, 11, 1, 7), "2026-11-01T02:00:00-05:00"),
    (NEW_YORK, "00:30", utc(2026, 10, 31, 12), utc(2026, 11, 1, 4, 30), None),
]


@pytest.mark.parametrize(("tz", "at", "after", "expected", "wall"), DST_CASES)
def test_daily_next_fire_across_dst(
    tz: ZoneInfo, at: str, after: datetime, expected: datetime, wall: str | None
) -> None:
    fire = next_fire(daily(at), after, tz)
    # In UTC: `==` between zones is always False for a time in a repeated hour (PEP 495).
    assert fire.astimezone(UTC) == expected
    assert fire.tzinfo is tz
    if wall is not None:
        assert fire.isoformat() == wall


@pytest.mark.parametrize(("tz", "at", "after", "expected", "wall"), DST_CASES)
def test_weekly_next_fire_across_dst(
    tz: ZoneInfo, at: str, after: datetime, expected: datetime, wall: str | None
) -> None:
    # Every transition day is a Sunday: a weekly Sunday job fires when the daily one does on
    # that Sunday, and otherwise exactly one local week after the Sunday occurrence.
    weekly = parse_schedule("weekly", f"sunday {at}")
    fire = next_fire(weekly, after, tz)
    local = expected.astimezone(tz)
    if local.weekday() == SUN:
        assert fire.astimezone(UTC) == expected
    else:
        assert fire.weekday() == SUN and fire > after
        just_before = fire.astimezone(UTC) - timedelta(seconds=1)
        assert next_fire(daily(at), just_before, tz).astimezone(UTC) == fire.astimezone(UTC)


def test_repeated_hour_runs_once_that_day() -> None:
    fires = upcoming(daily("02:30"), utc(2026, 10, 24, 0), BERLIN, 3)
    assert [f.astimezone(UTC) for f in fires] == [
        utc(2026, 10, 24, 0, 30),
        utc(2026, 10, 25, 0, 30),
        utc(2026, 10, 26, 1, 30),
    ]
    assert [f.fold for f in fires] == [0, 0, 0]


def test_daily_through_a_whole_year_keeps_the_wall_clock() -> None:
    for tz in (BERLIN, NEW_YORK):
        fires = upcoming(daily("02:30"), utc(2025, 12, 31, 12), tz, 365)
        assert len({f.date() for f in fires}) == 365
        assert all(a < b for a, b in itertools.pairwise(fires))
        moved = [f for f in fires if f.time() != time(2, 30)]
        assert [(f.date(), f.time()) for f in moved] == [
            (date(2026, 3, 29) if tz is BERLIN else date(2026, 3, 8), time(3, 0))
        ]


def _first_instant_showing(day: date, at: time, tz: ZoneInfo) -> datetime:
    """Oracle: the first instant whose wall clock reaches ``at``, scanned in 10-minute steps.

    The steps hit every instant that matters: the times tested are on a 10-minute grid and
    every transition of these zones is on the hour.
    """
    target = datetime.combine(day, at)
    moment = target.replace(tzinfo=UTC) - timedelta(hours=15)  # earlier than any UTC offset
    while moment.astimezone(tz).replace(tzinfo=None) < target:
        moment += timedelta(minutes=10)
    return moment


@pytest.mark.parametrize(
    ("tz", "day"),
    [
        (BERLIN, date(2026, 3, 29)),
        (BERLIN, date(2026, 10, 25)),
        (NEW_YORK, date(2026, 3, 8)),
        (NEW_YORK, date(2026, 11, 1)),
        (TOKYO, date(2026, 3, 29)),
    ],
)
def test_wall_to_utc_matches_a_brute_force_scan(tz: ZoneInfo, day: date) -> None:
    # "First instant at or after the wall time" covers all three rules at once: normal times
    # exactly, gap times at the end of the gap, repeated times at their first occurrence.
    for minute in range(0, 24 * 60, 10):
        at = time(minute // 60, minute % 60)
        assert wall_to_utc(day, at, tz) == _first_instant_showing(day, at, tz), at


# --- zones without DST, and `after` in any zone --------------------------------------------


@pytest.mark.parametrize(
    ("tz", "expected"),
    [
        (TOKYO, utc(2026, 3, 28, 17, 30)),
        (ZoneInfo("UTC"), utc(2026, 3, 29, 2, 30)),
        (UTC, utc(2026, 3, 29, 2, 30)),
        (timezone(timedelta(hours=5, minutes=30)), utc(2026, 3, 28, 21)),
    ],
)
def test_zone_without_dst(tz: tzinfo, expected: datetime) -> None:
    after = utc(2026, 3, 28, 12)
    fire = next_fire(daily("02:30"), after, tz)
    assert fire == expected and fire.tzinfo is tz
    assert upcoming(daily("02:30"), after, tz, 3)[2] - fire == timedelta(days=2)


def test_after_may_be_in_any_zone() -> None:
    expected = utc(2026, 3, 29, 1)
    for zone in (UTC, TOKYO, NEW_YORK, timezone(timedelta(hours=-11))):
        after = utc(2026, 3, 28, 23).astimezone(zone)
        assert next_fire(daily("02:30"), after, BERLIN) == expected


def test_naive_after_is_refused() -> None:
    with pytest.raises(ValueError, match="aware"):
        next_fire(daily("02:30"), datetime(2026, 3, 29), BERLIN)


# --- weekly across week boundaries ---------------------------------------------------------


@pytest.mark.parametrize(
    ("after", "expected"),
    [
        (utc(2026, 3, 2, 8), utc(2026, 3, 2, 9)),  # Monday before 09:00
        (utc(2026, 3, 2, 9), utc(2026, 3, 4, 9)),  # Monday exactly at 09:00
        (utc(2026, 3, 4, 12), utc(2026, 3, 6, 9)),  # Wednesday afternoon
        (utc(2026, 3, 6, 9, 0, 1), utc(2026, 3, 9, 9)),  # Friday after: next week's Monday
        (utc(2026, 3, 7, 12), utc(2026, 3, 9, 9)),  # Saturday
        (utc(2026, 3, 8, 23, 59, 59), utc(2026, 3, 9, 9)),  # Sunday night
        (utc(2026, 12, 31, 12), utc(2027, 1, 1, 9)),  # across the year: a Friday
    ],
)
def test_weekly_several_days(after: datetime, expected: datetime) -> None:
    assert next_fire(parse_schedule("weekly", "mon,wed,fri 09:00"), after, UTC) == expected


def test_weekly_one_day_is_one_week_apart() -> None:
    sunday = parse_schedule("weekly", "sunday")
    fires = upcoming(sunday, utc(2026, 3, 1), UTC, 3)  # 2026-03-01 00:00 is a Sunday
    assert fires == [utc(2026, 3, 8), utc(2026, 3, 15), utc(2026, 3, 22)]


def test_weekly_upcoming_in_order_over_weeks() -> None:
    weekly = parse_schedule("weekly", "fri,tue 18:00")
    fires = upcoming(weekly, utc(2026, 3, 1), TOKYO, 6)
    assert [f.strftime("%a %d %H:%M") for f in fires] == [
        "Tue 03 18:00",
        "Fri 06 18:00",
        "Tue 10 18:00",
        "Fri 13 18:00",
        "Tue 17 18:00",
        "Fri 20 18:00",
    ]


# --- intervals -----------------------------------------------------------------------------


def test_interval_first_run_is_one_period_after_the_anchor() -> None:
    start = utc(2026, 1, 1, 12)
    assert next_interval_fire(60, start, start) == start + timedelta(seconds=60)
    assert next_interval_fire(60, start, start - timedelta(hours=1)) == start + timedelta(minutes=1)
    assert upcoming(IntervalSchedule(60), start, BERLIN, 2) == [
        utc(2026, 1, 1, 12, 1),
        utc(2026, 1, 1, 12, 2),
    ]


def test_interval_is_strictly_after() -> None:
    anchor = utc(2026, 1, 1)
    forty = utc(2026, 1, 1, 0, 0, 40)
    assert next_interval_fire(10, anchor, anchor + timedelta(seconds=30)) == forty
    assert next_interval_fire(10, anchor, anchor + timedelta(seconds=39.999999)) == forty


def test_interval_has_no_drift_over_thousands_of_periods() -> None:
    anchor = utc(2026, 1, 1)
    fires = upcoming(IntervalSchedule(0.1), anchor, UTC, 5000, anchor=anchor)
    assert fires[-1] == anchor + timedelta(seconds=500)
    assert {b - a for a, b in itertools.pairwise(fires)} == {timedelta(seconds=0.1)}
    far = anchor + timedelta(seconds=0.1 * 1_000_000 + 0.05)
    assert next_interval_fire(0.1, anchor, far) == anchor + timedelta(seconds=100_000.1)


def test_interval_runs_start_to_start_whatever_each_run_takes() -> None:
    # The loop asks again after each run ends; starts stay on the anchor's grid, and a run
    # that overruns a period skips to the next grid point instead of stacking.
    anchor = utc(2026, 1, 1)
    start = next_interval_fire(60, anchor, anchor)
    for run_seconds in (2.5, 59.9, 0.0, 90.0, 13.7):
        end = start + timedelta(seconds=run_seconds)
        start = next_interval_fire(60, anchor, end)
        assert (start - anchor) % timedelta(seconds=60) == timedelta(0)
    assert start == anchor + timedelta(minutes=7)


def test_interval_counts_real_seconds_across_dst() -> None:
    anchor = datetime(2026, 3, 29, 1, 30, tzinfo=BERLIN)  # CET, half an hour before the gap
    fire = next_interval_fire(3600, anchor, anchor)
    assert fire.isoformat() == "2026-03-29T03:30:00+02:00"
    assert fire.tzinfo is BERLIN


def test_interval_refuses_a_zero_period() -> None:
    with pytest.raises(ValueError, match="microsecond"):
        next_interval_fire(0, utc(2026, 1, 1), utc(2026, 1, 1))


def test_upcoming_count() -> None:
    assert upcoming(daily("02:00"), utc(2026, 1, 1), UTC, 0) == []
    with pytest.raises(ValueError):
        upcoming(daily("02:00"), utc(2026, 1, 1), UTC, -1)


# --- time zones ----------------------------------------------------------------------------


def test_resolve_tz_by_name() -> None:
    assert resolve_tz("Europe/Berlin") == BERLIN
    assert resolve_tz("UTC").utcoffset(None) == timedelta(0)


@pytest.mark.parametrize("name", ["Europe/Berln", "Mars/Olympus", "", "../etc/passwd"])
def test_resolve_tz_unknown(name: str) -> None:
    with pytest.raises(ScheduleError, match="is not a known IANA time zone"):
        resolve_tz(name)


def test_resolve_tz_did_you_mean() -> None:
    with pytest.raises(ScheduleError, match='did you mean "America/New_York"'):
        resolve_tz("America/New_Yrok")


@pytest.mark.parametrize(
    ("tz_env", "key"),
    [
        ("Asia/Tokyo", "Asia/Tokyo"),
        (":Europe/Berlin", "Europe/Berlin"),
        ("/usr/share/zoneinfo/America/New_York", "America/New_York"),
    ],
)
def test_resolve_local_zone_respects_tz(
    monkeypatch: pytest.MonkeyPatch, tz_env: str, key: str
) -> None:
    if tz_env.startswith("/") and not Path(tz_env).exists():
        pytest.skip("no system zoneinfo files")
    monkeypatch.setenv("TZ", tz_env)
    assert resolve_tz(None) == ZoneInfo(key)


def test_resolve_local_zone_without_tz(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TZ", raising=False)
    zone = resolve_tz(None)
    assert zone.utcoffset(datetime(2026, 1, 1)) is not None


# --- clock-free under a frozen clock -------------------------------------------------------


def test_frozen_clock_drives_next_fire() -> None:
    # The scheduler loop reads the clock and passes it in; freezing that clock is all a test
    # needs to pin down "the next run from now", here half an hour before Berlin's gap.
    with freeze_time("2026-03-29 00:30:00"):
        now = datetime.now(BERLIN)
        assert now.isoformat() == "2026-03-29T01:30:00+01:00"
        assert next_fire(daily("02:30"), now, BERLIN).isoformat() == "2026-03-29T03:00:00+02:00"
        assert upcoming(IntervalSchedule(900), now, BERLIN, 2)[1] == utc(2026, 3, 29, 1)


def test_results_do_not_depend_on_the_clock() -> None:
    after = utc(2026, 10, 24, 12)
    expected = next_fire(daily("02:30"), after, BERLIN)
    for frozen in ("1999-01-01", "2026-10-25 00:30:00", "2040-06-30"):
        with freeze_time(frozen):
            assert next_fire(daily("02:30"), after, BERLIN) == expected
            assert next_interval_fire(7, after, after) == after + timedelta(seconds=7)


def test_a_parsed_schedule_is_reused_but_true_is_never_taken_for_one_second() -> None:
    from batch_runner.schedules import IntervalSchedule, ScheduleError, parse_schedule

    assert parse_schedule("interval", 1) == IntervalSchedule(1.0)
    assert parse_schedule("daily", "02:00") is parse_schedule("daily", "02:00")
    with pytest.raises(ScheduleError):
        parse_schedule("interval", True)
    with pytest.raises(ScheduleError):
        parse_schedule("interval", [60])  # cannot be a cache key: parsed, and refused
