"""``scheduler``, ``next``, ``status``: the long-running side and what it is doing."""

from __future__ import annotations

import argparse
import time

from batch_runner.cli import app, render
from batch_runner.errors import UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("scheduler", help="run jobs on their schedules until SIGTERM")
    p.set_defaults(handler=cmd_scheduler)
    common(p)
    p = sub.add_parser("next", help="the next occurrences across all enabled jobs")
    p.add_argument("--count", type=int, default=10, metavar="N")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_next)
    common(p)
    p = sub.add_parser("status", help="what runs now, what waits, whether a scheduler is alive")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)
    common(p)


def cmd_scheduler(args: argparse.Namespace) -> int:
    from batch_runner.scheduling.daemon import Scheduler

    return Scheduler(app.config_path_of(args), app.root_of(args)).run()


def cmd_next(args: argparse.Namespace) -> int:
    """The next occurrences; a startup job's run has no time (it is at the scheduler's next
    start) and a job its failures disabled has none: the text names both, ``--json`` (ISO
    times only) leaves them out."""
    from batch_runner.scheduling.nextruns import COUNT_LIMIT, next_runs
    from batch_runner.timefmt import iso

    if args.count < 1 or args.count > COUNT_LIMIT:
        raise UsageError(f"--count must be between 1 and {COUNT_LIMIT}, not {args.count}")
    ctx = app.context(args)
    live = _scheduler_live(ctx)
    upcoming, at_start, disabled = next_runs(
        ctx.config, _job_states(ctx), time.time(), args.count, live=live
    )
    if args.json:
        render.print_json([{"name": name, "time": iso(t)} for t, name in upcoming])
        return 0
    render.print_table(
        ["time", "job"], [[iso(t)[:19].replace("T", " "), name] for t, name in upcoming]
    )
    if at_start:
        print("at scheduler start: " + ", ".join(render.shown(n) for n in at_start))
    if disabled:
        from batch_runner.runs.disabling import failures_in_words

        named = (f"{render.shown(d['name'])} ({failures_in_words(d)})" for d in disabled)
        print("not scheduled, disabled by failures: " + ", ".join(named))
    return 0


def _scheduler_live(ctx: Any) -> bool:
    """Whether a scheduler keeps the plan: this host's, or in a cluster any host's (the plan
    is the cluster's)."""
    if ctx.clustered:
        from batch_runner.runs.overview import cluster_of

        processes = cluster_of(ctx)["processes"]
        return any(p["role"] == "scheduler" and not p["stale"] for p in processes)
    return scheduler_pid(ctx) is not None


def _job_states(ctx: Any) -> dict[str, dict[str, Any]]:
    """The store's job states; none where nothing was ever stored (not created for this)."""
    if ctx.clustered:
        states: dict[str, dict[str, Any]] = ctx.store.job_states()
        return states  # the cluster's, on the command's one connection
    from batch_runner.state.store import open_existing_store

    store = open_existing_store(ctx.layout)
    if store is None:
        return {}
    try:
        return store.job_states()
    finally:
        store.close()


def scheduler_pid(ctx: Any) -> int | None:
    from batch_runner.state.locks import holder_pid

    return holder_pid(ctx.layout.scheduler_lock)


def cmd_status(args: argparse.Namespace) -> int:
    from batch_runner.runs.overview import status_of

    ctx = app.context(args)
    status, stopping = status_of(ctx)
    pid = status["scheduler"]["pid"]
    running, pending = status["running"], status["pending"]
    lanes, disabled = status.get("lanes"), status.get("disabled_jobs")
    if args.json:
        render.print_json(status)
        return 0
    print(
        f"scheduler: {_scheduler_state(pid, stopping)}"
        + ("; the queue is PAUSED" if status["paused"] else "")
    )
    cluster = status.get("cluster")
    if cluster is not None:
        for line in cluster_lines(cluster):
            print(line)
    # Names, ids and messages come from the database, a message from the job itself: shown,
    # an escape sequence in one acts on nothing and a line break forges no line.
    shown = render.shown
    for run in running:
        progress = _progress_text(run)
        where = "" if lanes is None else f" in lane {shown(run.get('lane', 'default'))}"
        if cluster is not None:
            where += f" on {shown(str(run.get('host')))}"
        print(
            f"running: {shown(run['job_name'])} (run {shown(run['run_id'])}, since "
            f"{shown((run['start_time'] or '')[11:19])}){where}{progress}"
        )
    if not running:
        print("running: nothing")
    print(_waiting_line(pending))
    for name, lane in (lanes or {}).items():
        print(_lane_line(name, lane))
    if disabled:
        print(_disabled_line(disabled))
    return 0


def cluster_lines(cluster: dict[str, Any]) -> list[str]:
    """``cluster: this host is h1``, then one line per scheduler or worker of the cluster:
    ``worker h2 pid 123: alive (seen 1 s ago)``, or STALE with how to forget it."""
    shown = render.shown
    lines = [f"cluster: this host is {shown(cluster['host'])}"]
    for process in cluster["processes"]:
        seen = f"seen {process['last_seen_seconds']:.0f} s ago"
        state = (
            f"STALE ({seen}; `batch_runner cluster prune` forgets it)"
            if process["stale"]
            else f"alive ({seen})"
        )
        lines.append(
            f"{shown(str(process['role']))} {shown(str(process['host']))} "
            f"pid {process['pid']}: {state}"
        )
    if not cluster["processes"]:
        lines.append("no scheduler or worker of the cluster has been seen")
    return lines


def _disabled_line(disabled: list[dict[str, Any]]) -> str:
    """``disabled by failures: NAME (5 failures), ...; `batch_runner enable NAME` ...``"""
    from batch_runner.runs.disabling import failures_in_words

    named = ", ".join(f"{render.shown(d['name'])} ({failures_in_words(d)})" for d in disabled)
    return f"disabled by failures: {named}; `batch_runner enable NAME` schedules one again"


def _waiting_line(pending: list[dict[str, Any]]) -> str:
    """``waiting: 3 (1 reserved): job (id, reserved), job (id), ...``, the first ten named."""
    shown = render.shown
    reserved = sum(r["status"] == "reserved" for r in pending)
    line = f"waiting: {len(pending)}" + (f" ({reserved} reserved)" if reserved else "")
    if not pending:
        return line
    return f"{line}: " + ", ".join(
        f"{shown(r['job_name'])} ({shown(r['run_id'])}"
        + (", reserved)" if r["status"] == "reserved" else ")")
        for r in pending[:10]
    )


def _lane_line(name: str, lane: dict[str, Any]) -> str:
    shown = render.shown
    ids = ", ".join(shown(run_id) for run_id in lane["running"]) or "nothing"
    extra = "" if lane["configured"] else " (not configured: its runs drain one at a time)"
    return (
        f"lane {shown(name)}: {len(lane['running'])} of {lane['width']} running ({ids}), "
        f"{lane['pending']} waiting{extra}"
    )


def _progress_text(run: dict[str, Any]) -> str:
    parts = []
    if run.get("progress_percent") is not None:
        parts.append(f"{run['progress_percent']:g}%")
    if run.get("progress_message"):
        parts.append(render.shown(run["progress_message"]))
    return f" — {' '.join(parts)}" if parts else ""


def _scheduler_state(pid: int | None, stopping: bool) -> str:
    if pid is None:
        return "not running"
    if stopping:
        return f"stopping, pid {pid} (it lets the running attempt finish, then exits)"
    return f"alive, pid {pid}"
