"""The native API for runs, the queue and status (``/api/v1``): queue a command, a named
job's run or an HTTP call; list runs with filters and a cursor; one run and its output; stop;
cancel; pause and resume the queue; status; the next runs; the audit trail.

Through the CLI's own code: ``runs.request`` checks a new run as ``queue add`` does (the same
sentences), ``web.actions`` makes every change (audited), ``runs.overview`` and
``scheduling.nextruns`` answer as ``status --json`` and ``next --json``.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, HTTPException, Query, Request, Response

from batch_runner.errors import UsageError
from batch_runner.runs import queue
from batch_runner.runs.view import run_view
from batch_runner.state.store import FINISHED_STATUSES, WAITING_STATUSES
from batch_runner.web import actions
from batch_runner.web.auth import Principal, require, service_of
from batch_runner.web.models import (
    API_NAMES,
    AuditEntry,
    AuditPage,
    NewRun,
    NextRun,
    Paused,
    Run,
    RunPage,
    Status,
    responses,
)
from batch_runner.web.validation import SentenceRoute, refuse_surrogates

router = APIRouter(route_class=SentenceRoute)

RUN_STATUSES = (*WAITING_STATUSES, "running", *FINISHED_STATUSES)
_OPTIONS = (
    "priority", "delay", "at", "lane", "label", "tags", "max_attempts", "backoff",
    "backoff_seconds", "timeout",
)  # fmt: skip
Read = Annotated[Principal, Depends(require("read"))]
Operate = Annotated[Principal, Depends(require("operate"))]
Admin = Annotated[Principal, Depends(require("admin"))]


def run_out(run: dict[str, Any], settings: Any) -> dict[str, Any]:
    """A stored run as the API shows it: ``run_view`` (SPEC 9), its lane, its tags."""
    view = run_view(run, settings)
    return {**view, "lane": run.get("lane") or "default", "tags": run.get("tags")}


@router.post(
    "/runs",
    status_code=201,
    response_model=Run,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Queue a command (admin), a configured job's run, or an HTTP call",
)
async def queue_run(new: NewRun, request: Request, principal: Operate) -> dict[str, Any]:
    # On the event loop (the busiest route: no thread of the pool held while the writer
    # commits); the checks are pure, the change is awaited from the writer thread.
    refuse_surrogates(new.model_dump())
    given = [key for key in ("command", "job", "http") if getattr(new, key) is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of command, job or http")
    settings = service_of(request).config.settings
    if new.job is not None:
        given_too = [key for key in _OPTIONS if getattr(new, key) is not None]
        if given_too:
            raise UsageError(
                f"a job's run is queued as its config says: {', '.join(given_too)} cannot be "
                "given with job"
            )
        from starlette.concurrency import run_in_threadpool

        run = await run_in_threadpool(actions.run_job_now, request, principal, new.job)
        return run_out(run, settings)
    if new.command is not None and not principal.allows("admin"):
        raise HTTPException(
            403,
            f"the token {principal.name!r} has scope {principal.scope}; queueing a command "
            "needs admin (it runs anything)",
        )
    spec, options = _checked(new, settings)
    return run_out(await actions.queue_run_async(request, principal, spec, **options), settings)


def _checked(new: NewRun, settings: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """The run's spec and its options for ``queue.add``, checked as ``queue add`` checks."""
    from batch_runner.runs.request import new_run

    http = None
    if new.http is not None:
        http = new.http.model_dump(exclude={"timeout"})
    return new_run(
        settings,
        command=new.command,
        http=http,
        timeout=(new.http.timeout if new.http is not None else None) or new.timeout,
        priority=0 if new.priority is None else new.priority,
        delay=new.delay,
        at=new.at,
        max_attempts=1 if new.max_attempts is None else new.max_attempts,
        label=new.label,
        lane=new.lane or "default",
        tags=new.tags,
        backoff=new.backoff,
        backoff_seconds=new.backoff_seconds,
        names=API_NAMES,
    )


