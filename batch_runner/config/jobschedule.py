"""The checks of a job's schedule_time and catch_up against its schedule_type (``models``).

A startup job (issue 20) runs each time the scheduler starts: it takes no schedule_time (left
out, null or blank) and catch_up means nothing to it. Every other type needs a schedule_time
its parser accepts.
"""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import WithJsonSchema

from batch_runner import schedules
from batch_runner.config.fields import fail
from batch_runner.config.words import show

STARTUP = "startup"  # the schedule_type that takes no schedule_time

ScheduleTime = Annotated[Any, WithJsonSchema({"type": ["string", "number", "null"]})]


def startup_time_given(data: Any) -> Any:
    """The raw job with a startup job's omitted schedule_time given as null: so the field stays
    required for every other type, and a missing one is reported as pydantic does."""
    if isinstance(data, dict) and data.get("schedule_type") == STARTUP:
        return {"schedule_time": None, **data}
    return data


def check_schedule_time(value: Any, kind: str | None) -> Any:
    """``value`` if it fits ``kind`` (None: schedule_type itself is wrong, and reported)."""
    if kind == STARTUP and value is None:
        return value
    if kind != STARTUP and (isinstance(value, bool) or not isinstance(value, str | int | float)):
        fail(f"found {show(value)}; expected a string, or a number of seconds for interval")
    if kind is not None:
        try:
            schedules.parse_schedule(kind, value)
        except schedules.ScheduleError as exc:
            fail(str(exc))
    return value


def check_catch_up(value: bool, kind: str | None) -> bool:
    if value and kind == STARTUP:
        fail(
            "catch_up has no meaning for a startup job: it runs each time the scheduler "
            "starts, so it never misses an occurrence; remove catch_up or set it to false"
        )
    return value
