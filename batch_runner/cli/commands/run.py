"""``run-job NAME [--queue] [--no-wait]``: one run of a job, now, through the one executor."""

from __future__ import annotations

import sys

from batch_runner.cli import app
from batch_runner.errors import EXIT_BUSY, EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, Busy

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import argparse
    from typing import Any

EXIT_BY_STATUS = {"success": EXIT_OK, "timeout": EXIT_TIMEOUT}


def register(sub: Any, common: Any) -> None:
    from batch_runner.cli import completion  # not on the cron line's path, which skips argparse

    p = sub.add_parser("run-job", help="run a job now, in the foreground")
    completion.offers(p.add_argument("name"), completion.job_names)
    p.add_argument("--queue", action="store_true", help="enqueue the run instead and print its id")
    p.add_argument("--no-wait", action="store_true", help="exit 75 at once if the executor is busy")
    p.set_defaults(handler=cmd_run_job)
    common(p)


def cmd_run_job(args: argparse.Namespace) -> int:
    from batch_runner.runs.drain import run_to_completion
    from batch_runner.runs.enqueue import enqueue_job
    from batch_runner.runs.interrupt import Interrupter, WaitInterrupted
    from batch_runner.state.slots import try_any

    ctx = app.context(args, durable=args.queue)
    job = ctx.config.find_job(args.name)
    if args.queue:
        run_id = enqueue_job(ctx, job, "queue")
        if run_id is None:
            _say_skipped(job.name)
            return EXIT_BUSY
        if not ctx.clustered:  # a cluster's workers learn of it from the database
            from batch_runner.state.wakeup import poke

            poke(ctx.layout.log_dir)
        print(run_id)
        return EXIT_OK
    if ctx.clustered:
        from batch_runner.cli.commands.clusterrun import run_in_cluster

        ended = run_in_cluster(ctx, job, no_wait=args.no_wait)
        if ended is None:
            _say_skipped(job.name)
            return EXIT_BUSY
        return _report(ctx, ended)
    interrupter = Interrupter(ctx)
    interrupter.install()
    lane, width = job.lane, ctx.config.settings.width(job.lane)
    held = None
    if args.no_wait:
        held = try_any(ctx.layout, lane, width)
        if held is None:
            from batch_runner.config.lanes import lane_full  # only to say why

            raise Busy(f"{lane_full(ctx.config.settings, lane)}; {job.name} was not started")
    try:
        run_id = enqueue_job(ctx, job, "manual")
        if run_id is None:
            _say_skipped(job.name)
            return EXIT_BUSY
        try:
            run = run_to_completion(
                ctx, run_id, lane=lane, width=width, held=held, interrupter=interrupter
            )
        except WaitInterrupted:
            run = ctx.store.get_run(run_id) or {}
    finally:
        if held is not None:
            held.release()
    return _report(ctx, run)


def _say_skipped(name: str) -> None:
    print(
        f"{name}: skipped, it is already waiting or running (recorded as skipped)", file=sys.stderr
    )


def _report(ctx: Any, run: dict[str, Any]) -> int:
    # Here, not at the top: a run-job that never reports (--queue) need not load it.
    from batch_runner.cli.render import shown
    from batch_runner.state.store import WAITING_STATUSES

    # The error may be a server's words (an HTTP reason) or a job's stderr: shown, so an
    # escape sequence in it acts on nothing; the rest is the database's, shown as well.
    name, status = shown(str(run.get("job_name"))), run.get("status")
    if status in WAITING_STATUSES:
        from batch_runner.runs.endings import end_if_waiting

        ended, run = end_if_waiting(ctx, run, "canceled: run-job was interrupted")
        if ended is not None:
            print(f"{name}: interrupted while waiting; the run ended {ended}", file=sys.stderr)
            return EXIT_BY_STATUS.get(ended, EXIT_FAILED)
        status = run.get("status")  # another runner took it meanwhile, or it finished
    if status == "running":  # interrupted while another runner of its lane runs it
        print(
            f"{name}: interrupted while another runner (pid {run.get('owner_pid')}) runs it; "
            f"the run goes on (run {shown(str(run.get('run_id')))}: `batch_runner stop` ends it)",
            file=sys.stderr,
        )
        return EXIT_FAILED
    took = (run.get("ended_at") or 0) - (run.get("started_at") or 0)
    line = f"{name}: {status} in {took:.2f} s (run {shown(str(run.get('run_id')))}"
    line += f", attempt {run['attempt']}/{run['max_attempts']})"
    print(line)
    if run.get("error"):
        print(f"  {shown(run['error'].splitlines()[0])}", file=sys.stderr)
    if run.get("log_file"):
        print(f"  output: {shown(run['log_file'])}")
    return EXIT_BY_STATUS.get(status or "", EXIT_FAILED)
