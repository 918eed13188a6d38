"""schedule_type "cron" and "startup": parsing, field-by-field refusals, words, and next runs
checked against cronsim's own iteration on 200+ generated expressions (issue 20)."""

from __future__ import annotations

import random
import time as clock
from datetime import UTC, datetime, timedelta, timezone, tzinfo

import cronsim
import pytest

from batch_runner.schedules import (
    CronSchedule,
    ScheduleError,
    StartupSchedule,
    describe,
    next_fire,
    next_run,
    parse_schedule,
    upcoming,
)

INDIA = timezone(timedelta(hours=5, minutes=30))  # a fixed offset: no daylight saving
CHATHAM_FIXED = timezone(timedelta(hours=-9, minutes=-45))


def cron(expression: str) -> CronSchedule:
    schedule = parse_schedule("cron", expression)
    assert isinstance(schedule, CronSchedule)
    return schedule


# --- parsing ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "expression",
    [
        "30 7 * * 1-5",
        "0 0 1 * *",
        "*/10 9-17 * * *",
        "0 9 * * mon-fri",
        "0 9 * * MON,wed,Fri",
        "0 0 1 jan *",
        "0 0 1 jan-mar,oct *",
        "15,45 */2 * * *",
        "5/15 * * * *",
        "0-30/10 * * * *",
        "0 0 * * 7",
        "0 0 * * 0",
        "0 0 29 2 *",
        "  30\t7 *  * 1-5 ",
    ],
)
def test_standard_expressions_parse(expression: str) -> None:
    assert cron(expression).expression == " ".join(expression.split())


def test_seven_and_zero_are_both_sunday() -> None:
    assert cron("0 0 * * 7").weekdays == cron("0 0 * * 0").weekdays == frozenset({6})
    assert cron("0 0 * * 5-7").weekdays == frozenset({4, 5, 6})


def test_day_of_month_and_day_of_week_both_restricted_means_either() -> None:
    after = datetime(2026, 6, 1, tzinfo=UTC)  # a Monday
    # the 15th, or any Friday: Friday 2026-06-05 comes first
    assert next_run(cron("0 0 15 * 5"), after, UTC) == datetime(2026, 6, 5, tzinfo=UTC)
    # with a star in the day of the week, only the day of the month counts
    assert next_run(cron("0 0 15 * *"), after, UTC) == datetime(2026, 6, 15, tzinfo=UTC)


@pytest.mark.parametrize(
    ("macro", "fields"),
    [
        ("@hourly", "0 * * * *"),
        ("@daily", "0 0 * * *"),
        ("@midnight", "0 0 * * *"),
        ("@weekly", "0 0 * * 0"),
        ("@monthly", "0 0 1 * *"),
        ("@yearly", "0 0 1 1 *"),
        ("@annually", "0 0 1 1 *"),
    ],
)
def test_cron_macros_mean_their_fields(macro: str, fields: str) -> None:
    schedule, expanded = cron(macro), cron(fields)
    assert schedule.expression == macro
    assert schedule.fields == expanded.fields
    after = datetime(2026, 5, 17, 13, 7, tzinfo=UTC)
    assert upcoming(schedule, after, UTC, 5) == upcoming(expanded, after, UTC, 5)


@pytest.mark.parametrize("value", [None, ""])
def test_startup_takes_no_schedule_time(value: str | None) -> None:
    assert parse_schedule("startup", value) == StartupSchedule()  # type: ignore[arg-type]


@pytest.mark.parametrize("value", ["02:00", "now", 0, "@reboot"])
def test_startup_refuses_a_schedule_time(value: object) -> None:
    with pytest.raises(ScheduleError, match="a startup job takes no schedule_time"):
        parse_schedule("startup", value)  # type: ignore[arg-type]


def test_startup_has_no_next_run() -> None:
    with pytest.raises(ValueError, match="the scheduler runs a startup job itself"):
        next_run(StartupSchedule(), datetime(2026, 1, 1, tzinfo=UTC), UTC)


# --- refusals, field by field -------------------------------------------------------------


