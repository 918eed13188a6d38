"""Pydantic models of the config file (SPEC sections 3, 8 and 11).

Imported only when a file must really be validated (or for ``batch_runner schema``): pydantic
costs a noticeable fraction of a second to import. Types are strict, as in the file: ``true`` is
not a number and ``"30"`` is not a timeout; a JSON integer is fine where a float is expected.
Checks pydantic cannot express raise ``config`` errors whose message is the whole sentence.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import datetime
from typing import Annotated, Any, Literal, NoReturn
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Discriminator,
    Field,
    Tag,
    ValidationInfo,
    WithJsonSchema,
    field_validator,
)
from pydantic_core import PydanticCustomError

from batch_runner import schedules
from batch_runner.config.words import did_you_mean, show
from batch_runner.httpjob.prepare import HTTP_METHODS
from batch_runner.state.sqlite import FINISHED_STATUSES

# Beyond any sensible batch duration, and well inside what timedelta and SQLite can hold.
MAX_SECONDS = 3650 * 86400
_NAME = re.compile(r"[A-Za-z0-9_.-]{1,64}")
_NAME_RE = f"^{_NAME.pattern}$"  # for the JSON Schema; Python's "$" would allow a final newline


def fail(message: str) -> NoReturn:
    """Raise a validation error whose message is ``message`` exactly."""
    raise PydanticCustomError("config", "{reason}", {"reason": message})


def _checked(schema: dict[str, Any], check: Callable[[Any], Any]) -> Any:
    """A field of any JSON type, checked by ``check``, with its JSON Schema given by hand.

    Used for the values that may be of several types: pydantic reports a strict union as one
    error per member, where users want one sentence.
    """
    return Annotated[Any, WithJsonSchema(schema), AfterValidator(check)]


def _empty(factory: type[list] | type[dict]) -> Any:
    """An empty list or dict as a field's default, shown as such in the JSON schema.

    A literal ``[]`` or ``{}`` default is deep-copied by pydantic for every job that leaves the
    key out, ~6 ms per 1,000 jobs; a factory is called instead.
    """
    return Field(default_factory=factory, json_schema_extra={"default": factory()})


def _check_name(value: str) -> str:
    if not _NAME.fullmatch(value):
        fail(f'{show(value)} is not a valid job name; use 1 to 64 letters, digits, "_", "." or "-"')
    return value


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
    if isinstance(value, bool) or value == "auto":
        return value
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
    return value


def _check_method(value: str) -> str:
    if value.upper() not in HTTP_METHODS:
        fail(
            f"{show(value)} is not one of {', '.join(HTTP_METHODS)}"
            f"{did_you_mean(value.upper(), HTTP_METHODS)}"
        )
    return value.upper()


def _check_env(value: dict[str, str]) -> dict[str, str]:
    for key in value:
        if not key or "=" in key or "\0" in key:
            fail(f'{show(key)} is not a valid environment variable name (empty, or has "=")')
    return value


def _check_last_run(value: str | None) -> str | None:
    """An ISO 8601 date and time; one without an offset is local time, as the original wrote it.

    Returned with its offset, so that ``list`` and ``history`` show every time the same way.
    """
    if value is None:
        return None
    try:
        return datetime.fromisoformat(value).astimezone().isoformat()
    except (ValueError, OverflowError):  # overflow: a year 1 or 9999 moved into local time
        fail(
            f"found {show(value)}; expected an ISO 8601 date and time such as "
            '"2025-07-29T02:00:00" (with an offset, or local time), or null'
        )


def _check_last_status(value: str | None) -> str | None:
    if value is not None and value not in FINISHED_STATUSES:
        fail(
            f"found {show(value)}; expected one of {', '.join(FINISHED_STATUSES)}, or null"
            f"{did_you_mean(value, FINISHED_STATUSES)}"
        )
    return value


def _tag_of(default: str | None) -> Callable[[Any], str | None]:
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
TimeZone = Annotated[str | None, AfterValidator(_check_timezone)]
CommandLine = _checked(
    {
        "anyOf": [
            {"type": "string", "minLength": 1},
            {"type": "array", "items": {"type": "string"}, "minItems": 1},
        ]
    },
    _check_command,
)
Shell = _checked({"anyOf": [{"type": "boolean"}, {"const": "auto"}]}, _check_shell)
ScheduleTime = Annotated[Any, WithJsonSchema({"type": ["string", "number"]})]


class _Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", allow_inf_nan=False)


class _JobBase(_Strict):
    name: Annotated[
        str, AfterValidator(_check_name), WithJsonSchema({"type": "string", "pattern": _NAME_RE})
    ]
    schedule_type: Literal["interval", "daily", "weekly"]
    schedule_time: ScheduleTime
    enabled: bool = True
    description: str | None = None
    tags: list[str] = _empty(list)
    timeout: Seconds | None = Field(None, description="default: settings.default_timeout")
    timezone: TimeZone = Field(None, description="IANA name; default: settings.timezone")
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 1
    backoff: Literal["fixed", "exponential"] = "exponential"
    backoff_seconds: Delay = 30
    priority: Annotated[int, Field(ge=-(2**31), le=2**31)] = 0
    catch_up: bool = False
    jitter: Delay = 0
    notify_after: Annotated[int, Field(ge=1)] | None = None
    ping_url: Url | None = None
    last_run: Annotated[str | None, AfterValidator(_check_last_run)] = None
    last_status: Annotated[str | None, AfterValidator(_check_last_status)] = None
    error_count: Annotated[int, Field(ge=0)] = 0

    @field_validator("schedule_time")
    @classmethod
    def _fits_schedule_type(cls, value: Any, info: ValidationInfo) -> Any:
        if isinstance(value, bool) or not isinstance(value, str | int | float):
            fail(f"found {show(value)}; expected a string, or a number of seconds for interval")
        kind = info.data.get("schedule_type")
        if kind is not None:  # else schedule_type itself is reported
            try:
                schedules.parse_schedule(kind, value)
            except schedules.ScheduleError as exc:
                fail(str(exc))
        return value


class CommandJob(_JobBase):
    """A job that runs a command (the default ``type``)."""

    type: Literal["command"] = "command"
    command: CommandLine
    shell: Shell = "auto"
    cwd: Text | None = Field(None, description="default: the root")
    env: Annotated[dict[str, str], AfterValidator(_check_env)] = _empty(dict)


class HttpJob(_JobBase):
    """A job that makes one HTTP request per attempt (section 11)."""

    type: Literal["http"]
    url: Url
    method: Annotated[str, AfterValidator(_check_method)] = "GET"
    headers: dict[str, str] = _empty(dict)
    params: dict[str, str] = _empty(dict)
    body: Any = Field(None, description="a JSON value, or a string sent as it is")


Job = Annotated[
    Annotated[CommandJob, Tag("command")] | Annotated[HttpJob, Tag("http")],
    Discriminator(_tag_of("command")),
]


class CommandNotifier(_Strict):
    """Runs a command with the notice as JSON on stdin."""

    type: Literal["command"]
    command: CommandLine
    shell: Shell = "auto"
    timeout: Seconds = 60


class WebhookNotifier(_Strict):
    """POSTs the notice as JSON, with a ``text`` field for chat webhooks."""

    type: Literal["webhook"]
    url: Url
    headers: dict[str, str] = {}
    timeout: Seconds = 10


class EmailNotifier(_Strict):
    """Sends the notice by SMTP; the credentials come from environment variables."""

    type: Literal["email"]
    smtp_host: Text
    smtp_port: Annotated[int, Field(ge=1, le=65535)] = 25
    from_: Text = Field(alias="from")
    to: Annotated[list[Text], Field(min_length=1)]
    starttls: bool = False
    username_env: Text | None = None
    password_env: Text | None = None
    timeout: Seconds = 30


Notifier = Annotated[
    Annotated[CommandNotifier, Tag("command")]
    | Annotated[WebhookNotifier, Tag("webhook")]
    | Annotated[EmailNotifier, Tag("email")],
    Discriminator(_tag_of(None)),
]


class HttpSettings(_Strict):
    max_response_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    mask_headers: list[Text] = ["Authorization", "Cookie", "X-Api-Key"]
    allow_hosts: list[Text] = Field([], description="host patterns; empty means any host")


class SettingsModel(_Strict):
    log_dir: Text = Field("logs", description="relative paths resolve against the root")
    default_timeout: Seconds = 1800
    kill_grace: Delay = 10
    shutdown_grace: Delay = 30
    timezone: TimeZone = Field(None, description="IANA name; default: the system's local zone")
    notify_after: Annotated[int, Field(ge=1)] = 3
    notifiers: list[Notifier] = []
    output_max_bytes: Annotated[int, Field(ge=0)] = 65536
    run_log_max_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    retention_days: Annotated[int, Field(ge=1)] = 30
    ping_url: Url | None = None
    http: HttpSettings = Field(default_factory=HttpSettings)


class ConfigModel(BaseModel):
    """The whole file; unknown top-level keys are kept (edits preserve them) and ignored."""

    model_config = ConfigDict(strict=True, extra="allow", title="batch_runner config")

    jobs: list[Job]
    settings: SettingsModel = Field(default_factory=SettingsModel)


def _keys(model: type[BaseModel]) -> tuple[str, ...]:
    return tuple(f.alias or name for name, f in model.model_fields.items())


# The keys allowed in each kind of object, for "did you mean" on unknown keys.
KEYS: dict[str, tuple[str, ...]] = {
    "top": _keys(ConfigModel),
    "job:command": _keys(CommandJob),
    "job:http": _keys(HttpJob),
    "settings": _keys(SettingsModel),
    "settings.http": _keys(HttpSettings),
    "notifier:command": _keys(CommandNotifier),
    "notifier:webhook": _keys(WebhookNotifier),
    "notifier:email": _keys(EmailNotifier),
}
