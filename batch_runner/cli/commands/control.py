"""``stop`` and ``progress``: talking to a running attempt."""

from __future__ import annotations

import argparse

from batch_runner.cli import app, completion

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("stop", help="ask a running attempt to stop (by run id or job name)")
    completion.offers(
        p.add_argument("target", metavar="RUN_ID_OR_JOB"), completion.jobs_and_run_ids
    )
    p.set_defaults(handler=cmd_stop)
    common(p)
    p = sub.add_parser("progress", help="report progress from inside a run")
    p.add_argument("--percent", type=float, metavar="N")
    p.add_argument("message", nargs="?", metavar="MESSAGE")
    p.set_defaults(handler=cmd_progress)
    common(p)


def cmd_stop(args: argparse.Namespace) -> int:
    from batch_runner.runs import queue

    ctx = app.context(args)
    run = queue.stop(ctx, args.target)
    from batch_runner.cli.render import shown

    # From the database: shown with any control character as its escape, as everywhere.
    what = shown(f"run {run['run_id']} of {run['job_name']}")
    if run["status"] == "canceled":
        print(f"canceled {what} before it started")
    elif run.get("orphaned"):
        print(
            f"{what} had lost its runner: its processes were killed and it is recorded "
            f"{run['status']}"
        )
    else:
        grace = ctx.config.settings.kill_grace
        print(f"stopping {what} (within 2 s, then up to {grace:g} s for it to exit)")
    return 0


def cmd_progress(args: argparse.Namespace) -> int:
    from batch_runner.runs.progress import record_progress

    record_progress(percent=args.percent, message=args.message)
    return 0
