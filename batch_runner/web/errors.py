"""Every failure a caller can cause becomes one JSON sentence with its HTTP status; a state
that cannot be read or written is 503 with ``Retry-After``, never a hang or a traceback."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from batch_runner.errors import (
    BatchRunnerError,
    Busy,
    ConfigError,
    DamagedState,
    NotFound,
    OperationFailed,
    StorageError,
    UsageError,
)
from batch_runner.logs import get_logger
from batch_runner.web.headers import SECURITY_HEADERS

log = get_logger("batch_runner.web")

# Long enough for a full disk to be noticed or a repair to finish, short enough for a retry
# loop to come back soon.
RETRY_AFTER_SECONDS = 5

_STATUS: tuple[tuple[type[BatchRunnerError], int], ...] = (
    (StorageError, 503),
    (NotFound, 404),
    (UsageError, 400),
    (Busy, 409),
    (ConfigError, 422),
    (OperationFailed, 409),
)


def status_of(exc: BatchRunnerError) -> int:
    for kind, status in _STATUS:
        if isinstance(exc, kind):
            return status
    return 400


def refused(request: Request, exc: BatchRunnerError) -> int:
    """The status of ``exc``; a damaged database is also told to the service, which then
    reopens its connections: SQLite would otherwise go on trusting the pages it read before."""
    if isinstance(exc, DamagedState):
        request.app.state.service.state_damaged()
    return status_of(exc)


def error_response(status: int, sentence: str) -> JSONResponse:
    # A sentence may repeat what the caller sent, a lone surrogate included, which UTF-8
    # cannot encode: written as its escape, the answer is still sent.
    sentence = sentence.encode("utf-8", "backslashreplace").decode("utf-8")
    headers = {"Retry-After": str(RETRY_AFTER_SECONDS)} if status == 503 else None
    return JSONResponse({"detail": sentence}, status_code=status, headers=headers)


async def _on_batch_runner_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, BatchRunnerError)
    status = refused(request, exc)
    sentence = str(exc)
    if isinstance(exc, ConfigError) and exc.problems:
        sentence = f"{sentence}: {exc.problems[0].strip()}"
    if status == 503:
        log.warning("%s %s: %s", request.method, request.url.path, sentence)
    return error_response(status, sentence)


async def _on_unexpected(request: Request, exc: Exception) -> JSONResponse:
    # A bug of ours: logged whole for us, one sentence for the caller. Answered from outside
    # every middleware (Starlette's own error handler): the security headers are set here.
    log.error("%s %s failed", request.method, request.url.path, exc_info=exc)
    response = error_response(500, "internal error; the service's log has the details")
    for name, value in SECURITY_HEADERS:
        response.headers[name.decode()] = value.decode()
    return response


def install(app: FastAPI) -> None:
    app.add_exception_handler(BatchRunnerError, _on_batch_runner_error)
    app.add_exception_handler(Exception, _on_unexpected)
