"""The validated config as plain, cheap objects.

``config.models`` (pydantic) validates a file once and produces the normalized dict these are
built from; the dict is cached as a snapshot so the hot CLI paths never import pydantic.
Defaults are already resolved in the normalized dict: a job's ``timeout``, ``timezone``,
``notify_after`` and ``ping_url`` hold the effective values.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

ScheduleType = Literal["interval", "daily", "weekly"]
JobType = Literal["command", "http"]
ShellMode = bool | Literal["auto"]
Backoff = Literal["fixed", "exponential"]

# Bumped whenever the normalized dict changes shape, so an old snapshot is never trusted.
SNAPSHOT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class HttpRequestSpec:
    """What an HTTP job sends (section 11)."""

    method: str = "GET"
    url: str = ""
    headers: dict[str, str] = field(default_factory=dict)
    params: dict[str, str] = field(default_factory=dict)
    body: Any = None


@dataclass(frozen=True, slots=True)
class JobSpec:
    """One job of the config, defaults resolved."""

    name: str
    schedule_type: ScheduleType
    schedule_time: str
    command: str | list[str] | None = None
    enabled: bool = True
    description: str | None = None
    tags: tuple[str, ...] = ()
    timeout: float = 1800.0
    shell: ShellMode = "auto"
    cwd: str | None = None
    env: dict[str, str] = field(default_factory=dict)
    timezone: str | None = None
    max_attempts: int = 1
    backoff: Backoff = "exponential"
    backoff_seconds: float = 30.0
    priority: int = 0
    catch_up: bool = False
    jitter: float = 0.0
    notify_after: int = 3
    type: JobType = "command"
    ping_url: str | None = None
    http: HttpRequestSpec | None = None
    # Seeds from the original format; live values are in the state database.
    last_run: str | None = None
    last_status: str | None = None
    error_count: int = 0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        values = dict(data)
        values["tags"] = tuple(values.get("tags") or ())
        if values.get("http") is not None:
            values["http"] = HttpRequestSpec(**values["http"])
        return cls(**values)


@dataclass(frozen=True, slots=True)
class HttpSettings:
    max_response_bytes: int = 1024 * 1024
    mask_headers: tuple[str, ...] = ("Authorization", "Cookie", "X-Api-Key")
    allow_hosts: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Settings:
    """Top-level ``settings``; ``log_dir`` is absolute."""

    log_dir: str
    default_timeout: float = 1800.0
    kill_grace: float = 10.0
    shutdown_grace: float = 30.0
    timezone: str | None = None
    notify_after: int = 3
    notifiers: tuple[dict[str, Any], ...] = ()
    output_max_bytes: int = 65536
    run_log_max_bytes: int = 10 * 1024 * 1024
    retention_days: int = 30
    ping_url: str | None = None
    http: HttpSettings = field(default_factory=HttpSettings)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        values = dict(data)
        values["notifiers"] = tuple(values.get("notifiers") or ())
        http = dict(values.get("http") or {})
        for key in ("mask_headers", "allow_hosts"):
            if key in http:
                http[key] = tuple(http[key])
        values["http"] = HttpSettings(**http)
        return cls(**values)


@dataclass(frozen=True, slots=True)
class ConfigSpec:
    """A whole validated config: where it came from, the settings, the jobs in file order."""

    path: str
    root: str
    settings: Settings
    jobs: tuple[JobSpec, ...]

    def job(self, name: str) -> JobSpec | None:
        for job in self.jobs:
            if job.name == name:
                return job
        return None

    @classmethod
    def from_normalized(cls, path: str, root: str, data: dict[str, Any]) -> ConfigSpec:
        return cls(
            path=path,
            root=root,
            settings=Settings.from_dict(data["settings"]),
            jobs=tuple(JobSpec.from_dict(job) for job in data["jobs"]),
        )
