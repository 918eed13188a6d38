"""One attempt of an HTTP job (SPEC 11): one request, judged by its status code.

The entry point the runner calls; the work is in ``batch_runner.httpjob`` (standard library
``urllib.request``, see ``httpjob.transport``), imported only when an HTTP attempt runs, so the
``run-job`` hot path of command jobs never pays for urllib, ssl and http.client.
"""

from __future__ import annotations

from collections.abc import Callable

from batch_runner.context import RunnerContext
from batch_runner.executor import AttemptOutcome, AttemptRequest

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any


def run_http_attempt(
    ctx: RunnerContext,
    run: dict[str, Any],
    request: AttemptRequest,
    cancel: Callable[[], str | None] | None = None,
) -> AttemptOutcome:
    """Make the request described by ``run["spec"]["http"]``; never raises.

    ``cancel`` is the executor's: asked a few times a second, "stopped" or "interrupted" ends
    the attempt so. Without it, only a ``stop`` request (in the database) ends it early.
    """
    from batch_runner.httpjob.attempt import run_attempt

    return run_attempt(ctx, run, request, cancel=cancel)