def test_the_hour_out_of_range_in_one_sentence() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("cron", "30 25 * * *")
    assert str(caught.value) == (
        'cron schedule_time "30 25 * * *": the hour field "25" is out of range; hours are 0-23.'
    )


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("61 * * * *", 'the minute field "61" is out of range; minutes are 0-59.'),
        ("0,61 * * * *", 'the minute field "0,61": "61" is out of range; minutes are 0-59.'),
        ("x * * * *", 'the minute field "x" is not a number; minutes are 0-59.'),
        ("0 24 * * *", 'the hour field "24" is out of range; hours are 0-23.'),
        ("0 17-9 * * *", 'the hour field "17-9" is a range that runs backwards'),
        ("0 0 32 * *", 'the day-of-month field "32" is out of range; days of the month are 1-31.'),
        ("0 0 0 * *", 'the day-of-month field "0" is out of range; days of the month are 1-31.'),
        ("0 0 L * *", 'the day-of-month field "L" uses "L", an extension'),
        ("0 0 15W * *", 'the day-of-month field "15W" uses "W", an extension'),
        ("0 0 * 13 *", 'the month field "13" is out of range; months are 1-12 or jan-dec.'),
        ("0 0 * janu *", 'the month field "janu" is not a number or a month name'),
        ("0 0 * * 8", 'the day-of-week field "8" is out of range; days of the week are 0-7'),
        ("0 0 * * mnday", '"mnday" is not a number or a day name (did you mean "mon"?)'),
        ("0 0 * * 1#2", 'the day-of-week field "1#2" uses "#", an extension'),
        ("0 0 * * 5L", 'the day-of-week field "5L" uses "L", an extension'),
        ("0 0 ? * 1", 'the day-of-month field "?" uses "?", an extension'),
        ("*/0 * * * *", 'the minute field "*/0" has the step "0"; a step is a whole number'),
        ("*/x * * * *", 'the minute field "*/x" has the step "x"; a step is a whole number'),
        ("1,,2 * * * *", 'the minute field "1,,2" has an empty item'),
        ("0 0 * * 1-", 'the day-of-week field "1-" has a range without an end'),
        ("0 0 * * 1 2", "has 6 fields; cron takes 5 (minute hour day-of-month month"),
        ("0 0 * *", "has 4 fields; cron takes 5"),
        ("", 'cron schedule_time "" has 0 fields; cron takes 5'),
        ("@reboot", 'use schedule_type "startup"'),
        ("@every 5m", '"@every" is not one of @hourly, @daily'),
    ],
)
def test_refusals_name_the_field_the_value_and_what_is_allowed(
    expression: str, fragment: str
) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("cron", expression)
    message = str(caught.value)
    assert fragment in message
    assert message.startswith(f'cron schedule_time "{expression}"')
    assert message.endswith(".") and "\n" not in message


def test_every_bad_field_is_reported() -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("cron", "61 25 * * *")
    assert 'the minute field "61"' in str(caught.value)
    assert 'Also: the hour field "25"' in str(caught.value)


@pytest.mark.parametrize("value", [5, None, 1.5, True])
def test_a_cron_schedule_time_must_be_a_string(value: object) -> None:
    with pytest.raises(ScheduleError, match="is not a string"):
        parse_schedule("cron", value)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("expression", "fragment"),
    [
        ("0 0 30 2 *", "never fires: February has no day 30."),
        ("0 0 31 4,6 *", "never fires: April and June have no day 31."),
        ("0 0 31 2 */7", "never fires: February has no day 31."),
    ],
)
def test_an_expression_that_never_fires_is_refused(expression: str, fragment: str) -> None:
    with pytest.raises(ScheduleError) as caught:
        parse_schedule("cron", expression)
    assert str(caught.value) == f'cron schedule_time "{expression}" {fragment}'


def test_either_day_rule_still_fires() -> None:
    # 30 February never comes, but cron ORs the two day fields: every Monday in February does.
    after = datetime(2026, 1, 1, tzinfo=UTC)
    assert next_run(cron("0 0 30 2 1"), after, UTC) == datetime(2026, 2, 2, tzinfo=UTC)


# --- words -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("schedule_type", "schedule_time", "words"),
    [
        ("startup", None, "at scheduler start"),
        ("cron", "30 7 * * 1-5", "every weekday at 07:30"),
        ("cron", "30 7 * * mon-fri", "every weekday at 07:30"),
        ("cron", "0 3 * * *", "every day at 03:00"),
        ("cron", "0 3 * * sun", "every Sunday at 03:00"),
        ("cron", "0 3 * * 1,3", "every Monday and Wednesday at 03:00"),
        ("cron", "*/10 9-17 * * *", "cron */10 9-17 * * *"),
        ("cron", "0 0 1 * *", "cron 0 0 1 * *"),
        ("cron", "@daily", "cron @daily"),
    ],
)
def test_describe(schedule_type: str, schedule_time: str | None, words: str) -> None:
    assert describe(parse_schedule(schedule_type, schedule_time)) == words  # type: ignore[arg-type]


