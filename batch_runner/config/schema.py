"""The JSON Schema of the config file (``batch_runner schema``), generated from the models.

pydantic writes what the field types say; the checks the models make in Python (a
schedule_time that fits its schedule_type, the run state, URLs, HTTP methods, commands...)
are added here from ``config.schema_rules``, so that an editor flags what ``validate`` will
refuse. Only ``validate`` can judge what needs the machine or the whole file: time zones,
environment variables, allow_hosts against a job's URL, unique job names.
"""

from __future__ import annotations

from typing import Any

from batch_runner.config import schema_rules as rules
from batch_runner.config.lanes import LANE_NAME_PATTERN
from batch_runner.net.urls import HTTP_METHODS
from batch_runner.schedules import MAX_INTERVAL_SECONDS
from batch_runner.state.store import FINISHED_STATUSES

SCHEMA_DIALECT = "https://json-schema.org/draft/2020-12/schema"
_NO_NUL = rules.whole("[^\\u0000]*")  # exec() takes C strings
_JOBS = ("CommandJob", "HttpJob")


def json_schema() -> dict[str, Any]:
    """A JSON Schema editors can use to check a config file as it is typed."""
    from batch_runner.config.models import ConfigModel

    generated = ConfigModel.model_json_schema(by_alias=True, mode="validation")
    generated.pop("title", None)
    generated.pop("description", None)
    _end_at_the_end(generated)
    _add_rules(generated["$defs"])
    return {
        "$schema": SCHEMA_DIALECT,
        "title": "batch_runner config",
        "description": "Jobs for batch_runner to run on time, and its settings; "
        "other top-level keys are allowed and ignored.",
        **generated,
    }


def _end_at_the_end(schema: Any) -> None:
    """pydantic's patterns end in "$", which lets Python's re take a final newline too."""
    if isinstance(schema, dict):
        pattern = schema.get("pattern")
        if isinstance(pattern, str) and pattern.endswith("$") and not pattern.endswith("\\$"):
            schema["pattern"] = pattern[:-1] + rules.END
        for value in schema.values():
            _end_at_the_end(value)
    elif isinstance(schema, list):
        for value in schema:
            _end_at_the_end(value)


def _add_rules(defs: dict[str, Any]) -> None:
    defs.update(_schedule_times())
    for name in _JOBS:
        _job_rules(defs[name])
    http_job = defs["HttpJob"]["properties"]
    http_job["url"].update(pattern=rules.url(host_checked=True))
    http_job["method"].update(pattern=rules.method(), examples=list(HTTP_METHODS))
    command_job = defs["CommandJob"]["properties"]
    command_job["env"]["propertyNames"] = {"minLength": 1, "pattern": rules.whole("[^=\\u0000]*")}
    for name in ("CommandJob", "CommandNotifier"):
        _command_rules(defs[name]["properties"]["command"])
    defs["WebhookNotifier"]["properties"]["url"].update(pattern=rules.url(host_checked=False))
    _login_rule(defs["EmailNotifier"])
    settings = defs["SettingsModel"]["properties"]
    _string_of(settings["ping_url"]).update(pattern=rules.url(host_checked=False))
    _string_of(settings["timezone"]).update(minLength=1)
    allow_hosts = defs["HttpSettings"]["properties"]["allow_hosts"]
    allow_hosts["items"].update(pattern=rules.host_pattern())
    _lane_rules(settings["lanes"], [defs[name]["properties"]["lane"] for name in _JOBS])


