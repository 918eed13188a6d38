"""The value types the config models are built from, and the checks behind them.

Shared by the jobs, the notifiers and the settings of ``config.models``; pydantic is imported
here too, so this module is as costly as the models and imported only with them. Checks
pydantic cannot express raise ``config`` errors whose message is the whole sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Any, NoReturn, TypeAlias
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, WithJsonSchema
from pydantic_core import PydanticCustomError

from batch_runner import schedules
from batch_runner.config.lanes import (
    DEFAULT_LANE,
    DEFAULT_WIDTH,
    LANE_NAME_PATTERN,
    MAX_TOTAL_WIDTH,
    MAX_WIDTH,
)
from batch_runner.config.words import did_you_mean, show
from batch_runner.net import hosts

# Beyond any sensible batch duration, and well inside what timedelta and SQLite can hold.
MAX_SECONDS = 3650 * 86400
_LANE_NAME = re.compile(LANE_NAME_PATTERN)


def fail(message: str) -> NoReturn:
    """Raise a validation error whose message is ``message`` exactly."""
    raise PydanticCustomError("config", "{reason}", {"reason": message})


def empty(factory: type[list[Any]] | type[dict[str, Any]]) -> Any:
    """An empty list or dict as a field's default, shown as such in the JSON schema.

    A literal ``[]`` or ``{}`` default is deep-copied by pydantic for every job that leaves the
    key out, ~6 ms per 1,000 jobs; a factory is called instead.
    """
    return Field(default_factory=factory, json_schema_extra={"default": factory()})


def _check_command(value: Any) -> str | list[str]:
    if isinstance(value, str) and value.strip():
        _check_no_nul(value)
        return value
    if isinstance(value, list) and value and all(isinstance(a, str) for a in value):
        if not value[0]:
            fail("the first element of the command list (the program) is empty")
        for argument in value:
            _check_no_nul(argument)
        return value
    fail(f"found {show(value)}; expected a command line string or a non-empty list of strings")


def _check_no_nul(text: str) -> None:
    # exec() takes C strings: a NUL would end the run with "embedded null byte" at start.
    if "\0" in text:
        fail(f"{show(text)} holds a NUL character (\\u0000), which no command can contain")


def _check_shell(value: Any) -> bool | str:
    if isinstance(value, bool):
        return value
    if value == "auto":
        return "auto"
    hint = did_you_mean(value, ["auto"]) if isinstance(value, str) else ""
    fail(f'found {show(value)}; expected true, false or "auto"{hint}')


def _check_timezone(value: str | None) -> str | None:
    if value is not None:
        try:
            schedules.resolve_tz(value)
        except schedules.ScheduleError as exc:
            fail(str(exc))
    return value


def _check_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        fail(f"{show(value)} is not an http:// or https:// URL with a host")
    try:
        parts.port  # noqa: B018 - reading it is the check: a bad port raises
    except ValueError:
        fail(f"{show(value)} has a port that is not a number from 0 to 65535")
    return value


def _check_host_pattern(value: str) -> str:
    try:
        hosts.parse_pattern(value)
    except hosts.BadHost as exc:
        fail(f"{show(value)} is not a host pattern: {exc}")
    return value


def _check_lane_name(value: str) -> str:
    if not _LANE_NAME.fullmatch(value):
        fail(
            f'{show(value)} is not a valid lane name; use 1 to 64 letters, digits, "_" or "-" '
            '(no ".": a slot\'s lock file is named LANE.K.lock)'
        )
    return value


def _check_total_width(lanes: dict[str, int]) -> dict[str, int]:
    # The default lane runs whether it is listed or not, so it counts either way.
    total = sum(lanes.values()) + (0 if DEFAULT_LANE in lanes else DEFAULT_WIDTH)
    if total > MAX_TOTAL_WIDTH:
        unlisted = f' (with {DEFAULT_WIDTH} for the "{DEFAULT_LANE}" lane, which is not listed)'
        fail(
            f"the lane widths add up to {total}{'' if DEFAULT_LANE in lanes else unlisted}; "
            f"at most {MAX_TOTAL_WIDTH} runs may run at once across all lanes"
        )
    return lanes


def tag_of(default: str | None) -> Callable[[Any], str | None]:
    """The discriminator of a tagged union: the ``type`` key, or ``default`` when absent."""

    def tag(value: Any) -> str | None:
        if isinstance(value, dict):
            kind = value.get("type", default)
            if kind is None:
                return None  # reported as a missing "type"
            return kind if isinstance(kind, str) else "(not a string)"
        return getattr(value, "type", None)

    return tag


Seconds = Annotated[float, Field(gt=0, le=MAX_SECONDS)]
Delay = Annotated[float, Field(ge=0, le=MAX_SECONDS)]
Text = Annotated[str, Field(min_length=1)]
Url = Annotated[str, AfterValidator(_check_url)]
# A pattern that could never match is an error: it would refuse what its author meant to allow.
HostPattern = Annotated[str, AfterValidator(_check_host_pattern)]
TimeZone = Annotated[str | None, AfterValidator(_check_timezone)]
# The values that may be of several types, checked by one function with a JSON Schema given
# by hand: pydantic reports a strict union as one error per member, where users want one
# sentence. Spelled out as aliases, which mypy reads as types in whatever order it analyses
# the modules that import them.
CommandLine: TypeAlias = Annotated[
    Any,
    WithJsonSchema(
        {
            "anyOf": [
                {"type": "string", "minLength": 1},
                {"type": "array", "items": {"type": "string"}, "minItems": 1},
            ]
        }
    ),
    AfterValidator(_check_command),
]
LaneName = Annotated[
    str,
    AfterValidator(_check_lane_name),
    WithJsonSchema({"type": "string", "pattern": f"^{LANE_NAME_PATTERN}$"}),
]
Lanes = Annotated[
    dict[LaneName, Annotated[int, Field(ge=1, le=MAX_WIDTH)]],
    AfterValidator(_check_total_width),
]
Shell: TypeAlias = Annotated[
    Any,
    WithJsonSchema({"anyOf": [{"type": "boolean"}, {"const": "auto"}]}),
    AfterValidator(_check_shell),
]


class Strict(BaseModel):
    """Types as strict as in the file, unknown keys refused."""

    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)
