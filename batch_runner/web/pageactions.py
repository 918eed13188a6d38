"""The dashboard's buttons: plain HTML forms that post here with the session's CSRF token
(so they work without JavaScript), each calling the change the API makes (``web.actions``,
audited), then sending the browser back to the page it came from (303)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from batch_runner.errors import BatchRunnerError
from batch_runner.web import actions
from batch_runner.web.auth import Principal, require
from batch_runner.web.errors import RETRY_AFTER_SECONDS, status_of
from batch_runner.web.pages import render, safe_next, url

router = APIRouter(include_in_schema=False)
_OPERATE = Depends(require("operate"))


def _done(
    request: Request, principal: Principal, back: str, default: str, change: Callable[[], Any]
) -> Response:
    """Make the change, then go back; a refusal (a run that ended meanwhile, a job already
    running) is a page with its sentence and its status."""
    try:
        change()
    except BatchRunnerError as exc:
        status = status_of(exc)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
        return render(
            request,
            principal,
            "error.html",
            status=status,
            headers=headers,
            title="Not done",
            problem=str(exc),
            back=safe_next(request, back or default),
        )
    return RedirectResponse(safe_next(request, back or default), 303)


@router.post("/ui/runs/{run_id}/stop", name="ui_run_stop")
def stop(
    request: Request, run_id: str, back: str = Form(""), principal: Principal = _OPERATE
) -> Response:
    home = url(request, "ui_run", run_id=run_id)
    return _done(
        request, principal, back, home, lambda: actions.stop_run(request, principal, run_id)
    )


@router.post("/ui/runs/{run_id}/cancel", name="ui_run_cancel")
def cancel(
    request: Request, run_id: str, back: str = Form(""), principal: Principal = _OPERATE
) -> Response:
    home = url(request, "ui_run", run_id=run_id)
    return _done(
        request, principal, back, home, lambda: actions.cancel_run(request, principal, run_id)
    )


@router.post("/ui/queue/pause", name="ui_queue_pause")
def pause(request: Request, back: str = Form(""), principal: Principal = _OPERATE) -> Response:
    home = url(request, "ui_queue")
    return _done(
        request, principal, back, home, lambda: actions.set_paused(request, principal, True)
    )


@router.post("/ui/queue/resume", name="ui_queue_resume")
def resume(request: Request, back: str = Form(""), principal: Principal = _OPERATE) -> Response:
    home = url(request, "ui_queue")
    return _done(
        request, principal, back, home, lambda: actions.set_paused(request, principal, False)
    )


@router.post("/ui/jobs/{name}/run", name="ui_job_run")
def run_now(
    request: Request, name: str, back: str = Form(""), principal: Principal = _OPERATE
) -> Response:
    home = url(request, "ui_job", name=name)
    return _done(
        request, principal, back, home, lambda: actions.run_job_now(request, principal, name)
    )


@router.post("/ui/jobs/{name}/enable", name="ui_job_enable")
def enable(
    request: Request, name: str, back: str = Form(""), principal: Principal = _OPERATE
) -> Response:
    home = url(request, "ui_job", name=name)
    change = lambda: actions.set_job_enabled(request, principal, name, True)  # noqa: E731
    return _done(request, principal, back, home, change)


@router.post("/ui/jobs/{name}/disable", name="ui_job_disable")
def disable(
    request: Request, name: str, back: str = Form(""), principal: Principal = _OPERATE
) -> Response:
    home = url(request, "ui_job", name=name)
    change = lambda: actions.set_job_enabled(request, principal, name, False)  # noqa: E731
    return _done(request, principal, back, home, change)
