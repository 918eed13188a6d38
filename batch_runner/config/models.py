"""Pydantic models of the config file (SPEC sections 3, 8 and 11).

Imported only when a file must really be validated (or for ``batch_runner schema``): pydantic
costs a noticeable fraction of a second to import. Types are strict, as in the file: ``true`` is
not a number and ``"30"`` is not a timeout; a JSON integer is fine where a float is expected.
The value types the models share, and their checks, are in ``config.fields``.
"""

from __future__ import annotations

import re
from datetime import datetime
from typing import Annotated, Any, Literal

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
    model_validator,
)

from batch_runner.config.backend import KEYS as BACKEND_KEYS
from batch_runner.config.backend import PostgresBackend
from batch_runner.config.fields import (
    CommandLine,
    Delay,
    HostPattern,
    LaneName,
    Lanes,
    Seconds,
    Shell,
    Strict,
    Text,
    TimeZone,
    Url,
    empty,
    fail,
    tag_of,
)
from batch_runner.config.jobschedule import (
    ScheduleTime,
    check_catch_up,
    check_schedule_time,
    startup_time_given,
)
from batch_runner.config.lanes import DEFAULT_LANE, DEFAULT_WIDTH
from batch_runner.config.words import did_you_mean, show
from batch_runner.net.urls import HTTP_METHODS
from batch_runner.state.store import FINISHED_STATUSES

SMTPS_PORT = 465  # TLS from the first byte, as notify.email speaks it

# Not "-" first: cron lines and systemd units pass the name to run-job, which would take it
# for an option.
_NAME = re.compile(r"[A-Za-z0-9_.][A-Za-z0-9_.-]{0,63}")
_NAME_RE = f"^{_NAME.pattern}$"  # for the JSON Schema; Python's "$" would allow a final newline


def _check_name(value: str) -> str:
    stripped = value.lstrip("-")
    if stripped != value and _NAME.fullmatch(stripped):
        fail(
            f'{show(value)} is not a valid job name: it must not start with "-", which run-job '
            f'would take for an option (did you mean "{stripped}"?)'
        )
    if not _NAME.fullmatch(value):
        fail(
            f'{show(value)} is not a valid job name; use 1 to 64 letters, digits, "_", "." '
            'or "-" (not first)'
        )
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


class _JobBase(Strict):
    name: Annotated[
        str, AfterValidator(_check_name), WithJsonSchema({"type": "string", "pattern": _NAME_RE})
    ]
    schedule_type: Literal["interval", "daily", "weekly", "cron", "startup"]
    schedule_time: ScheduleTime
    enabled: bool = True
    description: str | None = None
    tags: list[str] = empty(list)
    timeout: Seconds | None = Field(None, description="default: settings.default_timeout")
    timezone: TimeZone = Field(None, description="IANA name; default: settings.timezone")
    max_attempts: Annotated[int, Field(ge=1, le=1000)] = 1
    backoff: Literal["fixed", "exponential"] = "exponential"
    backoff_seconds: Delay = 30
    priority: Annotated[int, Field(ge=-(2**31), le=2**31)] = 0
    catch_up: bool = False
    jitter: Delay = 0
    notify_after: Annotated[int, Field(ge=1)] | None = None
    disable_after: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="consecutive failed runs after which the scheduler stops scheduling "
        "the job until `enable NAME`; default: settings.disable_after",
    )
    ping_url: Url | None = None
    last_run: Annotated[str | None, AfterValidator(_check_last_run)] = None
    last_status: Annotated[str | None, AfterValidator(_check_last_status)] = None
    error_count: Annotated[int, Field(ge=0)] = 0
    lane: LaneName = Field(DEFAULT_LANE, description="a lane of settings.lanes")

    @model_validator(mode="before")
    @classmethod
    def _startup_time_may_be_omitted(cls, data: Any) -> Any:
        return startup_time_given(data)

    @field_validator("schedule_time")
    @classmethod
    def _fits_schedule_type(cls, value: Any, info: ValidationInfo) -> Any:
        return check_schedule_time(value, info.data.get("schedule_type"))

    @field_validator("catch_up")
    @classmethod
    def _catch_up_fits_schedule_type(cls, value: bool, info: ValidationInfo) -> bool:
        return check_catch_up(value, info.data.get("schedule_type"))


