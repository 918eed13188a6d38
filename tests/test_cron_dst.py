"""Cron schedules across daylight saving, with the policy of daily and weekly (issue 20).

A wall time in the spring-forward gap runs once, at the first instant after the gap (several
gap times collapse into that one run); a wall time shown twice runs once, at its first pass.
So a job every 10 minutes runs through the first pass of a repeated hour and pauses through
the second: a 70-minute pause in real time (40 minutes on Lord Howe Island's half-hour shift).

DST days (2026):
  Europe/Berlin       03-29 02:00-03:00 missing (01:00Z); 10-25 02:00-03:00 twice (00:00Z-02:00Z)
  America/New_York    03-08 02:00-03:00 missing (07:00Z); 11-01 01:00-02:00 twice (05:00Z-07:00Z)
  Australia/Lord_Howe 10-04 02:00-02:30 missing (10-03 15:30Z); 04-05 01:30-02:00 twice
                      (04-04 14:30Z-15:30Z)
"""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from batch_runner.schedules import parse_schedule, upcoming

BERLIN = ZoneInfo("Europe/Berlin")
NEW_YORK = ZoneInfo("America/New_York")
LORD_HOWE = ZoneInfo("Australia/Lord_Howe")


def z(month: int, day: int, hour: int = 0, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=UTC)


def runs(expression: str, tz: ZoneInfo, after: datetime, count: int) -> list[datetime]:
    return [
        t.astimezone(UTC) for t in upcoming(parse_schedule("cron", expression), after, tz, count)
    ]


def test_the_dst_days_are_where_the_docstring_says() -> None:
    assert z(3, 29, 0, 59).astimezone(BERLIN).hour == 1 and z(3, 29, 1).astimezone(BERLIN).hour == 3
    assert z(10, 25, 0, 30).astimezone(BERLIN).hour == z(10, 25, 1, 30).astimezone(BERLIN).hour
    assert z(3, 8, 7).astimezone(NEW_YORK).hour == 3
    assert z(11, 1, 5, 30).astimezone(NEW_YORK).hour == z(11, 1, 6, 30).astimezone(NEW_YORK).hour
    assert z(10, 3, 15, 29).astimezone(LORD_HOWE).strftime("%H:%M") == "01:59"
    assert z(10, 3, 15, 30).astimezone(LORD_HOWE).strftime("%H:%M") == "02:30"
    first, second = z(4, 4, 14, 45).astimezone(LORD_HOWE), z(4, 4, 15, 15).astimezone(LORD_HOWE)
    assert first.strftime("%H:%M") == second.strftime("%H:%M") == "01:45"


@pytest.mark.parametrize(
    ("expression", "tz", "after", "expected"),
    [
        # fixed times in and around the gap
        ("30 1 * * *", BERLIN, z(3, 28, 23), [z(3, 29, 0, 30), z(3, 29, 23, 30)]),
        ("0 2 * * *", BERLIN, z(3, 28, 23), [z(3, 29, 1), z(3, 30, 0)]),
        ("30 2 * * *", BERLIN, z(3, 28, 23), [z(3, 29, 1), z(3, 30, 0, 30)]),
        ("0,30 2 * * *", BERLIN, z(3, 28, 23), [z(3, 29, 1), z(3, 30, 0), z(3, 30, 0, 30)]),
        ("30 3 * * *", BERLIN, z(3, 28, 23), [z(3, 29, 1, 30), z(3, 30, 1, 30)]),
        ("30 2 * * *", NEW_YORK, z(3, 8, 0), [z(3, 8, 7), z(3, 9, 6, 30)]),
        ("15 2 * * *", LORD_HOWE, z(10, 3, 12), [z(10, 3, 15, 30), z(10, 4, 15, 15)]),
        ("45 2 * * *", LORD_HOWE, z(10, 3, 12), [z(10, 3, 15, 45), z(10, 4, 15, 45)]),
        # fixed times in and around the repeated hour: the first pass only
        ("30 2 * * *", BERLIN, z(10, 24, 22), [z(10, 25, 0, 30), z(10, 26, 1, 30)]),
        ("30 1 * * *", NEW_YORK, z(11, 1, 0), [z(11, 1, 5, 30), z(11, 2, 6, 30)]),
        ("0 2 * * *", NEW_YORK, z(11, 1, 0), [z(11, 1, 7), z(11, 2, 7)]),
        ("45 1 * * *", LORD_HOWE, z(4, 4, 12), [z(4, 4, 14, 45), z(4, 5, 15, 15)]),
        # a day-of-week schedule lands on the DST Sunday itself
        ("30 2 * * sun", BERLIN, z(3, 28), [z(3, 29, 1), z(4, 5, 0, 30)]),
    ],
)
def test_fixed_times_follow_the_daily_policy(
    expression: str, tz: ZoneInfo, after: datetime, expected: list[datetime]
) -> None:
    assert runs(expression, tz, after, len(expected)) == expected


