"""Progress reported from inside a run (SPEC 5): ``batch_runner progress`` and the helper."""

from __future__ import annotations

import os
import stat

from batch_runner.errors import NotFound, OperationFailed, UsageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Mapping
    from typing import Any


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

    backend = _backend_of_run(env)
    where = log_dir if backend is None else "the cluster database"
    store = open_existing_store(LogLayout(log_dir), backend)
    if store is None:
        raise NotFound(f"no run {run_id}: there is no batch_runner state in {log_dir}")
    try:
        if store.set_progress(run_id, percent, message):
            return
        run = store.get_run(run_id)
    finally:
        store.close()
    if run is None:
        raise NotFound(f"no run {run_id} in {where}; progress was not recorded")
    raise OperationFailed(
        f"run {run_id} is not running ({run['status']}); progress was not recorded"
    )


def _backend_of_run(env: Mapping[str, str]) -> Any:
    """The ``settings.backend`` of the run's config (``$BATCH_RUNNER_CONFIG``): a cluster's
    run is in its database, not in the log dir. The config is loaded only when its text could
    name a backend at all, so that a report outside a cluster costs a read, not a validation."""
    path = env.get("BATCH_RUNNER_CONFIG")
    if not path:
        return None
    data = _read_regular(path)
    # The key is in the text as it is, or spelled with \u escapes.
    if data is None or (b'"backend"' not in data and b"\\u" not in data):
        return None
    from batch_runner.config.loader import load_config
    from batch_runner.paths import resolve_root

    return load_config(path, resolve_root(None, dict(env))).settings.backend


def _read_regular(path: str) -> bytes | None:
    """The file's bytes; None when it cannot be read (the run is then looked for in the log
    dir, as outside a cluster) or is no regular file (a FIFO would block)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    with open(fd, "rb") as file:
        try:
            return file.read() if stat.S_ISREG(os.fstat(fd).st_mode) else None
        except OSError:
            return None
