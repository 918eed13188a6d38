"""The validated config as plain, cheap objects.

``config.models`` (pydantic) validates a file once and produces the normalized dict these are
built from; the dict is cached as a snapshot so the hot CLI paths never import pydantic.
Defaults are already resolved in the normalized dict: a job's ``timeout``, ``timezone``,
``notify_after`` and ``ping_url`` hold the effective values.
"""

from __future__ import annotations

from batch_runner.valuetype import Record

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# Bumped whenever the normalized dict changes shape or validation gets stricter, so a snapshot
# an older rule let through is never trusted (2: a NUL in a command is refused; 3: last_run
# must be a date and time, kept with its offset, and a weekly time has no empty day; 4: a job
# name does not start with "-"; 5: an SMTP login needs TLS, hosts are parsed once and a "%"
# in one is refused; 6: settings.lanes and a job's lane, which must be configured; 8:
# settings.backend).
SNAPSHOT_FORMAT = 8


class HttpRequestSpec(Record):
    """What an HTTP job sends (section 11): method, url, headers, params, body (JSON or text)."""

    method: str = "GET"
    url: str = ""
    headers: dict[str, str] | None = None
    params: dict[str, str] | None = None
    body: Any = None


class JobSpec(Record):
    """One job of the config, defaults resolved."""

    name: str
    schedule_type: str
    schedule_time: str
    command: str | list[str] | None = None  # a list is argv, never run by a shell; None: HTTP
    enabled: bool = True
    description: str | None = None
    tags: tuple[str, ...] = ()
    timeout: float = 1800.0
    shell: bool | str = "auto"  # True, False or "auto"
    cwd: str | None = None
    env: dict[str, str] | None = None
    timezone: str | None = None  # None: the system's local zone
    max_attempts: int = 1
    backoff: str = "exponential"
    backoff_seconds: float = 30.0
    priority: int = 0
    catch_up: bool = False
    jitter: float = 0.0
    notify_after: int = 3
    disable_after: int | None = None  # the job's, else settings'; None: never
    type: str = "command"  # "command" or "http"
    ping_url: str | None = None
    http: HttpRequestSpec | None = None  # for HTTP jobs
    # Seeds from the original format; the live values are in the state database.
    last_run: str | None = None
    last_status: str | None = None
    error_count: int = 0
    lane: str = "default"  # a name of Settings.lanes

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> JobSpec:
        values = dict(data)
        values["tags"] = tuple(values.get("tags") or ())
        values["env"] = dict(values.get("env") or {})
        if values.get("http") is not None:
            values["http"] = HttpRequestSpec(**values["http"])
        return cls(**values)


class HttpSettings(Record):
    """``settings.http``: response cap, headers to mask, hosts allowed (empty: any)."""

    max_response_bytes: int = 1024 * 1024
    mask_headers: tuple[str, ...] = ("Authorization", "Cookie", "X-Api-Key")
    allow_hosts: tuple[str, ...] = ()


class Backend(Record):
    """``settings.backend``: the shared state of a cluster (type "postgres"), its DSN read
    from the environment variable ``dsn_env`` names, never from the file."""

    type: str
    dsn_env: str


class Settings(Record):
    """Top-level ``settings``."""

    log_dir: str  # absolute
    default_timeout: float = 1800.0
    kill_grace: float = 10.0
    shutdown_grace: float = 30.0
    timezone: str | None = None
    notify_after: int = 3
    disable_after: int | None = None
    notifiers: tuple[dict[str, Any], ...] = ()
    output_max_bytes: int = 65536
    run_log_max_bytes: int = 10 * 1024 * 1024
    retention_days: int = 30
    ping_url: str | None = None
    http: HttpSettings = HttpSettings()
    # Lane name -> width, "default" always among them. Shared by every Settings that leaves it
    # out, as a Record's defaults are: never change it in place.
    lanes: dict[str, int] = {"default": 1}
    backend: Backend | None = None  # None: SQLite on this host

    def width(self, lane: str) -> int:
        """How many runs of ``lane`` may run at once; 1 for a lane no longer configured, whose
        leftover pending runs still drain, one at a time."""
        return self.lanes.get(lane, 1)

    @property
    def has_lanes(self) -> bool:
        """Whether lanes are configured: without, everything is as it was before lanes (one
        lane, ``default``, one run at a time) and is shown so."""
        return self.lanes != {"default": 1}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Settings:
        values = dict(data)
        values["lanes"] = {"default": 1, **(values.get("lanes") or {})}
        values["notifiers"] = tuple(values.get("notifiers") or ())
        http = dict(values.get("http") or {})
        for key in ("mask_headers", "allow_hosts"):
            if key in http:
                http[key] = tuple(http[key])
        values["http"] = HttpSettings(**http)
        backend = values.get("backend")
        values["backend"] = Backend(**backend) if backend is not None else None
        return cls(**values)


class ConfigSpec(Record):
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

    def find_job(self, name: str) -> JobSpec:
        """The job called ``name``; NotFound (exit 3, 404), naming the closest job if any."""
        job = self.job(name)
        if job is None:
            import difflib

            from batch_runner.errors import NotFound

            close = difflib.get_close_matches(name, [j.name for j in self.jobs], n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            raise NotFound(f"no job named {name!r} in {self.path}{hint}")
        return job

    @classmethod
    def from_normalized(cls, path: str, root: str, data: dict[str, Any]) -> ConfigSpec:
        return cls(
            path=path,
            root=root,
            settings=Settings.from_dict(data["settings"]),
            jobs=tuple(JobSpec.from_dict(job) for job in data["jobs"]),
        )
