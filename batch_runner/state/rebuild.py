"""What the JSONL results say about the state, for ``doctor``: whether they read back whole,
and the state database rebuilt from them once a damaged one was moved aside.

The results hold every finished attempt, so they give back each finished run's row (as its last
attempt ended) and each job's last run, last status and consecutive failures. They never held
runs still waiting, the planned next runs or the queue's pause: those are not rebuilt.
"""

from __future__ import annotations

import json
import os

from batch_runner.files import READ_NO_FOLLOW
from batch_runner.state.layout import LogLayout
from batch_runner.state.results import iter_results_newest_first, result_files_newest_first
from batch_runner.state.store import FINISHED_STATUSES, Store
from batch_runner.timefmt import iso, parse_iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Collection, Iterable
    from typing import Any

_FAILED = ("error", "timeout")
_MAX_DAMAGED_LINES = 5  # named one by one; the rest are counted


class ResultsHealth:
    """``files`` and ``records`` read; ``damaged`` lines as (file, line number), counted in
    ``damaged_count``; ``unreadable`` files as sentences."""

    def __init__(self) -> None:
        self.files = 0
        self.records = 0
        self.damaged: list[tuple[str, int]] = []
        self.damaged_count = 0
        self.unreadable: list[str] = []


def check_results(layout: LogLayout) -> ResultsHealth:
    """Read every results file through, line by line."""
    health = ResultsHealth()
    for _, path in result_files_newest_first(layout):
        health.files += 1
        try:
            fd = os.open(path, READ_NO_FOLLOW)
            with os.fdopen(fd, "rb") as file:
                _check_lines(file, path, health)
        except OSError as exc:
            health.unreadable.append(f"cannot read {path}: {exc.strerror or exc}")
    return health


def _check_lines(file: Iterable[bytes], path: str, health: ResultsHealth) -> None:
    for number, line in enumerate(file, 1):
        if not line.strip():
            continue
        try:
            whole = isinstance(json.loads(line), dict)
        except ValueError:
            whole = False
        if whole:
            health.records += 1
            continue
        health.damaged_count += 1
        if len(health.damaged) < _MAX_DAMAGED_LINES:
            health.damaged.append((path, number))


def rebuild_from_results(
    store: Store,
    layout: LogLayout,
    job_names: Collection[str],
    notify_after: Callable[[str], int],
) -> tuple[int, int]:
    """Write each finished run's row and each job's state, as the results tell them, into
    ``store`` (a new, empty database); returns (runs, jobs) written."""
    runs: dict[str, dict[str, Any]] = {}
    for record in iter_results_newest_first(layout):
        try:
            _merge(runs, record, job_names)
        except (TypeError, ValueError, OverflowError):
            continue  # a record edited by hand beyond use: the others still count
    found = (_job_state(name, runs.values(), notify_after(name)) for name in job_names)
    states = [state for state in found if state is not None]
    with store.transaction():
        # In the order they were created, as the queue numbers its runs.
        for run in sorted(runs.values(), key=lambda run: run["created_at"]):
            store.insert_run(run)
        for state in states:
            store.save_job_state(state)
    return len(runs), len(states)


def _merge(runs: dict[str, dict[str, Any]], record: dict[str, Any], jobs: Collection[str]) -> None:
    """Fold one attempt's line into its run's row: the row is the run's last attempt, created
    at its first attempt's start, triggered as its first attempt was."""
    run_id, status = record.get("run_id"), record.get("status")
    if not isinstance(run_id, str) or status not in FINISHED_STATUSES:
        return  # skipped occurrences never had a row
    ended = parse_iso(str(record.get("end_time")))
    started = parse_iso(str(record["start_time"])) if record.get("start_time") else None
    run = runs.get(run_id)
    if run is None or int(record.get("attempt") or 0) > run["attempt"]:
        runs[run_id] = run = _row(record, status, started, ended, jobs, run)
    first = started if started is not None else ended
    if first < run["created_at"]:
        run["created_at"] = run["due_at"] = first
    if record.get("trigger") != "retry" and int(record.get("attempt") or 0) <= 1:
        run["trigger"] = record.get("trigger") or run["trigger"]


def _row(
    record: dict[str, Any],
    status: str,
    started: float | None,
    ended: float,
    jobs: Collection[str],
    earlier: dict[str, Any] | None,
) -> dict[str, Any]:
    name = str(record.get("job_name") or "adhoc")
    kind = "job" if name in jobs else "adhoc"
    created = earlier["created_at"] if earlier else (started if started is not None else ended)
    return {
        "run_id": record["run_id"],
        "job_name": name,
        "kind": kind,
        "spec": {},  # the command is not in the results
        "trigger": earlier["trigger"] if earlier else str(record.get("trigger") or "manual"),
        "status": status,
        "attempt": int(record.get("attempt") or 0),
        "max_attempts": int(record.get("max_attempts") or 1),
        "due_at": created,
        "scheduled_for": record.get("scheduled_for"),
        "created_at": created,
        "started_at": started,
        "ended_at": ended,
        "exit_code": record.get("exit_code"),
        "error": record.get("error"),
        "output_tail": record.get("output"),
        "output_truncated": int(bool(record.get("output_truncated"))),
        "log_file": record.get("log_file"),
        "host": record.get("host"),
        "pgid": record.get("pid"),
        "label": name if kind == "adhoc" and name != "adhoc" else None,
        "attempt_status": status,
    }


def _job_state(
    name: str, runs: Iterable[dict[str, Any]], notify_after: int
) -> dict[str, Any] | None:
    """As ``runs.finish.update_job_state`` left it after the job's last finished run: failures
    count up, a success resets, a stopped or interrupted run changes neither."""
    mine = [
        run
        for run in runs
        if run["kind"] == "job" and run["job_name"] == name and run["status"] != "canceled"
    ]
    if not mine:
        return None  # never ran (or not within the results kept): seeded from the config
    mine.sort(key=lambda run: run["started_at"] or run["ended_at"], reverse=True)
    errors = 0
    for run in mine:
        if run["status"] == "success":
            break
        errors += run["status"] in _FAILED
    last = mine[0]
    return {
        "job_name": name,
        "last_run": iso(last["started_at"] or last["ended_at"]),
        "last_status": last["status"],
        "error_count": errors,
        # Its failure notice went out when the count reached the threshold.
        "notified": int(errors >= notify_after),
    }
