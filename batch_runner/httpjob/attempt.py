"""One attempt of an HTTP job: prepare, exchange under a deadline, judge, record (SPEC 11).

The exchange runs in a daemon worker thread while this thread keeps the clock: the run's
``timeout`` bounds the whole attempt (name resolution, connecting, every redirect, reading the
body), which per-socket timeouts alone cannot do. Meanwhile a stop request (``stop RUN_ID``)
or the runner's ``cancel`` answer ends the attempt as ``stopped`` or ``interrupted``; the
worker's sockets are shut down so it ends too, and it holds at most the capped body anyway.
It is handed what it needs (``settings.http``, a ``stop_requested()`` that asks the store) rather
than the runner's context: HTTP jobs sit below the runs that start them.

2xx is ``success``; any other status and every failure to get a response is ``error``, a
timeout included (SPEC 11: "anything else, or a network error, is error"), so retries apply.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from batch_runner.execution.judge import CANCEL_VERDICTS, judge
from batch_runner.execution.outcome import AttemptOutcome, AttemptRequest
from batch_runner.httpjob import report
from batch_runner.httpjob.masking import describe, settings_mask
from batch_runner.httpjob.prepare import PreparedRequest, RequestProblem, prepare
from batch_runner.httpjob.transport import Exchange, Failure, Response
from batch_runner.logs import get_logger
from batch_runner.net.secrets import Scrubber
from batch_runner.timefmt import format_seconds

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.config.spec import HttpSettings

log = get_logger("batch_runner")

POLL_INTERVAL = 0.25  # how often the runner's cancel() is asked
STOP_CHECK_INTERVAL = 1.0  # how often the database is asked for a stop request
WORKER_GRACE = 1.0  # how long an aborted worker may take to notice

Cancel = Callable[[], str | None]


def run_attempt(
    run: dict[str, Any],
    request: AttemptRequest,
    *,
    settings: HttpSettings,
    stop_requested: Callable[[], bool],
    cancel: Cancel | None = None,
    environ: Mapping[str, str] | None = None,
) -> AttemptOutcome:
    """Make the request of ``run["spec"]["http"]`` once; never raises.

    ``settings`` is the config's ``settings.http``; ``stop_requested()`` says whether a user
    asked to stop this run (``stop RUN_ID``); ``cancel()`` is the runner's own answer.
    """
    started = time.time()
    stop = _StopCheck(run.get("run_id"), stop_requested, cancel)
    try:
        env = os.environ if environ is None else environ
        return _attempt(run, request, settings, stop, env, started)
    except Exception as exc:  # a bug here must cost one attempt, not the runner
        log.exception("run %s: the HTTP attempt failed unexpectedly", run.get("run_id"))
        return _outcome(
            "error",
            f"internal error in the HTTP attempt: {type(exc).__name__}",
            "",
            False,
            started,
            {},
        )


def _attempt(
    run: dict[str, Any],
    request: AttemptRequest,
    settings: HttpSettings,
    stop: _StopCheck,
    environ: Mapping[str, str],
    started: float,
) -> AttemptOutcome:
    mask = settings_mask(settings)
    http = run["spec"].get("http") or {}
    try:
        prepared = prepare(http, environ, tuple(settings.allow_hosts), mask)
    except RequestProblem as problem:
        written = describe(run["spec"])
        report.write_run_log(
            request.log_path, request.run_log_max_bytes, None, written, None, str(problem)
        )
        return _outcome(
            "error", str(problem), f"{written} -> {problem}", False, started, report.empty_fields()
        )
    exchange = Exchange(
        prepared,
        allow_hosts=tuple(settings.allow_hosts),
        mask=mask,
        max_body=settings.max_response_bytes,
        timeout=request.timeout,
    )
    verdict, response, failure = _supervise(exchange, stop)
    return _judged(request, prepared, mask, started, verdict, response, failure)


def _judged(
    request: AttemptRequest,
    prepared: PreparedRequest,
    mask: tuple[str, ...],
    started: float,
    verdict: str | None,
    response: Response | None,
    failure: str | None,
) -> AttemptOutcome:
    scrubber = Scrubber(prepared.secrets)
    if verdict == "timeout":
        failure = f"timed out after {format_seconds(request.timeout)} s"
    elif verdict in CANCEL_VERDICTS:
        failure = judge(verdict, None, request.timeout)[1]
    elif failure is not None:  # it may name a host or a URL that came from ${VAR}
        failure = scrubber.text(failure)
    view = None
    if verdict is None and response is not None:
        view = report.ResponseView(response, mask, scrubber)
    cut = report.write_run_log(
        request.log_path, request.run_log_max_bytes, prepared, prepared.method, view, failure
    )
    summary = report.summary(prepared, view, failure)[-max(request.output_max_bytes, 0) :]
    if view is None:
        status = verdict if verdict in CANCEL_VERDICTS else "error"
        return _outcome(status, failure, summary, cut, started, report.empty_fields())
    error = report.error_text(view)
    truncated = cut or view.response.truncated
    return _outcome(
        "error" if error else "success", error, summary, truncated, started, view.fields()
    )


def _supervise(
    exchange: Exchange, stop: _StopCheck
) -> tuple[str | None, Response | None, str | None]:
    """Run the exchange in a worker until it ends, times out or is canceled.

    Returns the verdict (None, "timeout", "stopped", "interrupted"), the response, the failure.
    """
    result: dict[str, Any] = {}

    def work() -> None:
        try:
            result["response"] = exchange.run()
        except Failure as exc:
            result["failure"] = str(exc)

    worker = threading.Thread(target=work, name="batch_runner-http", daemon=True)
    worker.start()
    verdict = _wait(worker, exchange.deadline, stop)
    if verdict is not None:
        exchange.abort()
        worker.join(WORKER_GRACE)  # only so the log is not written while it still reads
        return verdict, None, None
    return None, result.get("response"), result.get("failure")


def _wait(worker: threading.Thread, deadline: float, stop: _StopCheck) -> str | None:
    while worker.is_alive():
        now = time.monotonic()
        if now >= deadline:
            return "timeout"
        verdict = stop.verdict(now)
        if verdict is not None:
            return verdict
        worker.join(min(deadline - now, POLL_INTERVAL))
    return None


class _StopCheck:
    """Whether the attempt should end early: the runner's ``cancel()``, a ``stop`` request."""

    def __init__(
        self, run_id: str | None, stop_requested: Callable[[], bool], cancel: Cancel | None
    ) -> None:
        self.run_id, self.stop_requested, self.cancel = run_id, stop_requested, cancel
        self.next_stop_check = time.monotonic() + STOP_CHECK_INTERVAL

    def verdict(self, now: float) -> str | None:
        try:
            if self.cancel is not None:
                answer = self.cancel()
                if answer in CANCEL_VERDICTS:
                    return answer
            if now >= self.next_stop_check:  # it asks the database: not at every poll
                self.next_stop_check = now + STOP_CHECK_INTERVAL
                if self.stop_requested():
                    return "stopped"
        except Exception:  # a failed check must not end the request; the next one may work
            log.exception("run %s: checking for a stop request failed", self.run_id)
        return None


def _outcome(
    status: Any,
    error: str | None,
    output: str,
    truncated: bool,
    started: float,
    extra: dict[str, Any],
) -> AttemptOutcome:
    return AttemptOutcome(
        status=status,
        exit_code=None,
        error=error,
        output=output,
        output_truncated=truncated,
        started_at=started,
        ended_at=time.time(),
        pid=None,
        extra=extra,
    )
