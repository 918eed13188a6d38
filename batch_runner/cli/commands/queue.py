"""``queue add|list|show|remove|run|worker|pause|resume|clean``: the ad-hoc queue (SPEC 10)."""

from __future__ import annotations

import argparse
import shlex
import sys
import time

from batch_runner.cli import app, render
from batch_runner.cli.commands import queue_http
from batch_runner.errors import ConfigError, UsageError
from batch_runner.state.store import WAITING_STATUSES  # loaded by every command's context

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Sequence
    from typing import Any


def register(sub: Any, common: Any, argv: Sequence[str] = ()) -> None:
    """``queue`` and its subcommands: only the one ``argv`` names, or all of them for help."""
    queue = sub.add_parser("queue", help="the ad-hoc queue: add, list, show, remove, run, ...")
    qsub = queue.add_subparsers(
        dest="queue_command", metavar="QUEUE_COMMAND", required=True, parser_class=type(queue)
    )
    after = list(argv[argv.index("queue") + 1 :]) if "queue" in argv else []
    named = next((word for word in after if not word.startswith("-")), None)
    if {"-h", "--help"} & set(after[: after.index(named)] if named in after else after):
        named = None  # `queue --help add` lists every subcommand
    for name, build in _SUBCOMMANDS.items():
        if named not in _SUBCOMMANDS or name == named:
            build(qsub, common)


def _add(qsub: Any, common: Any) -> None:
    p = qsub.add_parser("add", help="queue a command (durable once this returns); prints its id")
    p.add_argument("--priority", type=int, default=0, help="higher starts first (default 0)")
    when = p.add_mutually_exclusive_group()
    when.add_argument("--delay", metavar="S", help="start no earlier than S from now (30, 15m)")
    when.add_argument("--at", metavar="TIME", help="start no earlier than TIME (HH:MM or ISO)")
    p.add_argument("--timeout", type=float, metavar="S", help="seconds before it is killed")
    p.add_argument("--max-attempts", type=int, default=1, metavar="N")
    p.add_argument("--label", help="a name for the run (default: adhoc)")
    p.add_argument("--lane", default="default", help="the lane it runs in (default: default)")
    queue_http.add_arguments(p)
    p.add_argument("argv", nargs=argparse.REMAINDER, metavar="-- CMD [ARG...]")
    p.set_defaults(handler=cmd_add)
    common(p)


def _list(qsub: Any, common: Any) -> None:
    p = qsub.add_parser("list", help="running, reserved and pending runs (--all: finished too)")
    p.add_argument("--all", action="store_true", help="finished runs too, the latest first")
    p.add_argument(
        "--limit",
        type=int,
        default=100,
        metavar="N",
        help="with --all, at most N finished runs (default 100)",
    )
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_list)
    common(p)


def _show(qsub: Any, common: Any) -> None:
    p = qsub.add_parser("show", help="every field of one run")
    _offers_run_ids(p.add_argument("run_id", metavar="ID"))
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_show)
    common(p)


def _worker(qsub: Any, common: Any) -> None:
    p = _simple(qsub, common, "worker", "run queued runs until the queue is empty", cmd_worker)
    p.add_argument("--forever", action="store_true", help="keep waiting for new runs")


def _clean(qsub: Any, common: Any) -> None:
    p = _simple(qsub, common, "clean", "delete finished runs older than N days", cmd_clean)
    p.add_argument("--keep-days", type=int, default=7, metavar="N")


def _offers_run_ids(action: Any) -> None:
    from batch_runner.cli import completion  # not on `queue add`'s path

    completion.offers(action, completion.run_ids)


def _simple(
    qsub: Any, common: Any, name: str, helptext: str, handler: Any, *, with_id: bool = False
) -> argparse.ArgumentParser:
    p: argparse.ArgumentParser = qsub.add_parser(name, help=helptext)
    if with_id:
        _offers_run_ids(p.add_argument("run_id", metavar="ID"))
    p.set_defaults(handler=handler)
    common(p)
    return p


def cmd_add(args: argparse.Namespace) -> int:
    from batch_runner.runs import queue, request

    ctx = app.context(args, durable=True)
    argv = _command_of(args.argv)
    # The checks and the spec are the service's too (``runs.request``): one set of rules.
    spec, options = request.new_run(
        ctx.config.settings,
        command=argv,
        http=_http_of(args, argv),
        timeout=args.timeout,
        priority=args.priority,
        delay=args.delay,
        at=args.at,
        max_attempts=args.max_attempts,
        label=args.label,
        lane=args.lane,
    )
    print(queue.add(ctx, spec, **options))
    return 0


def _http_of(args: argparse.Namespace, argv: list[str]) -> dict[str, Any] | None:
    if not args.http:
        if not argv:
            raise UsageError("give the command to queue after --, e.g. queue add -- ./backup.sh")
        return None
    if argv:
        raise UsageError("give either --http or a command after --, not both")
    return queue_http.request_of(args)


def _command_of(words: list[str]) -> list[str]:
    """The command after ``--`` (SPEC 10); words before it belong to no option."""
    if words[:1] == ["--"]:
        words = words[1:]
    elif words:
        # Without the rule, `--at 2030-01-01 10:00 -- x` would queue "10:00 -- x", and
        # `git diff -- file` could not be told from a misplaced option value.
        stray = " ".join(words[: words.index("--")] if "--" in words else words)
        raise UsageError(
            f"{stray!r} belongs to no option; put the command after -- "
            "(queue add [OPTIONS] -- CMD [ARG...]) and quote a value that has "
            "spaces (--at '2030-01-01 10:00')"
        )
    if words and not words[0].strip():
        raise UsageError("the command after -- is empty")
    return words


