"""``history`` and ``logs``: reading back what ran."""

from __future__ import annotations

import argparse
import shutil
import sys
from itertools import islice

from batch_runner.cli import app, completion, render
from batch_runner.errors import NotFound, StorageError, UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Iterable
    from typing import Any

    from batch_runner.runs.context import RunnerContext

STATUSES = ("success", "error", "timeout", "stopped", "interrupted", "canceled", "skipped")


def register(sub: Any, common: Any) -> None:
    p = sub.add_parser("history", help="past attempts, newest first")
    completion.offers(p.add_argument("name", nargs="?", help="only this job"), completion.job_names)
    p.add_argument("--status", choices=STATUSES)
    p.add_argument("--since", metavar="DATE", help="e.g. 2026-11-01 or 2026-11-01T08:00")
    p.add_argument("--limit", type=int, default=20, metavar="N", help="at most N (default 20)")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_history)
    common(p)
    p = sub.add_parser("logs", help="the full output of a run")
    completion.offers(p.add_argument("run_id", metavar="RUN_ID"), completion.run_ids)
    p.set_defaults(handler=cmd_logs)
    common(p)


def cmd_history(args: argparse.Namespace) -> int:
    if args.limit < 0:
        raise UsageError(f"--limit must be 0 or more, not {args.limit}")
    since = _parse_since(args.since)
    ctx = app.context(args)
    limit = min(args.limit, sys.maxsize)  # a huge limit means all
    if ctx.clustered:
        from batch_runner.runs.overview import cluster_store

        # Every host's lines, from the one place they are all kept.
        rows = cluster_store(ctx).results(
            job=args.name, status=args.status, since=since, limit=limit
        )
    else:
        from batch_runner.state.results import iter_results_newest_first

        rows = list(islice(iter_results_newest_first(ctx.layout, since, _wanted(args)), limit))
    if not rows and args.name is not None:
        _require_known_name(ctx, args.name)
    if args.json:
        render.print_json(_with_run_keys(ctx, rows))
    else:
        _print_history_table(rows)
    return 0


def _wanted(args: argparse.Namespace) -> Callable[[dict[str, Any]], bool]:
    """The job and status asked for: the others are dropped as they are read, never held."""
    name, status = args.name, args.status
    return lambda r: (
        (name is None or r.get("job_name") == name)
        and (status is None or r.get("status") == status)
    )


def _require_known_name(ctx: RunnerContext, name: str) -> None:
    """Raise NotFound, with a "did you mean", for a name neither configured nor ever run.

    A job since removed from the config may well have history: only a name never seen
    anywhere is unknown.
    """
    if ctx.config.job(name) is not None:
        return
    if ctx.clustered:
        from batch_runner.runs.overview import cluster_store

        ran = bool(cluster_store(ctx).results(job=name, limit=1))
    else:
        from batch_runner.state.results import iter_results_newest_first

        found = iter_results_newest_first(ctx.layout, keep=lambda r: r.get("job_name") == name)
        ran = next(found, None) is not None
    if not ran:
        ctx.config.find_job(name)


def _print_history_table(rows: list[dict[str, Any]]) -> None:
    # A record is read as it is in its file, where a hand edit may have put any JSON value in
    # any field: what has not its usual type is shown as JSON, or as "-" where that means nothing.
    render.print_table(
        ["start", "job", "status", "attempt", "duration", "run id", "error"],
        [
            [
                _minute(r.get("start_time") or r.get("end_time")),
                r.get("job_name"),
                r.get("status"),
                f"{_count(r.get('attempt'))}/{_count(r.get('max_attempts'))}",
                _duration(r.get("duration_seconds")),
                r.get("run_id"),
                _first_line(r.get("error")),
            ]
            for r in rows
        ],
        shrink=("error",),
        optional=("attempt", "duration"),
    )


def _minute(time: Any) -> str | None:
    # To the minute, as `list` shows times; --json has them whole.
    return time[:16].replace("T", " ") if isinstance(time, str) and time else None


def _count(value: Any) -> str:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else "-"


def _first_line(error: Any) -> Any:
    if isinstance(error, str):
        return error.split("\n")[0] or None
    return error or None  # an object or a list: its JSON text


