"""``/api/v1/jobs``: the config's jobs as ``list`` shows them (schedule in words with zone, next
and last run, error count, a disable by failures), a job's last runs, and run now, enable,
disable through the same code as the CLI (``web.actions``)."""

from __future__ import annotations

import itertools
import json
import time
from typing import Any

from fastapi import APIRouter, Depends, Request

from batch_runner.config.spec import JobSpec
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.web import actions
from batch_runner.web.auth import Principal, require, service_of
from batch_runner.web.jobmodels import EnabledChange, Job, JobDetail, ResultRecord
from batch_runner.web.models import Problem, Run, responses
from batch_runner.web.validation import SentenceRoute

log = get_logger("batch_runner.web")

router = APIRouter(tags=["jobs"], route_class=SentenceRoute)

# How many of a job's attempts its page shows: the dashboard's strip of marks.
LAST_RUNS = 20

_READ_ERRORS = responses(401, 403, 503)
_ONE_JOB = {**_READ_ERRORS, 404: {"model": Problem, "description": "no such job"}}
_CHANGE = {**_ONE_JOB, **responses(422)}  # 422: the config file does not validate


@router.get("/jobs", response_model=list[Job], responses=_READ_ERRORS)
def list_jobs(request: Request, _: Principal = Depends(require("read"))) -> list[dict[str, Any]]:
    """Every job of the config, in the file's order."""
    ctx = service_of(request).reader()
    return job_objects(ctx, time.time())


@router.get("/jobs/{name}", response_model=JobDetail, responses=_ONE_JOB)
def get_job(request: Request, name: str, _: Principal = Depends(require("read"))) -> dict[str, Any]:
    """One job, with its last 20 attempts from the JSONL results, the latest first."""
    ctx = service_of(request).reader()
    job = ctx.config.find_job(name)
    (row,) = job_objects(ctx, time.time(), only=job)
    return {**row, "runs": last_runs(ctx, job.name, LAST_RUNS)}


@router.post(
    "/jobs/{name}/run",
    response_model=Run,
    status_code=201,
    responses={**_CHANGE, 409: {"model": Problem, "description": "already waiting or running"}},
)
def run_job(
    request: Request, name: str, principal: Principal = Depends(require("operate"))
) -> dict[str, Any]:
    """Queue a run of the job now (``run-job NAME --queue``), answered as ``POST /runs``
    answers; 409 when one already waits or runs, recorded as ``skipped`` as the CLI's exit
    75 is."""
    from batch_runner.web.api_runs import run_out

    run = actions.run_job_now(request, principal, name)
    return run_out(run, service_of(request).config.settings)


@router.post("/jobs/{name}/enable", response_model=EnabledChange, responses=_CHANGE)
def enable(
    request: Request, name: str, principal: Principal = Depends(require("operate"))
) -> dict[str, Any]:
    """``batch_runner enable NAME``: on in the file (edited atomically), and a disable by
    failures lifted."""
    return {**actions.set_job_enabled(request, principal, name, True), "enabled": True}


@router.post("/jobs/{name}/disable", response_model=EnabledChange, responses=_CHANGE)
def disable(
    request: Request, name: str, principal: Principal = Depends(require("operate"))
) -> dict[str, Any]:
    """``batch_runner disable NAME``: off in the file (edited atomically)."""
    return {**actions.set_job_enabled(request, principal, name, False), "enabled": False}


def job_objects(
    ctx: RunnerContext, now: float, *, only: JobSpec | None = None
) -> list[dict[str, Any]]:
    """The jobs' rows as ``list --json`` has them (all, or ``only``'s), with the schedule in
    words, the zone and the lane, and nulls for a disable by failures that is not."""
    from batch_runner.runs.jobtable import describe_job, job_rows
    from batch_runner.state.locks import holder_pid

    alive = holder_pid(ctx.layout.scheduler_lock) is not None
    states = ctx.store.job_states()
    config = ctx.config
    rows = job_rows(config, states, now, scheduler_alive=alive)
    objects = []
    for row, job in zip(rows, config.jobs, strict=True):
        if only is not None and job.name != only.name:
            continue
        objects.append(
            {
                "disabled_reason": None,
                "disabled_at": None,
                **row,
                "schedule": describe_job(job, now),
                "timezone": job.timezone,
                "lane": job.lane,
            }
        )
    return objects


def last_runs(ctx: RunnerContext, name: str, limit: int) -> list[dict[str, Any]]:
    """The job's latest ``limit`` attempts from the results files; a line whose fields are not
    what SPEC 7 says (edited by hand) is left out, with a warning."""
    from batch_runner.state.results import iter_results_newest_first

    records = iter_results_newest_first(ctx.layout, keep=lambda r: r.get("job_name") == name)
    kept = []
    for record in itertools.islice(records, limit):
        try:
            shown = ResultRecord.model_validate(record).model_dump()
            # A lone surrogate or a NaN typed in by hand: JSON could not carry the answer.
            json.dumps(shown, ensure_ascii=False, allow_nan=False).encode()
        except ValueError:  # pydantic's ValidationError is one
            log.warning("left out a result line of %r whose fields are damaged", name)
            continue
        kept.append(shown)
    return kept