def cmd_list(args: argparse.Namespace) -> int:
    from batch_runner.runs.view import run_view

    ctx = app.context(args)
    # Running first, then reserved (each slot's next run), then pending: the store's order.
    runs = ctx.store.runs_with_status("running", *WAITING_STATUSES)
    limit = min(max(args.limit, 0), 2**62)  # beyond any count; SQLite takes 64 bits
    if args.all:
        finished = ctx.store.recent_finished(limit + 1)  # one more tells whether some are left
        runs += finished[:limit]
        if len(finished) > limit > 0:
            print(
                f"(the latest {limit} finished runs are listed; --limit N for more)",
                file=sys.stderr,
            )
    views = [run_view(r, ctx.config.settings) for r in runs]
    if args.json:
        render.print_json(views)
        return 0
    # A due column only when some run waits for its time (--delay, --at, a retry's backoff);
    # a reserved run was due when it was taken.
    now = time.time()
    delayed = any(r["status"] == "pending" and (r.get("due_at") or 0) > now for r in runs)
    # A lane column only where lanes are configured (or a run is in a lane no longer so).
    lanes = any("lane" in v for v in views)
    headers = ["id", "status", "priority", "created", *(["due"] if delayed else [])]
    render.print_table(
        [*headers, *(["lane"] if lanes else []), "job or label: command"],
        [
            [
                v["run_id"],
                v["status"],
                v["priority"],
                _minute(v["created_at"]),
                *([_due(v)] if delayed else []),
                *([v.get("lane", "default")] if lanes else []),
                _what(v),
            ]
            for v in views
        ],
        shrink=("job or label: command",),
        optional=("priority", "created", "lane"),
    )
    return 0


def _due(view: dict[str, Any]) -> str | None:
    return _minute(view["due_at"]) if view["status"] in WAITING_STATUSES else None


def _minute(iso_time: str | None) -> str:
    return (iso_time or "")[:19].replace("T", " ")


def _what(view: dict[str, Any]) -> str:
    command, request = view.get("command"), view.get("request")
    text = command if isinstance(command, str) else shlex.join(command or [])
    if request:
        text = f"{request.get('method', 'GET')} {request.get('url', '')}"
    # A job's run is named after its job; an ad-hoc one after its label, if it has one.
    name = view.get("label") or (view["job_name"] if view["job_name"] != "adhoc" else None)
    if name:
        text = f"{name}: {text}" if text else name
    return text or view["job_name"]  # a terminal cuts it with an ellipsis; piped, it is whole


def cmd_show(args: argparse.Namespace) -> int:
    from batch_runner.runs import queue
    from batch_runner.runs.view import run_view

    ctx = app.context(args)
    view = run_view(queue.find(ctx, args.run_id), ctx.config.settings)
    if args.json:
        render.print_json(view)
        return 0
    width = max(len(key) for key in view)
    for key, value in view.items():
        if key == "command" and isinstance(value, list):
            value = shlex.join(value)  # which quotes spaces, not control characters
        if key != "output":
            # One field per line: a line break (an error's stderr tail, a command's argument)
            # is written "\n", so no value can pass for a field, nor act on the terminal.
            print(f"{key.ljust(width)}  {'-' if value is None else render.shown(str(value))}")
    if view.get("output"):
        output = render.shown_lines(view["output"])
        print(f"\noutput (last {len(view['output'])} characters):\n{output}", end="")
    return 0


def cmd_remove(args: argparse.Namespace) -> int:
    from batch_runner.runs import queue

    run = queue.remove(app.context(args), args.run_id)
    print(f"canceled run {render.shown(run['run_id'])} ({render.shown(run['job_name'])})")
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    ctx = app.context(args)
    if ctx.clustered:
        raise ConfigError(
            f"{ctx.config.path} has a settings.backend (a cluster), whose runs go to its "
            "workers, not to `queue run`; run `batch_runner queue worker --forever` on the "
            "hosts instead"
        )
    from batch_runner.cli.commands.worker import run_next

    return run_next(ctx)


def cmd_worker(args: argparse.Namespace) -> int:
    ctx = app.context(args)
    if ctx.clustered:
        from batch_runner.cli.commands.clusterwork import work_in_cluster

        return work_in_cluster(ctx, forever=args.forever)
    from batch_runner.cli.commands.worker import work

    return work(ctx, forever=args.forever)


def cmd_pause(args: argparse.Namespace) -> int:
    from batch_runner.runs import queue

    paused = args.queue_command == "pause"
    queue.set_paused(app.context(args), paused)
    print(
        "the queue is paused: nothing new starts until `batch_runner queue resume`"
        if paused
        else "the queue is running again"
    )
    return 0


def cmd_clean(args: argparse.Namespace) -> int:
    if args.keep_days < 0 or args.keep_days > 100_000:
        raise UsageError(f"--keep-days must be between 0 and 100000, not {args.keep_days}")
    ctx = app.context(args)
    removed = ctx.store.delete_finished_before(time.time() - args.keep_days * 86400)
    print(f"removed {removed} finished runs older than {args.keep_days} days", file=sys.stdout)
    return 0


# In the order ``queue --help`` lists them.
_SUBCOMMANDS: dict[str, Callable[[Any, Any], object]] = {
    "add": _add,
    "list": _list,
    "show": _show,
    "remove": lambda qsub, common: _simple(
        qsub, common, "remove", "cancel a waiting run", cmd_remove, with_id=True
    ),
    "run": lambda qsub, common: _simple(
        qsub, common, "run", "run the next due run, if any, and exit", cmd_run
    ),
    "worker": _worker,
    "pause": lambda qsub, common: _simple(
        qsub, common, "pause", "start nothing new from the queue or the schedule", cmd_pause
    ),
    "resume": lambda qsub, common: _simple(qsub, common, "resume", "undo pause", cmd_pause),
    "clean": _clean,
}
