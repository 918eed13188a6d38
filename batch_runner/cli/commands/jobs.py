"""``list``, ``add``, ``remove``, ``enable``, ``disable``: the jobs of the config file."""

from __future__ import annotations

import argparse
import time
from datetime import datetime

from batch_runner.cli import app, completion, render
from batch_runner.config.spec import JobSpec
from batch_runner.errors import UsageError
from batch_runner.runs.jobtable import describe_job, job_rows, own_zone

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("list", help="every job with its schedule, next and last run")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(handler=cmd_list)
    common(p)

    p = sub.add_parser("add", help="add a job to the config file")
    p.add_argument("name")
    p.add_argument("job_command", metavar="COMMAND", help="the command line to run")
    p.add_argument(
        "--type",
        dest="schedule_type",
        required=True,
        choices=("interval", "daily", "weekly", "cron", "startup"),
    )
    p.add_argument(
        "--time",
        dest="schedule_time",
        help="e.g. 3600, 15m, 02:00, 'mon,fri 09:00', '30 7 * * 1-5'; none for startup",
    )
    p.add_argument("--timeout", type=float, help="seconds before the run is killed")
    p.add_argument("--disabled", action="store_true", help="add it switched off")
    p.set_defaults(handler=cmd_add)
    common(p)

    for name, helptext in (
        ("remove", "remove a job from the config file"),
        ("enable", "switch a job on"),
        ("disable", "switch a job off"),
    ):
        p = sub.add_parser(name, help=helptext)
        completion.offers(p.add_argument("name"), completion.job_names)
        p.set_defaults(handler=cmd_edit, edit=name)
        common(p)


def cmd_list(args: argparse.Namespace) -> int:
    ctx = app.context(args)
    from batch_runner.state.locks import holder_pid

    alive = holder_pid(ctx.layout.scheduler_lock) is not None
    now = time.time()
    rows = job_rows(ctx.config, ctx.store.job_states(), now, scheduler_alive=alive)
    if args.json:
        render.print_json(rows)
        return 0
    lanes = lanes_in_words(ctx.config.settings.lanes)
    render.print_table(
        ["name", "enabled", "schedule", "next run", "last run", "last status", "errors"]
        + (["lane"] if lanes else []),
        [
            [
                r["name"],
                _enabled_cell(r),
                describe_job(job, now),
                _next_run_cell(job, r, now),
                _short(r["last_run"]),
                r["last_status"],
                r["error_count"],
            ]
            + ([job.lane] if lanes else [])
            for r, job in zip(rows, ctx.config.jobs, strict=True)
        ],
        title=f"jobs in {ctx.config.path}",
        wrap=("schedule",),
        optional=("enabled", "errors", "last run", "last status"),
    )
    if lanes:
        print(lanes)
    return 0


def lanes_in_words(lanes: dict[str, int]) -> str | None:
    """``lanes: default 1 at a time, http 4 at a time``; None without lanes."""
    if lanes == {"default": 1}:  # no lanes configured
        return None
    return "lanes: " + ", ".join(f"{render.shown(n)} {w} at a time" for n, w in lanes.items())


def _enabled_cell(row: dict[str, Any]) -> bool | str:
    """``no (5 failures)`` for a job its failures disabled; the file's value otherwise."""
    if row["enabled"] and "disabled_reason" in row:
        from batch_runner.runs.disabling import failures_in_words

        return f"no ({failures_in_words(row)})"
    return bool(row["enabled"])


def _next_run_cell(job: JobSpec, row: dict[str, Any], now: float) -> str | None:
    """In the job's zone, named, where that is not the system's; an interval with no
    scheduler to hold its plan is counted from now, and says so."""
    next_run = row["next_run"]
    if not job.enabled:
        return "(disabled)"  # said here too: the enabled column is the first a narrow table drops
    if "disabled_reason" in row:
        from batch_runner.runs.disabling import failures_in_words

        return f"(disabled: {failures_in_words(row)})"
    if job.schedule_type == "startup":
        return "at scheduler start"
    if next_run is None and job.enabled and job.schedule_type == "interval":
        from batch_runner import schedules

        interval = schedules.parse_schedule(job.schedule_type, job.schedule_time)
        counted = datetime.fromtimestamp(now + interval.seconds).astimezone()  # type: ignore[union-attr]
        return f"{counted:%Y-%m-%d %H:%M} (from now)"
    if next_run is None:
        return None
    zone = own_zone(job, now)
    if zone is None or job.schedule_type == "interval":
        return _short(next_run)
    from batch_runner import schedules

    moment = datetime.fromisoformat(next_run).astimezone(schedules.resolve_tz(zone))
    return f"{moment:%Y-%m-%d %H:%M} {moment.tzname()}"  # "EST": short, and says the zone


def _short(iso_time: str | None) -> str | None:
    """Tables show minutes in local time; --json keeps the full ISO form."""
    if not iso_time:
        return None
    return datetime.fromisoformat(iso_time).astimezone().strftime("%Y-%m-%d %H:%M")


def cmd_add(args: argparse.Namespace) -> int:
    from batch_runner.config.edit import add_job

    if args.schedule_time is None and args.schedule_type != "startup":
        raise UsageError(f"a {args.schedule_type} job needs --time (a startup job takes none)")
    job: dict[str, Any] = {
        "name": args.name,
        "command": args.job_command,
        "schedule_type": args.schedule_type,
        "schedule_time": args.schedule_time,
        "enabled": not args.disabled,
    }
    if args.schedule_time is None:
        del job["schedule_time"]
    if args.timeout is not None:
        # 3600, not 3600.0, in the file (and in a refusal's "found ...").
        job["timeout"] = int(args.timeout) if args.timeout.is_integer() else args.timeout
    add_job(app.config_path_of(args), app.root_of(args), job)
    print(f"added job {args.name!r} to {app.config_path_of(args)}")
    return 0


def cmd_edit(args: argparse.Namespace) -> int:
    from batch_runner.config import edit

    path, root = app.config_path_of(args), app.root_of(args)
    if args.edit == "remove":
        edit.remove_job(path, root, args.name)
        print(f"removed job {args.name!r} from {path}")
    elif args.edit == "enable":
        _enable(args, path, root)
    else:
        edit.set_enabled(path, root, args.name, False)
        print(f"disabled job {args.name!r} in {path}")
    return 0


def _enable(args: argparse.Namespace, path: str, root: str) -> None:
    from batch_runner.runs.jobtable import enable_job

    config = app.load(args)
    job = config.find_job(args.name)
    edited, cleared = enable_job(config, job.name)
    if edited:
        print(f"enabled job {job.name!r} in {path}")
    if cleared is not None:
        reason = render.shown(str(cleared["disabled_reason"]))
        print(
            f"job {job.name!r}: {reason}; cleared: the scheduler queues it again, its failed "
            "runs counted from 0"
        )
