"""From the validated models to the normalized dict that ``spec.ConfigSpec`` is built from.

The dict has exactly the field names of ``spec.Settings`` and ``spec.JobSpec``, with every
default resolved (a job's timeout, time zone, notice threshold and ping URL fall back to the
settings) and every path absolute, so nothing downstream needs the file's rules again. It is
plain JSON, cached as the snapshot.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from batch_runner.config.lanes import DEFAULT_LANE, DEFAULT_WIDTH
from batch_runner.config.models import CommandJob, ConfigModel, HttpJob, SettingsModel
from batch_runner.paths import resolve_under_root

_SHARED_JOB_KEYS = (
    "name",
    "schedule_type",
    "enabled",
    "description",
    "tags",
    "max_attempts",
    "backoff",
    "priority",
    "catch_up",
    "last_run",
    "last_status",
    "error_count",
    "type",
    "lane",
)


def normalize(model: ConfigModel, root: str) -> dict[str, Any]:
    settings = _settings(model.settings, root)
    return {"settings": settings, "jobs": [_job(job, settings, root) for job in model.jobs]}


def _settings(settings: SettingsModel, root: str) -> dict[str, Any]:
    values = settings.model_dump(mode="json", by_alias=True)
    values["log_dir"] = str(resolve_under_root(root, settings.log_dir))
    for key in ("default_timeout", "kill_grace", "shutdown_grace"):
        values[key] = float(values[key])
    # The default lane always exists: whoever reads the spec finds its width there.
    values["lanes"] = {DEFAULT_LANE: DEFAULT_WIDTH, **settings.lanes}
    return values


def _job(job: CommandJob | HttpJob, settings: dict[str, Any], root: str) -> dict[str, Any]:
    values: dict[str, Any] = {key: getattr(job, key) for key in _SHARED_JOB_KEYS}
    values["tags"] = list(job.tags)
    values["schedule_time"] = schedule_time_text(job.schedule_time)
    values["timeout"] = float(job.timeout or settings["default_timeout"])
    values["timezone"] = job.timezone if job.timezone is not None else settings["timezone"]
    values["notify_after"] = job.notify_after or settings["notify_after"]
    values["disable_after"] = job.disable_after or settings["disable_after"]
    values["ping_url"] = job.ping_url or settings["ping_url"]
    values["backoff_seconds"] = float(job.backoff_seconds)
    values["jitter"] = float(job.jitter)
    if isinstance(job, HttpJob):
        values.update(
            command=None,
            shell="auto",
            cwd=None,
            env={},
            http={
                "method": job.method,
                "url": job.url,
                "headers": dict(job.headers),
                "params": dict(job.params),
                "body": job.body,
            },
        )
    else:
        cwd = str(resolve_under_root(root, job.cwd)) if job.cwd is not None else None
        command = list(job.command) if isinstance(job.command, list) else job.command
        values.update(command=command, shell=job.shell, cwd=cwd, env=dict(job.env), http=None)
    return values


def schedule_time_text(value: str | int | float | None) -> str:
    """``schedule_time`` as the string ``JobSpec`` holds: 3600 -> "3600", 1e-05 -> "0.00001";
    a startup job's, omitted or null, -> ""."""
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    # repr is exact; Decimal spells it without an exponent, which the schedule parser needs.
    return format(Decimal(repr(value)), "f")
