"""Every change the service makes, for the API and the dashboard alike: through the same code
as the CLI (``runs.queue``, ``runs.enqueue``, ``runs.jobtable``, ``config.edit``), each
leaving its line in the audit trail, in the change's own transaction where the change is one
write.

Each takes the request (for "from where") and the principal (for "who"), and returns the run
or job as it is after the change; a refusal is the CLI's own exception, which the service
turns into its HTTP status (``web.errors``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import Request

from batch_runner.errors import Busy
from batch_runner.runs.context import RunnerContext
from batch_runner.web.auth import Principal, audit, service_of


def stop_run(request: Request, principal: Principal, target: str) -> dict[str, Any]:
    """``batch_runner stop``: a running attempt is asked to stop; a waiting run is canceled."""
    from batch_runner.runs import queue

    def change(ctx: RunnerContext) -> dict[str, Any]:
        run = queue.stop(ctx, target)
        ended = run["status"] == "canceled"
        entry = audit(request, principal, "cancel" if ended else "stop", run_id=run["run_id"])
        ctx.store.record_audit({**entry, "job_name": run["job_name"]})
        return ctx.store.get_run(run["run_id"]) or run

    return service_of(request).write(change)


def cancel_run(request: Request, principal: Principal, run_id: str) -> dict[str, Any]:
    """``batch_runner queue remove``: a waiting run becomes ``canceled``; a running or finished
    one is refused (409)."""
    from batch_runner.runs import queue

    def change(ctx: RunnerContext) -> dict[str, Any]:
        run = queue.remove(ctx, run_id)
        entry = audit(request, principal, "cancel", run_id=run["run_id"])
        ctx.store.record_audit({**entry, "job_name": run["job_name"]})
        return ctx.store.get_run(run["run_id"]) or run

    return service_of(request).write(change)


def queue_run(
    request: Request,
    principal: Principal,
    spec: dict[str, Any],
    **options: Any,
) -> dict[str, Any]:
    """``batch_runner queue add``: a new run (``spec`` and ``options`` from ``runs.request``,
    checked there), durable and audited together, the stored row returned. Grouped: the runs
    queued together share one commit, after which runners are woken."""
    return service_of(request).write_grouped(_queueing(request, principal, spec, options))


async def queue_run_async(
    request: Request,
    principal: Principal,
    spec: dict[str, Any],
    **options: Any,
) -> dict[str, Any]:
    """``queue_run`` for the event loop."""
    change = _queueing(request, principal, spec, options)
    return await service_of(request).write_grouped_async(change)


def _queueing(
    request: Request, principal: Principal, spec: dict[str, Any], options: dict[str, Any]
) -> Callable[[RunnerContext], dict[str, Any]]:
    from batch_runner.runs import queue

    entry = audit(request, principal, "queue")

    def change(ctx: RunnerContext) -> dict[str, Any]:
        with ctx.store.transaction():
            run_id = queue.add(ctx, spec, wake=False, **options)
            job_name = options.get("label") or queue.ADHOC_JOB_NAME
            ctx.store.record_audit({**entry, "run_id": run_id, "job_name": job_name})
        run = ctx.store.get_run(run_id)
        assert run is not None
        return run

    return change


def set_paused(request: Request, principal: Principal, paused: bool) -> bool:
    """``batch_runner queue pause`` / ``resume``."""
    from batch_runner.state.wakeup import poke

    def change(ctx: RunnerContext) -> bool:
        with ctx.store.transaction():
            ctx.store.set_paused(paused)
            ctx.store.record_audit(audit(request, principal, "pause" if paused else "resume"))
        if not paused:  # after the commit: woken earlier, a runner could find it still paused
            poke(ctx.layout.log_dir)
        return paused

    return service_of(request).write(change)


def run_job_now(request: Request, principal: Principal, name: str) -> dict[str, Any]:
    """``batch_runner run-job NAME --queue``: a run of the job now, unless one already waits
    or runs (409, and a ``skipped`` record, as the CLI's exit 75)."""
    from batch_runner.runs.enqueue import enqueue_job
    from batch_runner.state.wakeup import poke

    def change(ctx: RunnerContext) -> dict[str, Any]:
        job = ctx.config.find_job(name)
        with ctx.store.transaction():  # the run and its audit line, or neither
            run_id = enqueue_job(ctx, job, "queue")
            if run_id is not None:
                entry = audit(request, principal, "run", run_id=run_id, job_name=name)
                ctx.store.record_audit(entry)
        if run_id is None:
            raise Busy(f"job {name!r} is already waiting or running (recorded as skipped)")
        poke(ctx.layout.log_dir)
        run = ctx.store.get_run(run_id)
        assert run is not None
        return run

    return service_of(request).write(change)


def set_job_enabled(
    request: Request, principal: Principal, name: str, enabled: bool
) -> dict[str, Any]:
    """``batch_runner enable`` / ``disable``: the config file edited the same atomic way, and
    an enable clears a disable by failures. Returns what was done: ``edited`` (the file),
    ``cleared`` (a disable by failures)."""
    from batch_runner.config import edit
    from batch_runner.runs.jobtable import enable_job

    def change(ctx: RunnerContext) -> dict[str, Any]:
        job = ctx.config.find_job(name)
        if enabled:
            edited, cleared = enable_job(ctx.config, job.name)
        else:
            edit.set_enabled(ctx.config.path, ctx.config.root, job.name, False)
            edited, cleared = True, None
        action = "enable" if enabled else "disable"
        detail = "cleared a disable by failures" if cleared is not None else None
        ctx.store.record_audit(audit(request, principal, action, job_name=job.name, detail=detail))
        return {"name": job.name, "edited": edited, "cleared": cleared is not None}

    service = service_of(request)
    try:
        return service.write(change)
    finally:
        service.config_edited()