def _schedule_times() -> dict[str, Any]:
    number = {
        "type": "number",
        "exclusiveMinimum": rules.interval_minimum(),
        "maximum": MAX_INTERVAL_SECONDS,
    }
    return {
        "IntervalTime": {
            "description": 'seconds, or a number and a unit: "90s", "15m", "2h", "1.5d"',
            "anyOf": [number, {"type": "string", "pattern": rules.interval()}],
        },
        "DailyTime": {
            "description": '"HH:MM" or "HH:MM:SS", 00:00 to 23:59:59',
            "type": "string",
            "pattern": rules.daily(),
        },
        "WeeklyTime": {
            "description": 'days, full or three letters, then maybe a time: "mon,wed 09:00"',
            "type": "string",
            "pattern": rules.weekly(),
        },
        # Each field's values only validate can judge (the parser's own rules).
        "CronTime": {
            "description": 'minute hour day-of-month month day-of-week: "30 7 * * 1-5"',
            "type": "string",
            "pattern": rules.cron(),
        },
        "StartupTime": {
            "description": "none: a startup job runs each time the scheduler starts",
            "anyOf": [{"type": "null"}, {"type": "string", "pattern": rules.startup()}],
        },
    }


def _job_rules(job: dict[str, Any]) -> None:
    from batch_runner.config.jobschedule import STARTUP

    properties = job["properties"]
    # The kinds the model takes; a startup job alone may leave schedule_time out.
    kinds = properties["schedule_type"]["enum"]
    job["required"].remove("schedule_time")
    job["allOf"] = [
        {
            "if": {"properties": {"schedule_type": {"const": kind}}, "required": ["schedule_type"]},
            "then": _schedule_rule(kind, kind == STARTUP),
        }
        for kind in kinds
    ]
    properties["schedule_time"]["description"] = "as its schedule_type wants it; none for startup"
    _string_of(properties["last_status"]).update(enum=list(FINISHED_STATUSES))
    _string_of(properties["last_run"]).update(pattern=rules.iso_datetime())
    _string_of(properties["ping_url"]).update(pattern=rules.url(host_checked=False))
    _string_of(properties["timezone"]).update(minLength=1)


def _schedule_rule(kind: str, startup: bool) -> dict[str, Any]:
    """schedule_time as ``kind`` wants it; a startup job has none, and no catch_up."""
    time = {"schedule_time": {"$ref": f"#/$defs/{kind.title()}Time"}}
    if startup:
        return {"properties": {**time, "catch_up": {"const": False}}}
    return {"properties": time, "required": ["schedule_time"]}


def _lane_rules(lanes: dict[str, Any], job_lanes: list[dict[str, Any]]) -> None:
    """Lane names end at the end of the text, and settings.lanes has no other keys. That a
    job's lane is configured, and the cap on the sum of the widths, only validate can tell."""
    name = rules.whole(LANE_NAME_PATTERN)
    [width] = lanes["patternProperties"].values()
    lanes.update(patternProperties={name: width}, additionalProperties=False)
    for lane in job_lanes:
        lane["pattern"] = name


def _command_rules(command: dict[str, Any]) -> None:
    text, words = command["anyOf"]
    text["pattern"] = rules.whole(f"[^\\u0000]*[^{rules.WS_CHARS}\\u0000][^\\u0000]*")
    words["items"]["pattern"] = _NO_NUL
    words["prefixItems"] = [{"minLength": 1}]


def _login_rule(email: dict[str, Any]) -> None:
    from batch_runner.config.models import SMTPS_PORT

    def given(key: str, value: dict[str, Any]) -> dict[str, Any]:
        return {"required": [key], "properties": {key: value}}

    login = ("username_env", "password_env")
    email["if"] = {"anyOf": [given(key, {"type": "string"}) for key in login]}
    email["then"] = {
        "anyOf": [given("starttls", {"const": True}), given("smtp_port", {"const": SMTPS_PORT})]
    }
    email["description"] += f' A login needs "starttls": true or "smtp_port": {SMTPS_PORT}.'


def _string_of(field: dict[str, Any]) -> dict[str, Any]:
    """The string branch of an optional field (``anyOf`` string or null), or the field."""
    branches: list[dict[str, Any]] = field.get("anyOf", [])
    return next((branch for branch in branches if branch.get("type") == "string"), field)
