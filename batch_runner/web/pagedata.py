"""What each dashboard page shows, read from the store and the results files through the same
code as the CLI (``runs.overview``, ``runs.jobtable``, ``runs.view``); the templates only lay
it out."""

from __future__ import annotations

import itertools
import time
from typing import Any

from batch_runner.errors import NotFound
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.view import run_view
from batch_runner.state.store import WAITING_STATUSES

# Statuses a run ends with that are worth an operator's look.
FAILED_STATUSES = ("error", "timeout", "interrupted")
# The job page's history: this many attempts a page, and the durations chart of the newest.
HISTORY_PAGE = 50
# The jobs page's strip of marks: a job's last runs.
STRIP_RUNS = 20
# Lists of waiting runs stop here; the count says how many more there are.
WAITING_SHOWN = 200


def view(ctx: RunnerContext, run: dict[str, Any]) -> dict[str, Any]:
    """A run as the API shows it (SPEC 9's field names, ``tags``), for the templates."""
    return {**run_view(run, ctx.config.settings), "tags": run.get("tags")}


def overview(ctx: RunnerContext, now: float) -> dict[str, Any]:
    """The overview: scheduler, pause, lanes, running and waiting runs, the next runs, recent
    failures."""
    from batch_runner.runs.overview import status_of

    status, stopping = status_of(ctx)
    jobs = job_list(ctx, now)
    upcoming = sorted((j for j in jobs if j["next_run"]), key=lambda j: str(j["next_run"]))
    # From the store rather than the results files: indexed by status, so a page (and its
    # live refreshes) never reads days of JSONL to find five failures.
    failures = ctx.store.list_runs(statuses=FAILED_STATUSES, limit=8)
    return {
        "scheduler": status["scheduler"],
        "stopping": stopping,
        "paused": status["paused"],
        "lanes": status.get("lanes"),
        "running": status["running"],
        "waiting": status["pending"][:20],
        "waiting_count": ctx.store.count_pending(),
        "upcoming": upcoming[:8],
        "failures": [view(ctx, r) for r in failures],
        "disabled_jobs": status.get("disabled_jobs", []),
    }


def job_list(ctx: RunnerContext, now: float) -> list[dict[str, Any]]:
    """Every job as the jobs API lists it (schedule in words, zone, next, last, errors)."""
    from batch_runner.web.api_jobs import job_objects

    return job_objects(ctx, now)


def jobs(ctx: RunnerContext, now: float) -> list[dict[str, Any]]:
    """The jobs page: each job with its last runs, oldest first (a strip read left to right)."""
    rows = job_list(ctx, now)
    for row in rows:
        runs = ctx.store.list_runs(job=row["name"], limit=STRIP_RUNS)
        row["strip"] = [_mark(r) for r in reversed(runs) if r.get("kind", "job") == "job"]
    return rows


def _mark(run: dict[str, Any]) -> dict[str, Any]:
    from batch_runner.timefmt import iso

    at = run.get("started_at") or run.get("created_at")
    return {"run_id": run["run_id"], "status": run["status"], "at": iso(at)}


def job(ctx: RunnerContext, name: str, now: float, page: int) -> dict[str, Any]:
    """A job's page: its row, its waiting or running run, a page of its history from the
    results files (newest first) and the durations of that page's attempts."""
    found = ctx.config.find_job(name)
    from batch_runner.web.api_jobs import job_objects

    (row,) = job_objects(ctx, now, only=found)
    active = ctx.store.active_run_of_job(found.name)
    history = history_page(ctx, found.name, page)
    return {
        "job": row,
        "active": view(ctx, active) if active else None,
        "history": history,
        "page": page,
        "more": len(history) == HISTORY_PAGE,
        "chart": durations_chart(history),
    }


def history_page(ctx: RunnerContext, name: str, page: int) -> list[dict[str, Any]]:
    from batch_runner.state.results import iter_results_newest_first

    records = iter_results_newest_first(ctx.layout, keep=lambda r: r.get("job_name") == name)
    start = (page - 1) * HISTORY_PAGE
    return [_record(r) for r in itertools.islice(records, start, start + HISTORY_PAGE)]


def _record(record: dict[str, Any]) -> dict[str, Any]:
    """A result line with the fields the page shows, whatever a hand edit left there."""
    fields = ("run_id", "start_time", "end_time", "status", "attempt", "trigger", "error")
    shown = {key: record.get(key) for key in fields}
    duration = record.get("duration_seconds")
    good = isinstance(duration, int | float) and not isinstance(duration, bool) and duration >= 0
    shown["duration_seconds"] = float(duration) if good and duration is not None else None
    shown["status"] = str(shown["status"])
    return shown


# The chart's drawing box, in SVG user units: bars scale into it.
CHART_WIDTH, CHART_HEIGHT = 600, 120


def durations_chart(history: list[dict[str, Any]]) -> dict[str, Any] | None:
    """Bars of the attempts' durations, oldest left, as SVG rectangles (attributes only:
    the CSP allows no inline style)."""
    timed = [r for r in reversed(history) if r["duration_seconds"] is not None]
    if not timed:
        return None
    longest = max(r["duration_seconds"] for r in timed) or 1.0
    step = CHART_WIDTH / max(len(timed), 10)
    bars = []
    for i, record in enumerate(timed):
        height = max(1.0, CHART_HEIGHT * record["duration_seconds"] / longest)
        bars.append(
            {
                "x": round(i * step + step * 0.1, 2),
                "y": round(CHART_HEIGHT - height, 2),
                "width": round(step * 0.8, 2),
                "height": round(height, 2),
                "record": record,
            }
        )
    return {"bars": bars, "longest": longest, "width": CHART_WIDTH, "height": CHART_HEIGHT}


def run(ctx: RunnerContext, run_id: str) -> dict[str, Any]:
    """A run's page: every field, and where each attempt's output is."""
    from batch_runner.runs.outputs import attempt_logs

    found = ctx.store.get_run(run_id)
    if found is None:
        raise NotFound(f"no run {run_id}")
    shown = view(ctx, found)
    logs = attempt_logs(found)
    return {
        "run": shown,
        "running": found["status"] == "running",
        "waiting": found["status"] in WAITING_STATUSES,
        "attempts": [{"attempt": n, "path": str(p)} for n, p in logs],
    }


def queue(ctx: RunnerContext) -> dict[str, Any]:
    """The queue page: the running runs, the waiting ones in the order they would start."""
    running = ctx.store.runs_with_status("running")
    waiting = ctx.store.runs_with_status(*WAITING_STATUSES, limit=WAITING_SHOWN)
    return {
        "paused": ctx.store.is_paused(),
        "running": [view(ctx, r) for r in running],
        "waiting": [view(ctx, r) for r in waiting],
        "waiting_count": ctx.store.count_pending(),
    }


def now() -> float:
    return time.time()
