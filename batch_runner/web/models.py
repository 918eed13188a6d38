"""The native API's request and response bodies for runs, the queue and status (``/api/v1``),
as pydantic models so that the OpenAPI document says exactly what is sent and answered.

A run is ``runs.view.run_view`` (SPEC 9's field names) plus ``tags``; every time is ISO 8601
with its offset. Values are checked by ``runs.request`` (the CLI's rules and sentences), not
here: a model only says the types.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

JsonValue = Any

# The names a refusal uses for the body's fields (the CLI says --priority, the API priority).
API_NAMES: dict[str, str] = {
    "priority": "priority",
    "max_attempts": "max_attempts",
    "label": "label",
    "timeout": "timeout",
    "delay": "delay",
    "at": "at",
    "http": "http",
    "header": "http.headers",
    "param": "http.params",
    "tags": "tags",
    "backoff": "backoff",
    "backoff_seconds": "backoff_seconds",
    "command": "command",
}


class Problem(BaseModel):
    """Every refusal: one sentence."""

    detail: str = Field(examples=["run 'zz' is unknown"])


_WHY = {
    400: "a value the rules refuse (the same sentence as the CLI's)",
    401: "no token, or one that is unknown or revoked",
    403: "the token's scope is too small (or a session's change without its CSRF token)",
    404: "no such run",
    409: "the run is not in a state that allows it",
    422: "a body or parameter of the wrong type or shape",
    503: "the state cannot be read or written now; retry after `Retry-After` seconds",
}


def responses(*codes: int) -> dict[int | str, dict[str, Any]]:
    """The ``responses=`` of a route: each refusal it may answer, as a ``Problem``."""
    return {code: {"model": Problem, "description": _WHY[code]} for code in codes}


class HttpCall(BaseModel):
    """An HTTP call to make as the run (2xx is success), as ``queue add --http``."""

    model_config = ConfigDict(extra="forbid")

    method: str = Field(examples=["POST"])
    url: str = Field(examples=["https://api.example.com/hooks/nightly"])
    headers: dict[str, str] = Field(
        default_factory=dict,
        description="`${VAR}` in a value is resolved when the run starts, from the runner's "
        "environment (so a secret need not be stored)",
    )
    params: dict[str, str] = Field(default_factory=dict, description="query parameters")
    body: JsonValue = Field(
        None, description="a string is sent as it is; any other JSON value as JSON"
    )
    timeout: float | None = Field(None, description="seconds; default: the run's `timeout`")


class NewRun(BaseModel):
    """A run to queue: exactly one of ``command`` (scope admin: it runs anything), ``job`` (a
    configured job's name: its run now, as ``run-job --queue``; no other option) or ``http``
    (scope operate)."""

    model_config = ConfigDict(extra="forbid")

    command: str | list[str] | None = Field(
        None,
        description="one string may hold shell syntax; a list is the argv",
        examples=["./backup.sh --full"],
    )
    job: str | None = None
    http: HttpCall | None = None
    priority: int | None = Field(None, description="higher starts first (default 0)")
    delay: float | str | None = Field(
        None, description="start no earlier than this from now: seconds, or `15m`, `2h`"
    )
    at: str | None = Field(None, description="start no earlier than this ISO 8601 time")
    lane: str | None = Field(None, description="a lane of `settings.lanes` (default: default)")
    label: str | None = Field(None, description="a name for the run (default: adhoc)")
    tags: list[str] | None = Field(None, description="up to 20, each 1-64 printable characters")
    max_attempts: int | None = Field(None, description="1 to 1000 (default 1)")
    backoff: Literal["exponential", "fixed"] | None = Field(
        None, description="the wait before a retry (default exponential)"
    )
    backoff_seconds: float | None = Field(None, description="its base in seconds (default 30)")
    timeout: float | None = Field(None, description="seconds; default: settings.default_timeout")


class RunView(BaseModel):
    """A run, as every ``--json`` of the CLI shows it (``status`` lists these)."""

    run_id: str
    job_name: str
    status: str = Field(
        description="pending, reserved, running, success, error, timeout, stopped, "
        "interrupted, skipped or canceled"
    )
    start_time: str | None
    end_time: str | None
    output: str | None = Field(description="the output's last characters")
    error: str | None
    attempt: int | None
    max_attempts: int | None
    exit_code: int | None
    duration_seconds: float | None
    trigger: str | None
    scheduled_for: str | None
    output_truncated: bool
    log_file: str | None
    host: str | None
    pid: int | None
    priority: int
    progress_percent: float | None
    progress_message: str | None
    created_at: str | None
    due_at: str | None
    label: str | None
    lane: str = Field("default", description="the lane it runs in")
    reserved_at: str | None = Field(None, description="only while reserved")
    command: str | list[str] | None
    request: dict[str, JsonValue] | None = Field(description="an HTTP call, secrets masked")


class Run(RunView):
    """A run with its tags."""

    tags: list[str] | None


class RunPage(BaseModel):
    runs: list[Run]
    next_cursor: str | None = Field(
        description="pass as `cursor` for the next page; null on the last one"
    )


class Scheduler(BaseModel):
    alive: bool
    pid: int | None


class Lane(BaseModel):
    width: int
    running: list[str]
    pending: int
    configured: bool


class DisabledJob(BaseModel):
    name: str
    reason: str | None
    disabled_at: str | None
    error_count: int | None


class Status(BaseModel):
    """SPEC 9's ``status --json`` object (``lanes`` where lanes are configured,
    ``disabled_jobs`` where there are)."""

    scheduler: Scheduler
    paused: bool
    running: list[RunView]
    pending: list[RunView]
    lanes: dict[str, Lane] | None = None
    disabled_jobs: list[DisabledJob] | None = None


class Paused(BaseModel):
    paused: bool


class NextRun(BaseModel):
    name: str
    time: str


class AuditEntry(BaseModel):
    seq: int
    at: str
    actor: str
    scope: str | None
    action: str
    run_id: str | None
    job_name: str | None
    remote: str | None
    detail: str | None


class AuditPage(BaseModel):
    entries: list[AuditEntry]
    next_cursor: str | None
