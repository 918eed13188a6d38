"""One attempt of an HTTP job (SPEC 11): one request, judged by its status code."""

from __future__ import annotations

import time
from typing import Any

from batch_runner.context import RunnerContext
from batch_runner.executor import AttemptOutcome, AttemptRequest


def run_http_attempt(
    ctx: RunnerContext, run: dict[str, Any], request: AttemptRequest
) -> AttemptOutcome:
    """Make the request described by ``run["spec"]["http"]``; never raises."""
    now = time.time()
    return AttemptOutcome(
        status="error", exit_code=None, output="", output_truncated=False,
        error="HTTP jobs are not supported by this version of batch_runner yet",
        started_at=now, ended_at=now, pid=None,
    )
