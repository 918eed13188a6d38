"""Crontab lines that run jobs through ``run-job`` (SPEC section 12).

A line must work when pasted into a crontab as it is: cron starts it from the home directory
with a bare environment (``PATH=/usr/bin:/bin``, no virtualenv), so every path is absolute and
the Python is the one that has batch_runner installed.
"""

from __future__ import annotations

import functools
import os
import shlex
import sys
from datetime import UTC, datetime, time, timedelta, tzinfo

from batch_runner.config.spec import ConfigSpec, JobSpec
from batch_runner.schedules import (
    CronSchedule,
    DailySchedule,
    IntervalSchedule,
    Schedule,
    StartupSchedule,
    WeeklySchedule,
    describe,
    parse_schedule,
    resolve_tz,
)
from batch_runner.version import __version__

# cron steps restart at every hour and every day, so an interval keeps a steady pace only when
# it divides an hour (in whole minutes) or a day (in whole hours).
_MINUTE_STEPS = tuple(m for m in range(1, 61) if 60 % m == 0)
_HOUR_STEPS = tuple(h for h in range(1, 25) if 24 % h == 0)
EXPRESSIBLE_INTERVALS = tuple(
    sorted({m * 60 for m in _MINUTE_STEPS} | {h * 3600 for h in _HOUR_STEPS})
)

CRON_TZ_COMMENT = (
    "# CRON_TZ sets the time zone of every line below it; cron implementations without "
    "CRON_TZ support (Debian's among them) ignore it and run the job in the system's time zone."
)


class CronError(ValueError):
    """A schedule or a path cron cannot express; the message is one sentence saying what would."""


# --- schedule fields -----------------------------------------------------------------------


def cron_fields(schedule: Schedule) -> str:
    """The five time fields of a crontab line for ``schedule``; CronError if cron cannot.

    A cron expression is printed as written (cron reads it as the scheduler does, in the zone
    ``cron_zone`` gives). A startup job runs at ``@reboot``: without the scheduler, cron's own
    start, at boot, is the start it replaces.
    """
    if isinstance(schedule, IntervalSchedule):
        return _interval_fields(schedule)
    if isinstance(schedule, CronSchedule):
        return schedule.expression
    if isinstance(schedule, StartupSchedule):
        return "@reboot"
    if schedule.at.second or schedule.at.microsecond:
        raise CronError(_seconds_refusal(schedule))
    days = "*" if isinstance(schedule, DailySchedule) else _cron_days(schedule.days)
    return f"{schedule.at.minute} {schedule.at.hour} * * {days}"


def _cron_days(days: frozenset[int]) -> str:
    # Python counts Monday = 0 ... Sunday = 6; cron counts Sunday = 0 ... Saturday = 6.
    if len(days) == 7:
        return "*"
    return ",".join(str(d) for d in sorted((day + 1) % 7 for day in days))


def _interval_fields(schedule: IntervalSchedule) -> str:
    seconds = schedule.seconds
    if seconds == 3600:
        # */60 and 0 */1 mean the same; this is the form every cron reads the same way.
        return "0 * * * *"
    if seconds == 86400:
        return "0 0 * * *"
    minutes, hours = seconds / 60, seconds / 3600
    if minutes in _MINUTE_STEPS:
        return "* * * * *" if minutes == 1 else f"*/{int(minutes)} * * * *"
    if hours in _HOUR_STEPS:
        return f"0 */{int(hours)} * * *"
    raise CronError(_interval_refusal(schedule))


def _interval_refusal(schedule: IntervalSchedule) -> str:
    seconds = schedule.seconds
    if seconds < 60:
        why = "cron's smallest step is one minute"
    elif seconds > 86400:
        why = "cron can repeat a job by interval at most once a day"
    else:
        why = "cron's steps restart every hour and every day, so an interval must divide an hour"
        why += " or a day evenly"
    lower = [s for s in EXPRESSIBLE_INTERVALS if s < seconds][-1:]
    higher = [s for s in EXPRESSIBLE_INTERVALS if s > seconds][:1]
    options = [_interval_option(s) for s in lower + higher]
    nearest = (
        "the nearest that can are " + " and ".join(options)
        if len(options) == 2
        else ("the nearest that can is " + options[0])
    )
    return (
        f"{describe(schedule)} cannot be written as a cron schedule, because {why}; {nearest}, "
        "or use `batch_runner scheduler` or a systemd timer, which keep any interval."
    )


