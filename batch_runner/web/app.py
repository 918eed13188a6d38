"""The ASGI application: the native API under ``/api/v1``, seed 001's API under ``/jobs``,
``/metrics``, and the dashboard under ``/ui``; each in its own module."""

from __future__ import annotations

from fastapi import FastAPI
from fastapi.responses import RedirectResponse

from batch_runner.version import __version__
from batch_runner.web import api_jobs, api_runs, errors, events, metrics, pages, seedapi
from batch_runner.web.headers import SecurityHeaders
from batch_runner.web.limits import BodyLimit
from batch_runner.web.service import Service


def create_app(service: Service, *, root_path: str = "") -> FastAPI:
    app = FastAPI(
        title="batch_runner",
        version=__version__,
        summary="Runs a machine's batch jobs on time and keeps a faithful record of every run.",
        # The interactive docs load their scripts from a CDN, which the strict CSP (and a
        # closed network) refuse: the OpenAPI document itself is served.
        docs_url=None,
        redoc_url=None,
        openapi_url="/api/v1/openapi.json",
        root_path=root_path,
    )
    app.state.service = service
    errors.install(app)
    app.include_router(api_runs.router, prefix="/api/v1")
    app.include_router(api_jobs.router, prefix="/api/v1")
    app.include_router(events.router, prefix="/api/v1")
    app.include_router(seedapi.router)
    app.include_router(metrics.router)
    pages.install(app)

    @app.get("/", include_in_schema=False)
    def home() -> RedirectResponse:
        return RedirectResponse("ui/", status_code=303)

    app.add_middleware(BodyLimit)
    app.add_middleware(SecurityHeaders)  # added last: outermost, so even a 413 carries them
    return app