def _with_run_keys(ctx: RunnerContext, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every run object has priority and progress (SPEC 9); a results line does not carry
    them, the queue does while it holds the run (null once cleaned: not known)."""
    extras: dict[str, dict[str, Any]] = {}
    try:
        if rows:
            extras = _run_extras(ctx, [str(r.get("run_id")) for r in rows])
    except StorageError as exc:
        # The results are whole without the queue's extras: a damaged database must not
        # hide the history that `doctor --repair` rebuilds it from.
        print(f"warning: {exc}; priority and progress are left out", file=sys.stderr)
    shaped = []
    for row in rows:
        extra = extras.get(str(row.get("run_id"))) or {}
        # Progress belongs to the attempt the queue holds now, not to an earlier one.
        latest = extra.get("attempt") == row.get("attempt")
        shaped.append(
            {
                **row,
                "priority": extra.get("priority"),
                "progress_percent": extra.get("progress_percent") if latest else None,
                "progress_message": extra.get("progress_message") if latest else None,
            }
        )
    return shaped


def _run_extras(ctx: RunnerContext, run_ids: list[str]) -> dict[str, dict[str, Any]]:
    if ctx.clustered:
        return ctx.store.run_extras(run_ids)
    from batch_runner.state.store import open_existing_store

    # Not ctx.store: that would create a database where none was ever stored.
    store = open_existing_store(ctx.layout)
    if store is None:
        return {}
    try:
        return store.run_extras(run_ids)
    finally:
        store.close()


def _parse_since(value: str | None) -> float | None:
    if value is None:
        return None
    from batch_runner.timefmt import parse_iso

    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise UsageError(
            f"--since {value!r} is not a date; use YYYY-MM-DD or YYYY-MM-DDTHH:MM"
        ) from None


def _duration(seconds: Any) -> str | None:
    number = isinstance(seconds, int | float) and not isinstance(seconds, bool)
    # inf - inf and nan - nan are nan: a duration that is not a finite number is not shown.
    return f"{seconds:.2f} s" if number and seconds - seconds == 0 else None


def cmd_logs(args: argparse.Namespace) -> int:
    ctx = app.context(args)
    matches = _runs_of(ctx, args.run_id)
    if not matches:
        raise NotFound(f"no run with id {args.run_id!r}; `batch_runner history` lists run ids")
    if len(matches) > 1 and matches[0]["run_id"] != args.run_id:
        raise UsageError(f"run id {args.run_id!r} is ambiguous; give more of it")
    run = matches[0]
    outputs = _outputs_of(ctx, run)
    if not outputs:
        # From a result line: any JSON value, maybe with a line break.
        run_id, status = (render.shown(str(run.get(key))) for key in ("run_id", "status"))
        print(f"run {run_id} ({status}) has no output file", file=sys.stderr)
        return 0
    for number, path, output in outputs:
        if len(outputs) > 1:
            # The path holds the run id and the log folder, which a result line or the config
            # may give any character: shown, lest one act on the terminal or break the line.
            sys.stdout.write(f"=== attempt {number}: {render.shown(path)} ===\n")
        sys.stdout.flush()
        if isinstance(output, bytes):  # kept in the cluster's database by the host that ran it
            sys.stdout.buffer.write(output)
            continue
        with open(output, "rb") as source:
            shutil.copyfileobj(source, sys.stdout.buffer)
    sys.stdout.flush()
    return 0


def _runs_of(ctx: RunnerContext, prefix: str) -> list[dict[str, Any]]:
    if ctx.clustered:
        from batch_runner.cli.commands.clusterlogs import cluster_runs

        # The cluster's results are in its database too: one that does not answer is exit 75.
        return cluster_runs(ctx, prefix)
    try:
        matches = ctx.store.find_runs(prefix)
    except StorageError as exc:  # the run logs and results do not need the database
        print(f"warning: {exc}", file=sys.stderr)
        matches = []
    return matches or _recorded_runs(ctx.layout, prefix)


def _outputs_of(ctx: RunnerContext, run: dict[str, Any]) -> list[tuple[int, str, Any]]:
    """``(attempt, path, output)``: a Path to copy, or the bytes a cluster host kept."""
    if ctx.clustered:
        from batch_runner.cli.commands.clusterlogs import attempt_outputs

        return attempt_outputs(ctx, run)
    from batch_runner.runs.outputs import attempt_logs

    return [(number, str(path), path) for number, path in attempt_logs(run)]


def _recorded_runs(layout: Any, prefix: str) -> list[dict[str, Any]]:
    """Runs the database no longer holds (cleaned from the queue) or never held (skipped
    occurrences), from the results: the latest attempt of each run with that id prefix."""
    from batch_runner.state.results import iter_results_newest_first

    if not prefix.strip():
        return []
    matching = iter_results_newest_first(
        layout, keep=lambda r: str(r.get("run_id") or "").startswith(prefix)
    )
    return latest_of_each(matching, prefix)


def latest_of_each(records: Iterable[dict[str, Any]], prefix: str) -> list[dict[str, Any]]:
    """From result lines newest first (read no further than needed): the latest attempt of
    the first two runs met, or of the one whose id is ``prefix`` itself, that one first."""
    found: dict[str, dict[str, Any]] = {}
    for record in records:
        run_id = str(record.get("run_id") or "")
        if run_id not in found:
            found[run_id] = {**record, "attempt": record.get("attempt") or 0}
            if run_id == prefix or len(found) > 1:
                break
    return sorted(found.values(), key=lambda r: r["run_id"] != prefix)