def _interval_option(seconds: int) -> str:
    schedule = IntervalSchedule(seconds)
    return f"{describe(schedule)} ('{_interval_fields(schedule)}')"


def _seconds_refusal(schedule: DailySchedule | WeeklySchedule) -> str:
    earlier = schedule.at.replace(second=0, microsecond=0)
    options = [_at_option(schedule, earlier, 0)]
    later_wall = datetime.combine(datetime.min.date(), earlier) + timedelta(minutes=1)
    options.append(_at_option(schedule, later_wall.time(), later_wall.day - 1))
    return (
        f"{describe(schedule)} cannot be written as a cron schedule, because cron's smallest unit "
        f"is one minute; the nearest that can are {' and '.join(options)}."
    )


def _at_option(schedule: DailySchedule | WeeklySchedule, at: time, day_shift: int) -> str:
    # One minute past 23:59 lands on the next day, so a weekly schedule's days move with it.
    moved: Schedule = (
        DailySchedule(at)
        if isinstance(schedule, DailySchedule)
        else WeeklySchedule(frozenset((d + day_shift) % 7 for d in schedule.days), at)
    )
    return f"{describe(moved)} ('{cron_fields(moved)}')"


# --- lines ---------------------------------------------------------------------------------


def python_executable() -> str:
    """The Python running batch_runner now, absolute.

    Symlinks are kept: a virtualenv's ``bin/python`` is a symlink to the base interpreter, and
    resolving it would escape the virtualenv and lose batch_runner.
    """
    if not sys.executable:
        raise CronError("the path of the running Python is unknown, so no command can name it.")
    return os.path.abspath(sys.executable)


def run_job_command(job: JobSpec, config: ConfigSpec, python: str) -> str:
    """The shell command part of the line: ``cd <root> && <python> -m batch_runner ...``."""
    log = os.path.join(config.settings.log_dir, "cron.log")
    words = [python, "-m", "batch_runner", "-c", config.path, "run-job", job.name]
    command = f"cd {_quote(config.root)} && {' '.join(map(_quote, words))} >> {_quote(log)} 2>&1"
    # cron turns an unescaped % into a newline and feeds the rest to stdin; a backslash keeps it.
    return command.replace("%", "\\%")


def _quote(word: str) -> str:
    return shlex.quote(_one_line(word))


def _one_line(text: str) -> str:
    """``text`` as it is; CronError if it would break out of its line (a comment's too)."""
    if "\n" in text or "\r" in text:
        raise CronError(f"{text!r} contains a line break, which a crontab line cannot hold.")
    return text


def cron_line(job: JobSpec, config: ConfigSpec, python: str) -> str:
    """One crontab line that runs ``job`` on its schedule; CronError if cron cannot express it."""
    try:
        fields = cron_fields(parse_schedule(job.schedule_type, job.schedule_time))
    except CronError as exc:
        raise CronError(f"job {job.name!r}: {exc}") from exc
    return f"{fields} {run_job_command(job, config, python)}"


def cron_entry(
    job: JobSpec, config: ConfigSpec, python: str, system_tz: tzinfo, now: datetime
) -> str:
    """``cron NAME``: the line, after a ``CRON_TZ=`` line if it needs a zone of its own."""
    line = cron_line(job, config, python)
    zone = cron_zone(job, system_tz, now)
    if zone is None:
        return line + "\n"
    return f"{CRON_TZ_COMMENT}\nCRON_TZ={zone}\n{line}\n"


def cron_zone(job: JobSpec, system_tz: tzinfo, now: datetime) -> str | None:
    """The ``CRON_TZ`` the job's line needs, or None when the system's clock is the right one.

    An interval counts elapsed time, so its line runs on UTC: on a local clock with daylight
    saving, ``0 */4 * * *`` has one 3-hour and one 5-hour step a year. A daily, weekly or cron
    job runs on its own zone's clock when that differs from the system's over the coming year.
    """
    if job.schedule_type == "interval":
        return None if _same_clock(UTC, system_tz, now) else "UTC"
    if job.timezone is None or job.schedule_type == "startup":  # @reboot has no clock
        return None
    return None if _same_clock(resolve_tz(job.timezone), system_tz, now) else job.timezone


