"""Seed 001's shapes of a run: its status and parameters (``GET /jobs/{job_id}``) and its
result (``GET /jobs/{job_id}/result``), in the seed's statuses and UTC times.

Our statuses map to the seed's: pending and reserved are ``queued``; ``running``; success is
``succeeded``; error, timeout and interrupted are ``failed``; canceled, skipped and stopped
(only ever a user's request: ``stop``, or a cancel here) are ``canceled``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from batch_runner.runs.context import RunnerContext
from batch_runner.state.store import WAITING_STATUSES
from batch_runner.web.seedmodels import SeedStatus

# The seed's JOBQUEUE_DEFAULT_TIMEOUT.
DEFAULT_TIMEOUT_SEC = 30.0

SEED_STATUS: dict[str, SeedStatus] = {
    "pending": "queued",
    "reserved": "queued",
    "running": "running",
    "success": "succeeded",
    "error": "failed",
    "timeout": "failed",
    "interrupted": "failed",
    "stopped": "canceled",
    "canceled": "canceled",
    "skipped": "canceled",
}
OUR_STATUSES: dict[str, tuple[str, ...]] = {
    seed: tuple(ours for ours, mapped in SEED_STATUS.items() if mapped == seed)
    for seed in ("queued", "running", "succeeded", "failed", "canceled")
}


def seed_job(run: dict[str, Any]) -> dict[str, Any]:
    """A run in the shape of the seed's ``GET /jobs/{job_id}``."""
    from batch_runner.net.secrets import safe_url

    spec = run["spec"]
    http, seed = spec.get("http") or {}, spec.get("seed") or {}
    finished = run["status"] not in WAITING_STATUSES and run["status"] != "running"
    timeout = float(spec.get("timeout") or DEFAULT_TIMEOUT_SEC)
    return {
        "job_id": run["run_id"],
        "status": SEED_STATUS.get(run["status"], "failed"),
        "attempt": run.get("attempt") or 0,
        "max_attempts": run.get("max_attempts") or 1,
        "priority": run.get("priority") or 0,
        "scheduled_at": seed.get("scheduled_at"),
        "created_at": zulu(run["created_at"]),
        "started_at": zulu(run.get("started_at")),
        "finished_at": zulu(run.get("ended_at")) if finished else None,
        "method": http.get("method") or "GET",
        "url": safe_url(str(http.get("url") or "")),
        "timeout_sec": int(timeout) if timeout.is_integer() else timeout,
        "tags": list(run.get("tags") or []),
    }


def seed_result(ctx: RunnerContext, run: dict[str, Any]) -> dict[str, Any]:
    """The seed's ``GET /jobs/{job_id}/result``: the response fields of the last attempt's
    result line (the run's row holds none of them)."""
    status = SEED_STATUS.get(run["status"], "failed")
    result: dict[str, Any] = {
        "job_id": run["run_id"],
        "status": status,
        "response_status": None,
        "response_headers": None,
        "response_body": None,
        "error": run.get("error"),
        "duration_ms": None,
    }
    if status in ("queued", "running"):
        return {**result, "error": None}
    started, ended = run.get("started_at"), run.get("ended_at")
    if started is not None and ended is not None:
        result["duration_ms"] = round((ended - started) * 1000)
    record = _last_record(ctx, run)
    if record is not None:
        result.update(
            {key: record.get(key) for key in ("response_status", "response_headers", "error")}
        )
        result["response_body"] = record.get("response_body")
        if isinstance(record.get("duration_seconds"), int | float):
            result["duration_ms"] = round(record["duration_seconds"] * 1000)
    return result


def _last_record(ctx: RunnerContext, run: dict[str, Any]) -> dict[str, Any] | None:
    from batch_runner.state.resultsearch import find_result

    if not run.get("attempt") or run.get("started_at") is None:
        return None  # canceled before it ever started: no line
    return find_result(
        ctx.layout, ctx.store, run["run_id"], run["attempt"], run["started_at"], run.get("ended_at")
    )


def zulu(ts: float | None) -> str | None:
    """``2025-09-22T14:00:00Z``: the seed's times, in UTC to the second."""
    if ts is None:
        return None
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
