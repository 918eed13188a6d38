"""Progress reported from inside a run (SPEC 5): ``batch_runner progress`` and the helper."""

from __future__ import annotations

import os

from batch_runner.errors import NotFound, OperationFailed, UsageError


def record_progress(
    percent: float | None = None,
    message: str | None = None,
    environ: dict[str, str] | None = None,
) -> None:
    """Store progress for ``$BATCH_RUN_ID``; a clear error outside a run."""
    env = os.environ if environ is None else environ
    run_id, log_dir = env.get("BATCH_RUN_ID"), env.get("BATCH_RUNNER_LOG_DIR")
    if not run_id or not log_dir:
        missing = [name for name in ("BATCH_RUN_ID", "BATCH_RUNNER_LOG_DIR") if not env.get(name)]
        raise UsageError(
            "progress can only be reported from inside a batch_runner run "
            f"(${' and $'.join(missing)} {'is' if len(missing) == 1 else 'are'} "
            "not set)"
        )
    if percent is not None and not 0 <= percent <= 100:
        raise UsageError(f"percent must be between 0 and 100, not {percent:g}")
    if percent is None and message is None:
        raise UsageError("give a percentage (--percent N), a message, or both")
    from batch_runner.state.layout import LogLayout
    from batch_runner.state.store import open_existing_store

    store = open_existing_store(LogLayout(log_dir))
    if store is None:
        raise NotFound(f"no run {run_id}: there is no batch_runner state in {log_dir}")
    try:
        if store.set_progress(run_id, percent, message):
            return
        run = store.get_run(run_id)
    finally:
        store.close()
    if run is None:
        raise NotFound(f"no run {run_id} in {log_dir}; progress was not recorded")
    raise OperationFailed(
        f"run {run_id} is not running ({run['status']}); progress was not recorded"
    )