def test_every_ten_minutes_through_the_gap_runs_once_at_its_end() -> None:
    # 01:40, 01:50 CET, then 02:00-02:50 (missing) and 03:00 CEST are one run at 01:00Z.
    assert runs("*/10 * * * *", BERLIN, z(3, 29, 0, 30), 4) == [
        z(3, 29, 0, 40),
        z(3, 29, 0, 50),
        z(3, 29, 1),
        z(3, 29, 1, 10),
    ]


def test_every_ten_minutes_pauses_through_the_second_pass_of_the_repeated_hour() -> None:
    fires = runs("*/10 * * * *", BERLIN, z(10, 24, 23, 45), 8)
    assert fires == [
        z(10, 24, 23, 50),
        z(10, 25, 0, 0),
        z(10, 25, 0, 10),
        z(10, 25, 0, 20),
        z(10, 25, 0, 30),
        z(10, 25, 0, 40),
        z(10, 25, 0, 50),
        z(10, 25, 2, 0),  # 03:00 CET: 70 minutes after the last run
    ]
    assert max(b - a for a, b in itertools.pairwise(fires)) == timedelta(minutes=70)


def test_a_restart_during_the_second_pass_waits_for_the_hour_after() -> None:
    after = z(10, 25, 1, 35)  # 02:35 CET, the second time the clock shows it
    assert runs("*/10 * * * *", BERLIN, after, 2) == [z(10, 25, 2), z(10, 25, 2, 10)]


@pytest.mark.parametrize(
    ("expression", "tz", "after", "expected"),
    [
        (
            "*/15 * * * *",
            NEW_YORK,
            z(3, 8, 6, 40),
            [z(3, 8, 6, 45), z(3, 8, 7), z(3, 8, 7, 15)],
        ),
        (
            "*/15 * * * *",
            NEW_YORK,
            z(11, 1, 5, 40),
            [z(11, 1, 5, 45), z(11, 1, 7), z(11, 1, 7, 15)],
        ),
        (
            "*/15 * * * *",
            LORD_HOWE,
            z(10, 3, 15, 10),
            [z(10, 3, 15, 15), z(10, 3, 15, 30), z(10, 3, 15, 45)],
        ),
        (
            "*/10 * * * *",
            LORD_HOWE,
            z(4, 4, 14, 25),
            [z(4, 4, 14, 30), z(4, 4, 14, 40), z(4, 4, 14, 50), z(4, 4, 15, 30)],
        ),
        ("0 * * * *", BERLIN, z(3, 28, 23, 30), [z(3, 29, 0), z(3, 29, 1), z(3, 29, 2)]),
        ("0 * * * *", BERLIN, z(10, 24, 23, 30), [z(10, 25, 0), z(10, 25, 2), z(10, 25, 3)]),
        ("0 * * * *", NEW_YORK, z(11, 1, 4, 30), [z(11, 1, 5), z(11, 1, 7), z(11, 1, 8)]),
        (
            "0 * * * *",
            LORD_HOWE,
            z(10, 3, 14),
            [z(10, 3, 14, 30), z(10, 3, 15, 30), z(10, 3, 16)],
        ),
        ("0 * * * *", LORD_HOWE, z(4, 4, 13, 30), [z(4, 4, 14), z(4, 4, 15, 30), z(4, 4, 16, 30)]),
    ],
)
def test_repeating_expressions_through_the_shifts(
    expression: str, tz: ZoneInfo, after: datetime, expected: list[datetime]
) -> None:
    assert runs(expression, tz, after, len(expected)) == expected


SHIFT_EVES = {
    BERLIN: [z(3, 28, 12), z(10, 24, 12)],
    NEW_YORK: [z(3, 7, 12), z(10, 31, 12)],
    LORD_HOWE: [z(4, 4, 0), z(10, 3, 0)],
}


@pytest.mark.parametrize("tz", [BERLIN, NEW_YORK, LORD_HOWE], ids=str)
@pytest.mark.parametrize("expression", ["*/10 * * * *", "*/15 * * * *", "0 * * * *", "7 1-3 * * *"])
def test_through_each_shift_each_wall_time_runs_once_and_no_instant_twice(
    tz: ZoneInfo, expression: str
) -> None:
    schedule = parse_schedule("cron", expression)
    for eve in SHIFT_EVES[tz]:
        fires = [t.astimezone(UTC) for t in upcoming(schedule, eve, tz, 400)]
        assert fires[-1] - eve > timedelta(days=2)  # the whole shift is covered
        assert fires == sorted(set(fires))
        walls = [f.astimezone(tz).replace(tzinfo=None) for f in fires]
        assert len(walls) == len(set(walls))
