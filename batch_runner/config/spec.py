"""The validated config as plain, cheap objects.

``config.models`` (pydantic) validates a file once and produces the normalized dict these are
built from; the dict is cached as a snapshot so the hot CLI paths never import pydantic.
Defaults are already resolved in the normalized dict: a job's ``timeout``, ``timezone``,
``notify_after`` and ``ping_url`` hold the effective values.
"""

from __future__ import annotations

from batch_runner.valuetype import REQUIRED, record

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bumped whenever the normalized dict changes shape or validation gets stricter, so a snapshot
# an older rule let through is never trusted (2: a NUL in a command is refused; 3: last_run
# must be a date and time, kept with its offset, and a weekly time has no empty day).
SNAPSHOT_FORMAT = 3


class HttpRequestSpec(
    record("HttpRequestSpec", method="GET", url="", headers=None, params=None, body=None)
):
    """What an HTTP job sends (section 11): method, url, headers, params, body (JSON or text)."""

    __slots__ = ()


class JobSpec(
    record(
        "JobSpec",
        name=REQUIRED,
        schedule_type=REQUIRED,
        schedule_time=REQUIRED,
        command=None,  # a string, or a list (argv, never run by a shell); None for HTTP jobs
        enabled=True,
        description=None,
        tags=(),
        timeout=1800.0,
        shell="auto",  # True, False or "auto"
        cwd=None,
        env=None,
        timezone=None,  # timezone None: the system's local zone
        max_attempts=1,
        backoff="exponential",
        backoff_seconds=30.0,
        priority=0,
        catch_up=False,
        jitter=0.0,
        notify_after=3,
        type="command",  # "command" or "http"
        ping_url=None,
        http=None,  # an HttpRequestSpec for HTTP jobs
        # Seeds from the original format; the live values are in the state database.
        last_run=None,
        last_status=None,
        error_count=0,
    )
):
    """One job of the config, defaults resolved."""

    __slots__ = ()

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        values = dict(data)
        values["tags"] = tuple(values.get("tags") or ())
        values["env"] = dict(values.get("env") or {})
        if values.get("http") is not None:
            values["http"] = HttpRequestSpec(**values["http"])
        return cls(**values)


class HttpSettings(
    record(
        "HttpSettings",
        max_response_bytes=1024 * 1024,
        mask_headers=("Authorization", "Cookie", "X-Api-Key"),
        allow_hosts=(),
    )
):
    """``settings.http``: response cap, headers to mask, hosts allowed (empty: any)."""

    __slots__ = ()


class Settings(
    record(
        "Settings",
        log_dir=REQUIRED,  # absolute
        default_timeout=1800.0,
        kill_grace=10.0,
        shutdown_grace=30.0,
        timezone=None,
        notify_after=3,
        notifiers=(),
        output_max_bytes=65536,
        run_log_max_bytes=10 * 1024 * 1024,
        retention_days=30,
        ping_url=None,
        http=HttpSettings(),
    )
):
    """Top-level ``settings``."""

    __slots__ = ()

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


class ConfigSpec(
    record("ConfigSpec", path=REQUIRED, root=REQUIRED, settings=REQUIRED, jobs=REQUIRED)
):
    """A whole validated config: where it came from, the settings, the jobs in file order."""

    __slots__ = ()

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