@functools.lru_cache(maxsize=64)
def _same_clock(a: tzinfo, b: tzinfo, start: datetime) -> bool:
    return same_clock(a, b, start)  # a year of hours per zone: once, not once per job


def same_clock(a: tzinfo, b: tzinfo, start: datetime) -> bool:
    """True when two zones show the same wall time every hour for a year from ``start``.

    "UTC" and "Etc/UTC", or Europe/London and Europe/Lisbon, are different names for one clock;
    a CRON_TZ line for them would only add noise.
    """
    if a is b or str(a) == str(b):
        return True
    hour = start.astimezone(UTC).replace(minute=0, second=0, microsecond=0)
    instants = (hour + timedelta(hours=h) for h in range(24 * 366))
    return all(t.astimezone(a).utcoffset() == t.astimezone(b).utcoffset() for t in instants)


# --- a whole crontab -----------------------------------------------------------------------


def crontab_all(
    config: ConfigSpec, python: str, system_tz: tzinfo, now: datetime
) -> tuple[str, list[str]]:
    """``cron --all``: a header comment, then the lines of the enabled jobs; and the reasons
    of the jobs cron cannot express, which stand in the crontab as comments.

    Jobs that need CRON_TZ come last, grouped by zone: CRON_TZ holds for every later line, so a
    job in the system's zone placed after one would silently move to that zone.
    """
    enabled = [job for job in config.jobs if job.enabled]
    line_of: dict[str, str] = {}
    refusals = []
    for job in enabled:
        try:
            line_of[job.name] = cron_line(job, config, python)
        except CronError as exc:
            refusals.append(str(exc))
    lines = [*_header(config, python, now), *_disabled_note(config)]
    lines += [f"# Left out, cron cannot run it as configured: {_one_line(why)}" for why in refusals]
    zone_of = {job.name: cron_zone(job, system_tz, now) for job in enabled if job.name in line_of}
    lines += [line_of[name] for name, zone in zone_of.items() if zone is None]
    by_zone: dict[str, list[str]] = {}
    for name, zone in zone_of.items():
        if zone is not None:
            by_zone.setdefault(zone, []).append(line_of[name])
    for zone, zone_lines in by_zone.items():
        lines += ["", CRON_TZ_COMMENT, f"CRON_TZ={zone}", *zone_lines]
    if by_zone:
        lines += ["", *_zone_reset(system_tz)]
    if not enabled:
        lines.append("# (no enabled jobs)")
    lines.append(f"# END batch_runner {_one_line(config.path)}")
    return "\n".join(lines) + "\n", refusals


def _zone_reset(system_tz: tzinfo) -> list[str]:
    """CRON_TZ holds down to the end of the crontab: give the lines after this block back."""
    name = getattr(system_tz, "key", None)
    if name:
        return [
            "# Back to the system's time zone for any line after this block.",
            f"CRON_TZ={name}",
        ]
    return [
        "# CRON_TZ stays set after this line (the system's zone has no name to set it",
        "# back to): keep this block at the end of the crontab.",
    ]


def _header(config: ConfigSpec, python: str, now: datetime) -> list[str]:
    me = f"{_quote(python)} -m batch_runner -c {_quote(config.path)} cron --all"
    log = _one_line(os.path.join(config.settings.log_dir, "cron.log"))
    return [
        f"# BEGIN batch_runner {config.path}",
        f"# Generated by batch_runner {__version__} on {now.isoformat(timespec='seconds')} "
        f"from {config.path}.",
        "# Each line runs one job through `run-job`: results go to the JSONL logs as usual,",
        f"# and what run-job prints to {log}.",
        "# Use these lines instead of `batch_runner scheduler`, not beside it, or jobs run twice.",
        "# Install (replaces your whole crontab; through a file, so a failure installs nothing):",
        f"#   {me} > batch_runner.cron && crontab batch_runner.cron",
        "# Or keep your other lines: `crontab -e` and paste this block, replacing any older one.",
    ]


def _disabled_note(config: ConfigSpec) -> list[str]:
    disabled = [job.name for job in config.jobs if not job.enabled]
    return [f"# Disabled, left out: {', '.join(disabled)}"] if disabled else []
