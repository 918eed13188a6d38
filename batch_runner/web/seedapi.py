"""Seed 001's API, unchanged: ``POST /jobs`` queues an HTTP call, ``GET /jobs/{job_id}`` and
``/result`` show it, ``POST /jobs/{job_id}/cancel`` cancels it, ``GET /jobs`` lists them.

A seed job is an HTTP run of the queue, its ``job_id`` the run id; any other run is 404 here.
Statuses and shapes: ``web.seedviews``.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from fastapi import APIRouter, Depends, Query, Request

from batch_runner.errors import NotFound, UsageError
from batch_runner.runs.context import RunnerContext
from batch_runner.web import actions
from batch_runner.web.auth import Principal, require, service_of
from batch_runner.web.models import Problem, responses
from batch_runner.web.seedmodels import (
    SeedJob,
    SeedJobList,
    SeedJobRequest,
    SeedQueued,
    SeedResult,
    SeedStatus,
)
from batch_runner.web.seedviews import (
    DEFAULT_TIMEOUT_SEC,
    OUR_STATUSES,
    seed_job,
    seed_result,
    zulu,
)

router = APIRouter(tags=["seed 001 jobs"])

# The fields whose text is stored, shown or sent.
_TEXT_FIELDS = {"method", "url", "headers", "params", "body", "tags"}
# Where the seed's times (``...Z``) end.
_YEAR_10000 = 253402300800.0

# What the shared checks call each value, in the seed's words.
NAMES = {
    "priority": "priority",
    "max_attempts": "max_attempts",
    "label": "label",
    "timeout": "timeout_sec",
    "delay": "scheduled_at",
    "at": "scheduled_at",
    "http": "url",
    "header": "headers",
    "param": "params",
    "tags": "tags",
    "backoff": "backoff_strategy",
    "backoff_seconds": "backoff_seconds",
}

# 422 (a body of the wrong shape) is FastAPI's own, as the seed's clients know it.
_ERRORS = responses(401, 403, 503)
_ONE = {**_ERRORS, 404: {"model": Problem, "description": "no HTTP job with this id"}}


@router.post(
    "/jobs",
    response_model=SeedQueued,
    responses={**_ERRORS, 400: {"model": Problem, "description": "a value is refused"}},
)
def create_job(
    request: Request, job: SeedJobRequest, principal: Principal = Depends(require("operate"))
) -> dict[str, Any]:
    """Queue an HTTP call (200, as the seed answers: its body ``{"job_id", "status"}``)."""
    from batch_runner.runs.request import new_run

    _refuse_surrogates(job.model_dump(include=_TEXT_FIELDS))
    settings = service_of(request).config.settings
    spec, options = new_run(
        settings,
        http=_http_of(job),
        timeout=job.timeout_sec or DEFAULT_TIMEOUT_SEC,
        priority=job.priority,
        at=_at(job.scheduled_at),
        max_attempts=job.max_attempts,
        tags=job.tags,
        backoff="fixed" if job.backoff_strategy == "constant" else job.backoff_strategy,
        backoff_seconds=job.backoff_seconds,
        names=NAMES,
    )
    due = options["due_at"]
    if due is not None and not 0 <= due < _YEAR_10000:
        raise UsageError(f"scheduled_at {job.scheduled_at} is not between 1970 and 9999")
    spec["seed"] = {"scheduled_at": zulu(due), "ttl_seconds": job.ttl_seconds}
    run = actions.queue_run(request, principal, spec, **options)
    return {"job_id": run["run_id"], "status": "queued"}


@router.get(
    "/jobs",
    response_model=SeedJobList,
    responses={**_ERRORS, 400: {"model": Problem, "description": "a bad cursor"}},
)
def list_jobs(
    request: Request,
    status: SeedStatus | None = None,
    tag: str | None = None,
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=100_000),
    cursor: str | None = Query(None, description="next_cursor of the previous page"),
    _: Principal = Depends(require("read")),
) -> dict[str, Any]:
    """HTTP jobs, the latest queued first; filtered by seed status and tag; paged by
    ``limit`` and ``offset`` or by ``cursor``."""
    before = _cursor(cursor)
    ctx = service_of(request).reader()
    statuses = OUR_STATUSES[status] if status else None
    found, before = _scan(ctx, statuses, tag, before, skip=offset, want=limit + 1)
    page = found[:limit]
    more = len(found) > limit
    return {
        "jobs": [seed_job(run) for run in page],
        "limit": limit,
        "offset": offset,
        "next_offset": offset + limit if more else None,
        "next_cursor": str(page[-1]["seq"]) if more else None,
    }


@router.get("/jobs/{job_id}", response_model=SeedJob, responses=_ONE)
def get_job(
    request: Request, job_id: str, _: Principal = Depends(require("read"))
) -> dict[str, Any]:
    return seed_job(_http_run(service_of(request).reader(), job_id))


@router.get("/jobs/{job_id}/result", response_model=SeedResult, responses=_ONE)
def get_result(
    request: Request, job_id: str, _: Principal = Depends(require("read"))
) -> dict[str, Any]:
    """The last attempt's response once the job has finished; nulls before."""
    ctx = service_of(request).reader()
    run = _http_run(ctx, job_id)
    return seed_result(ctx, run)


