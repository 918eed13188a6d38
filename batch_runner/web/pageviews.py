"""The dashboard's pages: overview, jobs, a job, a run, the queue. Each also answers
``?part=live`` with only the part that live updates redraw, from the same template."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from batch_runner.errors import BatchRunnerError
from batch_runner.runs.context import RunnerContext
from batch_runner.web import pagedata
from batch_runner.web.auth import authenticate, service_of
from batch_runner.web.errors import RETRY_AFTER_SECONDS, status_of
from batch_runner.web.pages import render, to_signin

router = APIRouter(include_in_schema=False)


def page(
    request: Request, name: str, title: str, gather: Callable[[RunnerContext], dict[str, Any]]
) -> Response:
    """The page ``name`` (or its live part) for a signed-in caller; the sign-in form for
    anyone else; a refusal as a page with its status and sentence."""
    principal = authenticate(request)
    if principal is None:
        return to_signin(request)
    try:
        data = gather(service_of(request).reader())
    except BatchRunnerError as exc:
        status = status_of(exc)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return render(
            request, principal, "error.html", status=status, headers=headers, problem=str(exc)
        )
    live = request.query_params.get("part") == "live"
    template = f"_{name}_live.html" if live else f"{name}.html"
    return render(request, principal, template, title=title, nav=name, **data)


@router.get("/ui", name="ui_bare")
def bare(request: Request) -> Response:
    from fastapi.responses import RedirectResponse

    from batch_runner.web.pages import url

    return RedirectResponse(url(request, "ui_overview"), 303)


@router.get("/ui/", name="ui_overview")
def overview(request: Request) -> Response:
    return page(request, "overview", "Overview", lambda ctx: pagedata.overview(ctx, time.time()))


@router.get("/ui/jobs", name="ui_jobs")
def jobs(request: Request) -> Response:
    return page(request, "jobs", "Jobs", lambda ctx: {"jobs": pagedata.jobs(ctx, time.time())})


@router.get("/ui/jobs/{name}", name="ui_job")
def job(request: Request, name: str, page_number: int = Query(1, alias="page")) -> Response:
    number = max(1, min(page_number, 10_000))
    return page(request, "job", name, lambda ctx: pagedata.job(ctx, name, time.time(), number))


@router.get("/ui/runs/{run_id}", name="ui_run")
def run(request: Request, run_id: str) -> Response:
    return page(request, "run", f"Run {run_id}", lambda ctx: _run_page(ctx, run_id))


def _run_page(ctx: RunnerContext, run_id: str) -> dict[str, Any]:
    from batch_runner.web.tail import page_tail

    data = pagedata.run(ctx, run_id)
    outputs = []
    for attempt in data["attempts"]:
        text, end, cut = page_tail(attempt["path"])
        outputs.append({**attempt, "text": text, "end": end, "cut": cut})
    data["outputs"] = outputs
    last = outputs[-1] if outputs else {"attempt": 0, "end": 0}
    data["follow"] = {"attempt": last["attempt"], "offset": last["end"]}
    return data


@router.get("/ui/runs/{run_id}/output", name="ui_run_output")
def run_output(request: Request, run_id: str, attempt: int = 0, offset: int = 0) -> Response:
    """What a run's output gained since ``attempt``/``offset``: the polling the run page
    falls back to when its event stream fails."""
    from batch_runner.web.tail import Follower

    if authenticate(request) is None:
        return JSONResponse({"detail": "sign in first"}, status_code=401)
    found = service_of(request).reader().store.get_run(run_id)
    if found is None:
        return JSONResponse({"detail": f"no run {run_id}"}, status_code=404)
    follower = Follower(max(0, attempt), max(0, offset))
    parts = follower.step(found)
    return JSONResponse(
        {
            "parts": [{"attempt": n, "text": text} for n, text in parts],
            "attempt": follower.attempt,
            "offset": follower.offset,
            "done": follower.done,
        }
    )


@router.get("/ui/queue", name="ui_queue")
def queue(request: Request) -> Response:
    return page(request, "queue", "Queue", pagedata.queue)
