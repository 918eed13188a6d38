"""Progress reported from inside a run (SPEC 5): ``batch_runner progress`` and the helper."""

from __future__ import annotations

import os
from pathlib import Path

from batch_runner.errors import OperationFailed, UsageError


def record_progress(
    percent: float | None = None, message: str | None = None,
    environ: dict[str, str] | None = None,
) -> None:
    """Store progress for ``$BATCH_RUN_ID``; a clear error outside a run."""
    env = os.environ if environ is None else environ
    run_id, log_dir = env.get("BATCH_RUN_ID"), env.get("BATCH_RUNNER_LOG_DIR")
    if not run_id or not log_dir:
        raise UsageError("progress can only be reported from inside a batch_runner run "
                         "($BATCH_RUN_ID is not set)")
    if percent is not None and not 0 <= percent <= 100:
        raise UsageError(f"percent must be between 0 and 100, not {percent:g}")
    if percent is None and message is None:
        raise UsageError("give a percentage (--percent N), a message, or both")
    from batch_runner.paths import LogLayout
    from batch_runner.store import Store

    store = Store(LogLayout(Path(log_dir)).database)
    try:
        if not store.set_progress(run_id, percent, message):
            raise OperationFailed(f"run {run_id} is not running; progress was not recorded")
    finally:
        store.close()
