"""systemd units: a service for the scheduler, or a service and timer pair for one job.

The units must work when copied to ``/etc/systemd/system/`` as they are: absolute paths, the
Python that has batch_runner installed, and values escaped for systemd's own parser (``%``
starts a specifier and ``$`` an environment variable, even inside paths).
"""

from __future__ import annotations

import math
import re

from batch_runner.config.spec import ConfigSpec, JobSpec
from batch_runner.schedules import (
    CronSchedule,
    IntervalSchedule,
    Schedule,
    StartupSchedule,
    WeeklySchedule,
    describe,
    parse_schedule,
)

UNIT_PREFIX = "batch-runner"
UNIT_DIR = "/etc/systemd/system"
WATCHDOG_SEC = 60
RESTART_SEC = 5
# Beyond the scheduler's own shutdown (shutdown_grace, then kill_grace for the running job):
# time for Python to start the stop, write the last records and exit.
STOP_MARGIN_SEC = 15
_WEEKDAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")  # Python's order, Monday = 0
# Words systemd reads as they are; anything else is double-quoted.
_PLAIN_WORD = re.compile(r"[A-Za-z0-9_@%+=:,./-]+")


class UnitError(ValueError):
    """A value a unit file cannot hold (a line break in a path), or a schedule a timer cannot
    express; the message is one sentence saying why."""


def unit_name(job: JobSpec | None = None) -> str:
    """``batch-runner`` for the scheduler, ``batch-runner-NAME`` for one job's timer."""
    return UNIT_PREFIX if job is None else f"{UNIT_PREFIX}-{job.name}"


# --- escaping ------------------------------------------------------------------------------


def _value(text: str) -> str:
    """A plain value (Description=, WorkingDirectory=): only specifiers need escaping."""
    return _one_line(text).replace("%", "%%")


def _one_line(text: str) -> str:
    """``text`` as it is; UnitError if it would break out of its line (a comment's too)."""
    if "\n" in text or "\r" in text:
        raise UnitError(f"{text!r} contains a line break, which a unit file cannot hold.")
    return text