@router.get(
    "/runs",
    response_model=RunPage,
    responses=responses(400, 401, 403, 422, 503),
    summary="Runs, newest first, filtered, a page at a time",
)
def list_runs(
    request: Request,
    _: Read,
    status: Annotated[list[str] | None, Query(description="repeatable")] = None,
    job: str | None = None,
    tag: str | None = None,
    since: Annotated[str | None, Query(description="ISO 8601: created at or after")] = None,
    until: Annotated[str | None, Query(description="ISO 8601: created before")] = None,
    cursor: Annotated[str | None, Query(description="the last page's next_cursor")] = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> dict[str, Any]:
    for wanted in status or ():
        if wanted not in RUN_STATUSES:
            raise UsageError(f"status {wanted!r} is not one of {', '.join(RUN_STATUSES)}")
    ctx = service_of(request).reader()
    runs = ctx.store.list_runs(
        statuses=status or None,
        job=job,
        tag=tag,
        since=_time(since, "since"),
        until=_time(until, "until"),
        before_seq=_cursor(cursor),
        limit=limit + 1,  # one more tells whether a next page exists
    )
    more = len(runs) > limit
    runs = runs[:limit]
    return {
        "runs": [run_out(run, ctx.config.settings) for run in runs],
        "next_cursor": str(runs[-1]["seq"]) if more else None,
    }


@router.get(
    "/runs/{run_id}",
    response_model=Run,
    responses=responses(400, 401, 403, 404, 422, 503),
    summary="One run (by id, or a unique prefix of it)",
)
def get_run(run_id: str, request: Request, _: Read) -> dict[str, Any]:
    ctx = service_of(request).reader()
    return run_out(queue.find(ctx, run_id), ctx.config.settings)


_TEXT = {"text/plain": {"schema": {"type": "string"}}}
_SIZE = {"X-Output-Size": {"description": "the log file's size now", "schema": {"type": "integer"}}}


@router.get(
    "/runs/{run_id}/output",
    response_class=Response,
    responses={
        200: {"content": _TEXT, "headers": _SIZE, "description": "the output, or its part"},
        206: {"content": _TEXT, "headers": _SIZE, "description": "the bytes a Range asked"},
        416: {"content": _TEXT, "headers": _SIZE, "description": "a Range past the end"},
        **responses(400, 401, 403, 404, 422, 503),
    },
    summary="A run's output: one attempt's log (the last by default), whole or a byte range",
)
def get_output(
    run_id: str,
    request: Request,
    _: Read,
    attempt: Annotated[int | None, Query(ge=1, le=1000)] = None,
    offset: Annotated[int | None, Query(ge=0)] = None,
    length: Annotated[int | None, Query(ge=0)] = None,
    range_header: Annotated[str | None, Header(alias="Range")] = None,
) -> Response:
    from batch_runner.web.runoutput import output_response

    reader = service_of(request).reader()
    run = queue.find(reader, run_id)
    # A cluster's run may have run on another host: its output as that host kept it.
    kept = getattr(reader.store, "kept_output", None)
    return output_response(run, attempt, offset, length, range_header, kept)


@router.post(
    "/runs/{run_id}/stop",
    response_model=Run,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Ask the running attempt to stop (a waiting run is canceled)",
)
def stop_run(run_id: str, request: Request, principal: Operate) -> dict[str, Any]:
    target = queue.find(service_of(request).reader(), run_id)["run_id"]
    run = actions.stop_run(request, principal, target)
    return run_out(run, service_of(request).config.settings)


@router.post(
    "/runs/{run_id}/cancel",
    response_model=Run,
    responses=responses(400, 401, 403, 404, 409, 422, 503),
    summary="Cancel a waiting run (a running or finished one is refused)",
)
def cancel_run(run_id: str, request: Request, principal: Operate) -> dict[str, Any]:
    run = actions.cancel_run(request, principal, run_id)
    return run_out(run, service_of(request).config.settings)


@router.post(
    "/queue/pause",
    response_model=Paused,
    responses=responses(401, 403, 503),
    summary="Start nothing new from the queue or the schedule",
)
def pause(request: Request, principal: Operate) -> dict[str, bool]:
    return {"paused": actions.set_paused(request, principal, True)}


@router.post(
    "/queue/resume",
    response_model=Paused,
    responses=responses(401, 403, 503),
    summary="Undo pause",
)
def resume(request: Request, principal: Operate) -> dict[str, bool]:
    return {"paused": actions.set_paused(request, principal, False)}


@router.get(
    "/status",
    response_model=Status,
    response_model_exclude_unset=True,  # as status --json: no "lanes" key without lanes
    responses=responses(401, 403, 503),
    summary="What runs now, what waits, whether a scheduler is alive (`status --json`)",
)
def status(request: Request, _: Read) -> dict[str, Any]:
    from batch_runner.runs.overview import status_of

    ctx = service_of(request).reader()
    return status_of(ctx)[0]


@router.get(
    "/next",
    response_model=list[NextRun],
    responses=responses(401, 403, 422, 503),
    summary="The next occurrences across the enabled jobs (`next --json`)",
)
def next_runs(
    request: Request, _: Read, count: Annotated[int, Query(ge=1, le=100_000)] = 10
) -> list[dict[str, str]]:
    import time

    from batch_runner.scheduling.nextruns import next_runs as upcoming
    from batch_runner.state.locks import holder_pid
    from batch_runner.timefmt import iso

    ctx = service_of(request).reader()
    live = holder_pid(ctx.layout.scheduler_lock) is not None
    found, _at_start, _disabled = upcoming(
        ctx.config, ctx.store.job_states(), time.time(), count, live=live
    )
    return [{"name": name, "time": iso(at)} for at, name in found]


@router.get(
    "/audit",
    response_model=AuditPage,
    responses=responses(400, 401, 403, 422, 503),
    summary="The audit trail, newest first: who changed what, which run, from where, when",
)
def audit(
    request: Request,
    _: Admin,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    cursor: Annotated[str | None, Query(description="the last page's next_cursor")] = None,
    run_id: str | None = None,
) -> dict[str, Any]:
    from batch_runner.timefmt import iso

    store = service_of(request).reader().store
    entries = store.audit_entries(limit=limit + 1, before_seq=_cursor(cursor), run_id=run_id)
    more = len(entries) > limit
    entries = entries[:limit]
    return {
        "entries": [
            AuditEntry.model_validate({**entry, "at": iso(entry["at"])}) for entry in entries
        ],
        "next_cursor": str(entries[-1]["seq"]) if more else None,
    }


def _time(value: str | None, name: str) -> float | None:
    if value is None:
        return None
    from batch_runner.timefmt import parse_iso

    try:
        return parse_iso(value)
    except (ValueError, OverflowError):
        raise UsageError(
            f"{name} {value!r} is not an ISO 8601 time, e.g. 2030-01-31T08:00"
        ) from None


def _cursor(value: str | None) -> int | None:
    if not value:  # "?cursor=" as a client's template writes it for the first page
        return None
    if not value.isdigit() or len(value) > 18:
        raise UsageError(f"cursor {value!r} is not one this API gave; start again without it")
    return int(value)
