"""``cron NAME`` / ``cron --all`` and ``systemd [--timer NAME]``: the jobs for cron and systemd."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from batch_runner.cli import app, completion
from batch_runner.config.spec import ConfigSpec, JobSpec
from batch_runner.errors import EXIT_USAGE, ConfigError, UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("cron", help="print a crontab line for a job, or a crontab for all")
    completion.offers(
        p.add_argument("name", nargs="?", help="the job to print a line for"), completion.job_names
    )
    p.add_argument("--all", action="store_true", help="a whole crontab for the enabled jobs")
    p.set_defaults(handler=cmd_cron)
    common(p)

    p = sub.add_parser("systemd", help="print a systemd service unit for the scheduler")
    p.add_argument(
        "--timer", metavar="NAME", help="print a .service and .timer pair that run this job instead"
    )
    p.add_argument(
        "--serve",
        nargs="?",
        const="127.0.0.1:8080",
        metavar="HOST:PORT",
        help="print the unit of the web service (batch_runner serve) instead",
    )
    p.set_defaults(handler=cmd_systemd)
    common(p)


def cmd_cron(args: argparse.Namespace) -> int:
    if (args.name is None) == (not args.all):
        raise UsageError("cron takes a job NAME or --all, exactly one of them")
    from datetime import datetime

    from batch_runner.export import cron
    from batch_runner.schedules import resolve_tz

    config = app.load(args)
    if config.settings.backend is not None:
        raise ConfigError(
            f"{config.path} has a settings.backend (a cluster), and every host's cron would "
            "run each job; run `batch_runner scheduler` on the hosts instead"
        )
    python = cron.python_executable()
    now, system_tz = datetime.now().astimezone(), resolve_tz(None)
    refusals: list[str] = []
    try:
        if args.all:
            text, refusals = cron.crontab_all(config, python, system_tz, now)
        else:
            job = config.find_job(args.name)
            text = cron.cron_entry(job, config, python, system_tz, now)
            _warn_if_disabled(job, config)
    except cron.CronError as exc:
        raise UsageError(str(exc)) from exc
    # cron opens `>> <log_dir>/cron.log` before batch_runner runs, so the directory must exist.
    Path(config.settings.log_dir).mkdir(parents=True, exist_ok=True)
    _warn_if_not_startable(python, config.root)
    sys.stdout.write(text)
    for why in refusals:
        print(f"error: {why}", file=sys.stderr)
    # Exit 2 with the crontab printed: `cron --all > f && crontab f` installs nothing until the
    # user has decided what to do about the jobs left out.
    return EXIT_USAGE if refusals else 0


def cmd_systemd(args: argparse.Namespace) -> int:
    from batch_runner.export import cron, systemd

    config = app.load(args)
    python = cron.python_executable()
    try:
        if args.timer is not None and args.serve is not None:
            raise UsageError("systemd takes --timer NAME or --serve, not both")
        if args.serve is not None:
            text = systemd.serve_unit(config, python, args.serve, _unit_user())
        elif args.timer is None:
            text = systemd.service_unit(config, python, _unit_user())
        else:
            job = config.find_job(args.timer)
            text = systemd.timer_bundle(job, config, python, _unit_user())
            _warn_if_disabled(job, config)
    except systemd.UnitError as exc:
        raise UsageError(str(exc)) from exc
    _warn_if_not_startable(python, config.root)
    sys.stdout.write(text)
    return 0


def _unit_user() -> str | None:
    """The user running this command, for User=; None (root) leaves the choice to the reader."""
    if os.geteuid() == 0:
        return None
    import pwd

    try:
        return pwd.getpwuid(os.geteuid()).pw_name
    except KeyError:  # a uid with no passwd entry (some containers)
        return None


def _warn_if_disabled(job: JobSpec, config: ConfigSpec) -> None:
    if not job.enabled:
        print(
            f"warning: job {job.name!r} is disabled in {config.path}, but run-job runs it "
            "all the same.",
            file=sys.stderr,
        )


def _warn_if_not_startable(python: str, root: str) -> None:
    from batch_runner.export.probe import starts_in_bare_env

    problem = starts_in_bare_env(python, root)
    if problem:
        print(f"warning: {problem}", file=sys.stderr)
