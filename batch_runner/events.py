"""What happens around an attempt besides running it: heartbeats and notices (SPEC 8).

The runner calls these at fixed points; none of them may change a run's outcome or stop the
runner, and none may delay the executor by more than its own timeout.
"""

from __future__ import annotations

from typing import Any

from batch_runner.context import RunnerContext
from batch_runner.executor import AttemptOutcome


def attempt_starting(ctx: RunnerContext, run: dict[str, Any]) -> None:
    """Right before an attempt starts (the heartbeat's ``/start``)."""


def run_finished(
    ctx: RunnerContext, run: dict[str, Any], outcome: AttemptOutcome, state: dict[str, Any] | None
) -> None:
    """After a run's last attempt is recorded; ``state`` is its job's state after the update
    (None for ad-hoc runs that belong to no job)."""