def _exec_word(word: str) -> str:
    """One word of ExecStart=: specifiers and variables escaped, quoted when needed."""
    word = _value(word).replace("$", "$$")
    if _PLAIN_WORD.fullmatch(word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _exec_start(config: ConfigSpec, python: str, *command: str) -> str:
    words = [python, "-m", "batch_runner", "-c", config.path, "--root", config.root, *command]
    return "ExecStart=" + " ".join(_exec_word(w) for w in words)


def _seconds(value: float) -> int:
    return math.ceil(value)


# --- the scheduler service -----------------------------------------------------------------


def service_unit(config: ConfigSpec, python: str, user: str | None = None) -> str:
    """``batch-runner.service``: the scheduler, supervised and restarted by systemd."""
    stop = _seconds(config.settings.shutdown_grace + config.settings.kill_grace) + STOP_MARGIN_SEC
    lines = [
        f"# {unit_name()}.service: the batch_runner scheduler for {_one_line(config.path)}",
        f"# Save as {UNIT_DIR}/{unit_name()}.service, then:",
        f"#   systemctl daemon-reload && systemctl enable --now {unit_name()}.service",
        "",
        "[Unit]",
        f"Description=batch_runner scheduler for {_value(config.path)}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        # The scheduler says READY=1 once its jobs are loaded and pings the watchdog.
        "Type=notify",
        "NotifyAccess=main",
        f"WatchdogSec={WATCHDOG_SEC}",
        _exec_start(config, python, "scheduler"),
        # SIGHUP makes the scheduler re-read the config at once (it also notices by itself).
        "ExecReload=/bin/kill -HUP $MAINPID",
        f"WorkingDirectory={_value(config.root)}",
        "Environment=PYTHONUNBUFFERED=1",
        *_user_lines(user),
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        "# SIGTERM to the scheduler only: it lets the running job finish for shutdown_grace s,",
        "# then stops it (SIGKILL after kill_grace s); systemd kills what is left after that.",
        "KillMode=mixed",
        f"TimeoutStopSec={stop}",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def serve_unit(config: ConfigSpec, python: str, bind: str, user: str | None = None) -> str:
    """``batch-runner-web.service``: the HTTP API and dashboard, beside the scheduler."""
    name = f"{UNIT_PREFIX}-web"
    lines = [
        f"# {name}.service: the batch_runner web service for {_one_line(config.path)}",
        f"# Save as {UNIT_DIR}/{name}.service, then:",
        f"#   systemctl daemon-reload && systemctl enable --now {name}.service",
        "# It needs the [web] extra (pip install 'batch-runner[web]') and, to listen on",
        "# anything but loopback, a token (batch_runner token create NAME --scope admin).",
        "",
        "[Unit]",
        f"Description=batch_runner web service for {_value(config.path)}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=exec",
        _exec_start(config, python, "serve", "--bind", bind),
        f"WorkingDirectory={_value(config.root)}",
        "Environment=PYTHONUNBUFFERED=1",
        *_user_lines(user),
        "Restart=on-failure",
        f"RestartSec={RESTART_SEC}",
        # It runs no job: SIGTERM ends it, its event streams close within a few seconds.
        "TimeoutStopSec=15",
        "NoNewPrivileges=yes",
        "",
        "[Install]",
        "WantedBy=multi-user.target",
    ]
    return "\n".join(lines) + "\n"


def _user_lines(user: str | None) -> list[str]:
    if user is None:
        return ["# User=batch   (without User=, the jobs run as root)"]
    return [f"User={_value(user)}"]


# --- one job as a timer --------------------------------------------------------------------


def timer_units(
    job: JobSpec, config: ConfigSpec, python: str, user: str | None = None
) -> tuple[str, str]:
    """``batch-runner-NAME.service`` (oneshot ``run-job NAME``) and its ``.timer``."""
    return _job_service(job, config, python, user), _job_timer(job)


def _job_service(job: JobSpec, config: ConfigSpec, python: str, user: str | None) -> str:
    stop = _seconds(config.settings.kill_grace) + STOP_MARGIN_SEC
    lines = [
        "[Unit]",
        f"Description=batch_runner job {job.name} from {_value(config.path)}",
        "After=network-online.target",
        "Wants=network-online.target",
        "",
        "[Service]",
        "Type=oneshot",
        _exec_start(config, python, "run-job", job.name),
        f"WorkingDirectory={_value(config.root)}",
        "Environment=PYTHONUNBUFFERED=1",
        *_user_lines(user),
        "# batch_runner enforces the job's own timeout, and run-job may first wait for the",
        "# executor while another run holds it: systemd must not cut either short.",
        "TimeoutStartSec=infinity",
        "# On stop, run-job stops the run itself (SIGKILL to the job after kill_grace s).",
        "KillMode=mixed",
        f"TimeoutStopSec={stop}",
        "# 75: the job was already waiting or running, so this occurrence was skipped.",
        "SuccessExitStatus=75",
    ]
    return "\n".join(lines) + "\n"


def _job_timer(job: JobSpec) -> str:
    schedule = parse_schedule(job.schedule_type, job.schedule_time)
    lines = [
        "[Unit]",
        f"Description=Timer for batch_runner job {job.name} ({_value(describe(schedule))})",
        "",
        "[Timer]",
        *_trigger_lines(job, schedule),
        "AccuracySec=1s",
    ]
    if job.jitter > 0:
        lines.append(f"RandomizedDelaySec={_timespan(job.jitter)}")
    lines += [f"Unit={unit_name(job)}.service", "", "[Install]", "WantedBy=timers.target"]
    return "\n".join(lines) + "\n"


def _trigger_lines(job: JobSpec, schedule: Schedule) -> list[str]:
    try:
        calendar = on_calendar(schedule, job.timezone)
    except UnitError as exc:
        raise UnitError(f"job {job.name!r}: {exc}") from exc
    if calendar is None and isinstance(schedule, IntervalSchedule):
        span = _timespan(schedule.seconds)
        # Start to start, as the scheduler counts; OnBootSec= gives the first activation, at
        # once with catch_up (the scheduler, too, runs such a job at start-up).
        return [f"OnBootSec={'0' if job.catch_up else span}", f"OnUnitActiveSec={span}"]
    # Persistent= runs a missed occurrence once at start, as catch_up asks.
    return [f"OnCalendar={calendar}", f"Persistent={'true' if job.catch_up else 'false'}"]


def on_calendar(schedule: Schedule, timezone: str | None = None) -> str | None:
    """The ``OnCalendar=`` expression of a schedule, or None for an interval it cannot step.

    Daily, weekly and cron times carry the job's zone (systemd 245 and later read it); an
    interval is elapsed time, so its steps are counted in UTC, where no daylight saving shifts
    them. UnitError for a startup job, and for a cron expression OnCalendar= cannot say.
    """
    if isinstance(schedule, IntervalSchedule):
        steps = _interval_calendar(schedule.seconds)
        return None if steps is None else f"{steps} UTC"
    zone = f" {timezone}" if timezone else ""
    if isinstance(schedule, CronSchedule):
        return cron_calendar(schedule) + zone
    if isinstance(schedule, StartupSchedule):
        raise UnitError(
            "a startup job runs when the scheduler starts, which a timer cannot express "
            "(OnBootSec= counts from boot, and fires again whenever the timer is started); run "
            "the scheduler as a service (`batch_runner systemd`), which runs it each time it "
            "starts, or print an @reboot line with `batch_runner cron`."
        )
    at = schedule.at.strftime("%H:%M:%S")
    days = ""
    if isinstance(schedule, WeeklySchedule) and len(schedule.days) < 7:
        days = ",".join(_WEEKDAYS[d] for d in sorted(schedule.days)) + " "
    return f"{days}*-*-* {at}{zone}"


def cron_calendar(schedule: CronSchedule) -> str:
    """A cron expression as OnCalendar= (``Mon..Fri *-*-* 07:30:00``); UnitError if it cannot.

    Written from the values cronsim expands each field into, so the calendar names the same
    minutes as the expression whatever its spelling; the zone is left to ``on_calendar``.
    """
    if schedule.either_day:
        raise UnitError(
            f'the cron schedule "{schedule.expression}" cannot be written as OnCalendar=, because '
            "it restricts both the day of the month and the day of the week, which cron joins "
            "with OR (either day runs) and OnCalendar= with AND (only days that are both); split "
            "it into two jobs, one per day field, or run it with `batch_runner scheduler` or cron."
        )
    minutes = _calendar_field({t.minute for t in schedule.times}, 0, 59)
    hours = _calendar_field({t.hour for t in schedule.times}, 0, 23)
    days = _calendar_field(schedule.days, 1, 31)
    months = _calendar_field(schedule.months, 1, 12)
    weekdays = "" if len(schedule.weekdays) == 7 else _calendar_weekdays(schedule.weekdays) + " "
    return f"{weekdays}*-{months}-{days} {hours}:{minutes}:00"


def _calendar_field(values: set[int] | frozenset[int], low: int, high: int) -> str:
    ordered = sorted(values)
    if ordered == list(range(low, high + 1)):
        return "*"
    step = ordered[1] - ordered[0] if len(ordered) > 2 else 0
    # "05/15": from 5, every 15, to the end of the field (what cron's "5/15" and "*/15" mean)
    if step > 1 and ordered == list(range(ordered[0], high + 1, step)):
        return f"{ordered[0]:02d}/{step}"
    return ",".join(
        f"{run[0]:02d}..{run[-1]:02d}" if len(run) > 2 else ",".join(f"{v:02d}" for v in run)
        for run in _runs(ordered)
    )


def _calendar_weekdays(days: frozenset[int]) -> str:
    return ",".join(
        f"{_WEEKDAYS[run[0]]}..{_WEEKDAYS[run[-1]]}"
        if len(run) > 2
        else ",".join(_WEEKDAYS[d] for d in run)
        for run in _runs(sorted(days))
    )


def _runs(ordered: list[int]) -> list[list[int]]:
    """Consecutive values grouped: [1, 2, 3, 7] -> [[1, 2, 3], [7]]."""
    runs: list[list[int]] = []
    for value in ordered:
        if runs and runs[-1][-1] == value - 1:
            runs[-1].append(value)
        else:
            runs.append([value])
    return runs


def _interval_calendar(seconds: float) -> str | None:
    whole = {60: "*-*-* *:*:00", 3600: "*-*-* *:00:00", 86400: "*-*-* 00:00:00"}
    if seconds in whole:
        return whole[int(seconds)]
    # A calendar step restarts every minute, hour or day, so it keeps a steady pace only when
    # the interval divides the next larger unit evenly.
    for unit, within, template in (
        (1, 60, "*-*-* *:*:0/{n}"),
        (60, 60, "*-*-* *:0/{n}:00"),
        (3600, 24, "*-*-* 0/{n}:00:00"),
    ):
        count = seconds / unit
        if count.is_integer() and count < within and within % count == 0:
            return template.format(n=int(count))
    return None


def _timespan(seconds: float) -> str:
    return f"{int(seconds)}s" if float(seconds).is_integer() else f"{seconds:.6f}".rstrip("0") + "s"


def timer_bundle(job: JobSpec, config: ConfigSpec, python: str, user: str | None = None) -> str:
    """``systemd --timer NAME``: both files, each under a comment naming where it goes."""
    service, timer = timer_units(job, config, python, user)
    name = unit_name(job)
    return "\n".join(
        [
            f"# batch_runner job {job.name} from {_one_line(config.path)} as a systemd timer.",
            f"# Write the two files below to {UNIT_DIR}/, then:",
            f"#   systemctl daemon-reload && systemctl enable --now {name}.timer",
            "# A running `batch_runner scheduler` runs this job too: disable the job there, or it",
            "# runs twice (run-job still runs a disabled job).",
            "",
            f"# ===== {UNIT_DIR}/{name}.service =====",
            service,
            f"# ===== {UNIT_DIR}/{name}.timer =====",
            timer,
        ]
    )
