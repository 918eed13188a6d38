"""A run as users and scripts see it: the JSONL field names of SPEC 7 plus queue fields."""

from __future__ import annotations

from batch_runner.state.store import WAITING_STATUSES
from batch_runner.timefmt import iso

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run_view(run: dict[str, Any], settings: Any = None) -> dict[str, Any]:
    """One run row as the JSON object every ``--json`` output uses (null when not known yet)."""
    started, ended = run.get("started_at"), run.get("ended_at")
    finished = run["status"] not in WAITING_STATUSES and run["status"] != "running"
    spec = run.get("spec") or {}
    if spec.get("type") == "http":
        from batch_runner.httpjob.masking import masked_spec

        spec = masked_spec(spec, settings)
    return {
        "job_name": run["job_name"],
        "start_time": iso(started),
        "end_time": iso(ended) if finished else None,
        "status": run["status"],
        "output": run.get("output_tail"),
        "error": run.get("error"),
        "run_id": run["run_id"],
        "attempt": run.get("attempt"),
        "max_attempts": run.get("max_attempts"),
        "exit_code": run.get("exit_code"),
        "duration_seconds": round(ended - started, 3) if finished and started and ended else None,
        "trigger": run.get("trigger"),
        "scheduled_for": run.get("scheduled_for"),
        "output_truncated": bool(run.get("output_truncated")),
        "log_file": run.get("log_file"),
        "host": run.get("host"),
        "pid": run.get("pgid"),
        "priority": run.get("priority", 0),
        "progress_percent": run.get("progress_percent"),
        "progress_message": run.get("progress_message"),
        "created_at": iso(run.get("created_at")),
        "due_at": iso(run.get("due_at")),
        "label": run.get("label"),
        **_lane(run, settings),
        # Only on a reserved run: every other run's object keeps the shape it always had.
        **({"reserved_at": iso(run.get("reserved_at"))} if run["status"] == "reserved" else {}),
        "command": spec.get("command"),
        "request": spec.get("http"),
    }


def _lane(run: dict[str, Any], settings: Any) -> dict[str, str]:
    """The run's lane, where lanes are configured or the run is in one no longer so; nothing
    otherwise, so that a log dir without lanes shows its runs as it always did."""
    lane = run.get("lane") or "default"
    if lane == "default" and not (settings is not None and settings.has_lanes):
        return {}
    return {"lane": lane}