# --- against cronsim's own next times ------------------------------------------------------

_RANGES = {0: (0, 59), 1: (0, 23), 2: (1, 31), 3: (1, 12), 4: (0, 7)}
_NAMES = {
    3: ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"],
    4: ["sun", "mon", "tue", "wed", "thu", "fri", "sat"],
}


def _value(rng: random.Random, field: int, low: int, high: int) -> str:
    number = rng.randint(low, high)
    names = _NAMES.get(field)
    if names and rng.random() < 0.4 and number - (field == 3) < len(names):
        return names[number - (field == 3)]
    return str(number)


def _term(rng: random.Random, field: int) -> str:
    low, high = _RANGES[field]
    if field == 4:
        high = 6 if rng.random() < 0.5 else 7
    shape = rng.choice(["value", "value", "range", "range-step", "star-step", "start-step"])
    if shape == "value":
        return _value(rng, field, low, high)
    if shape == "star-step":
        return f"*/{rng.randint(1, high)}"
    start = rng.randint(low, high)
    if shape == "start-step":
        return f"{start}/{rng.randint(1, high)}"
    end = rng.randint(start, high)
    text = f"{_value(rng, field, start, start)}-{_value(rng, field, end, end)}"
    return text if shape == "range" else f"{text}/{rng.randint(1, high)}"


def _field(rng: random.Random, field: int) -> str:
    roll = rng.random()
    if roll < 0.3:
        return "*"
    if roll < 0.75:
        return _term(rng, field)
    return ",".join(_term(rng, field) for _ in range(rng.randint(2, 3)))


def generated_expressions(count: int, seed: int = 20) -> list[str]:
    rng = random.Random(seed)
    found: list[str] = []
    while len(found) < count:
        expression = " ".join(_field(rng, field) for field in range(5))
        try:
            parse_schedule("cron", expression)
        except ScheduleError as exc:
            assert "never fires" in str(exc), exc  # the grammar above is all valid cron
            continue
        found.append(expression)
    return found


EXPRESSIONS = generated_expressions(240)


def test_the_generator_covers_the_grammar() -> None:
    text = " ".join(EXPRESSIONS)
    for piece in ("*/", "-", ",", "jan", "mon", " 7", "/"):
        assert piece in text


@pytest.mark.parametrize("zone", [UTC, INDIA, CHATHAM_FIXED], ids=str)
def test_next_runs_equal_cronsims_on_240_generated_expressions(zone: tzinfo) -> None:
    rng = random.Random(7)
    for expression in EXPRESSIONS:
        start = datetime(2026, 1, 1, tzinfo=zone) + timedelta(
            seconds=rng.randint(0, 365 * 86400 - 1)
        )
        theirs = cronsim.CronSim(expression, start)
        expected = [next(theirs) for _ in range(6)]
        ours = upcoming(cron(expression), start, zone, 6)
        assert [t.astimezone(UTC) for t in ours] == [t.astimezone(UTC) for t in expected], (
            expression,
            start,
        )


# --- pure and fast ------------------------------------------------------------------------


def test_next_run_is_pure() -> None:
    schedule, after = cron("*/7 3-5 * * mon"), datetime(2026, 3, 3, 4, 5, tzinfo=UTC)
    first = [next_run(schedule, after, UTC) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    assert next_fire(schedule, after, UTC) == first[0]  # `list` calls next_fire directly


def test_an_expression_is_parsed_once() -> None:
    assert parse_schedule("cron", "0 0 29 2 *") is parse_schedule("cron", "0 0 29 2 *")


@pytest.mark.parametrize("expression", ["0 0 29 2 *", "59 23 31 12 *", "0 0 29 2 */7", "* * * * *"])
def test_a_thousand_next_runs_of_a_sparse_expression_take_well_under_a_second(
    expression: str,
) -> None:
    tz = datetime(2026, 1, 1).astimezone().tzinfo or UTC
    after = datetime(2026, 3, 1, 12, tzinfo=UTC)
    started = clock.perf_counter()
    for i in range(1000):
        next_run(parse_schedule("cron", expression), after + timedelta(hours=i), tz)
    assert clock.perf_counter() - started < 1.0