class CommandJob(_JobBase):
    """A job that runs a command (the default ``type``)."""

    type: Literal["command"] = "command"
    command: CommandLine
    shell: Shell = "auto"
    cwd: Text | None = Field(None, description="default: the root")
    env: Annotated[dict[str, str], AfterValidator(_check_env)] = empty(dict)


class HttpJob(_JobBase):
    """A job that makes one HTTP request per attempt (section 11)."""

    type: Literal["http"]
    url: Url
    method: Annotated[str, AfterValidator(_check_method)] = "GET"
    headers: dict[str, str] = empty(dict)
    params: dict[str, str] = empty(dict)
    body: Any = Field(None, description="a JSON value, or a string sent as it is")


Job = Annotated[
    Annotated[CommandJob, Tag("command")] | Annotated[HttpJob, Tag("http")],
    Discriminator(tag_of("command")),
]


class CommandNotifier(Strict):
    """Runs a command with the notice as JSON on stdin."""

    type: Literal["command"]
    command: CommandLine
    shell: Shell = "auto"
    timeout: Seconds = 60


class WebhookNotifier(Strict):
    """POSTs the notice as JSON, with a ``text`` field for chat webhooks."""

    type: Literal["webhook"]
    url: Url
    headers: dict[str, str] = {}
    timeout: Seconds = 10


class EmailNotifier(Strict):
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

    @model_validator(mode="after")
    def _login_over_tls(self) -> EmailNotifier:
        # The sender refuses such a login too (notify.email); saying so here makes it a
        # config error that validate and a reload report, not a failure at the first notice.
        login = [key for key in ("username_env", "password_env") if getattr(self, key)]
        if login and not self.starttls and self.smtp_port != SMTPS_PORT:
            fail(
                f"a login ({', '.join(login)}) needs TLS, or the password crosses the network "
                f'in clear text; set "starttls": true, or "smtp_port": {SMTPS_PORT} for TLS '
                "from the first byte"
            )
        return self


Notifier = Annotated[
    Annotated[CommandNotifier, Tag("command")]
    | Annotated[WebhookNotifier, Tag("webhook")]
    | Annotated[EmailNotifier, Tag("email")],
    Discriminator(tag_of(None)),
]


class HttpSettings(Strict):
    max_response_bytes: Annotated[int, Field(gt=0)] = 1024 * 1024
    mask_headers: list[Text] = ["Authorization", "Cookie", "X-Api-Key"]
    allow_hosts: list[HostPattern] = Field(
        [], description='"host", "1.2.3.4", "::1" or "*.domain"; empty means any host'
    )


class SettingsModel(Strict):
    log_dir: Text = Field("logs", description="relative paths resolve against the root")
    default_timeout: Seconds = 1800
    kill_grace: Delay = 10
    shutdown_grace: Delay = 30
    timezone: TimeZone = Field(None, description="IANA name; default: the system's local zone")
    notify_after: Annotated[int, Field(ge=1)] = 3
    disable_after: Annotated[int, Field(ge=1)] | None = Field(
        None,
        description="consecutive failed runs after which a job is no longer scheduled "
        "until `enable NAME`; default: never",
    )
    notifiers: list[Notifier] = []
    output_max_bytes: Annotated[int, Field(ge=0)] = 65536
    run_log_max_bytes: Annotated[int, Field(gt=0)] = 10 * 1024 * 1024
    retention_days: Annotated[int, Field(ge=1)] = 30
    ping_url: Url | None = None
    http: HttpSettings = Field(default_factory=HttpSettings)
    lanes: Lanes = Field(
        default_factory=dict,
        json_schema_extra={"default": {}},
        description=f'lane name -> how many of its runs may run at once; "{DEFAULT_LANE}" '
        f"is always there, with width {DEFAULT_WIDTH} unless given",
    )
    backend: PostgresBackend | None = Field(
        None, description="where the state is shared by several hosts; default: SQLite on this host"
    )


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
    "settings.backend": BACKEND_KEYS,
    "notifier:command": _keys(CommandNotifier),
    "notifier:webhook": _keys(WebhookNotifier),
    "notifier:email": _keys(EmailNotifier),
}