@router.post(
    "/jobs/{job_id}/cancel",
    response_model=SeedJob,
    responses={**_ONE, 409: {"model": Problem, "description": "it has already finished"}},
)
def cancel_job(
    request: Request, job_id: str, principal: Principal = Depends(require("operate"))
) -> dict[str, Any]:
    """A waiting job is ``canceled`` at once; a running one is asked to stop (``running``
    until it has, then ``canceled``); a finished one is refused (409)."""
    _http_run(service_of(request).reader(), job_id)
    run = actions.stop_run(request, principal, job_id)
    return seed_job(run)


def _http_run(ctx: RunnerContext, job_id: str) -> dict[str, Any]:
    run = ctx.store.get_run(job_id)
    if run is None or (run.get("spec") or {}).get("type") != "http":
        raise NotFound(f"no job with id {job_id!r}")
    return run


def _scan(
    ctx: RunnerContext,
    statuses: tuple[str, ...] | None,
    tag: str | None,
    before: int | None,
    *,
    skip: int,
    want: int,
) -> tuple[list[dict[str, Any]], int | None]:
    """Up to ``want`` HTTP runs (after skipping ``skip`` of them) below ``before``, newest
    first; the store's pages are read until they are found or the runs end."""
    found: list[dict[str, Any]] = []
    while len(found) < want:
        rows = ctx.store.list_runs(statuses=statuses, tag=tag, before_seq=before, limit=500)
        for row in rows:
            before = row["seq"]
            if (row.get("spec") or {}).get("type") != "http":
                continue
            if skip:
                skip -= 1
                continue
            found.append(row)
            if len(found) == want:
                break
        if len(rows) < 500:
            break
    return found, before


def _http_of(job: SeedJobRequest) -> dict[str, Any]:
    from batch_runner.net.urls import HTTP_METHODS

    if job.method.upper() not in HTTP_METHODS:
        raise UsageError(
            f"method {job.method!r} is not an HTTP method; use one of {', '.join(HTTP_METHODS)}"
        )
    return {
        "method": job.method,
        "url": job.url,
        "headers": {name: _text(value) for name, value in (job.headers or {}).items()},
        "params": {name: _text(value) for name, value in (job.params or {}).items()},
        "body": job.body,
    }


def _refuse_surrogates(value: Any, field: str = "") -> None:
    """A lone surrogate (``"\\ud800"`` is valid JSON) cannot be stored, shown or sent as
    UTF-8: refused now, in one sentence, rather than failing each time the job is read."""
    if isinstance(value, str):
        if any("\ud800" <= c <= "\udfff" for c in value):
            raise UsageError(f"{field} holds a lone surrogate (\\ud800-\\udfff), not text")
    elif isinstance(value, dict):
        for key, item in value.items():
            _refuse_surrogates(key, field or str(key))
            _refuse_surrogates(item, field or str(key))
    elif isinstance(value, list):
        for item in value:
            _refuse_surrogates(item, field)


def _text(value: str | int | float | bool) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def _at(moment: datetime | None) -> str | None:
    """The seed's ``scheduled_at`` as ``at``: a time without an offset is UTC, as the seed
    shows every time."""
    if moment is None:
        return None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).isoformat()


def _cursor(cursor: str | None) -> int | None:
    if cursor is None:
        return None
    if not cursor.isdigit() or len(cursor) > 18:
        raise UsageError(f"cursor {cursor!r} is not one this API gave; use next_cursor")
    return int(cursor)
