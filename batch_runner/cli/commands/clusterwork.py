"""``queue worker`` on a cluster (``settings.backend``): this host's worker takes runs from the
shared queue, whichever host queued them, until stopped (``--forever``) or until nothing is
waiting that is due."""

from __future__ import annotations

import signal
import threading
import time

from batch_runner.errors import EXIT_FAILED, EXIT_OK
from batch_runner.runs.context import RunnerContext

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

IDLE_CHECK_SECONDS = 0.5


def work_in_cluster(ctx: RunnerContext, *, forever: bool) -> int:
    """Run attempts here until SIGTERM or SIGINT (``forever``), or until no run waits that
    is due and none of ours runs; then let the running ones end within ``shutdown_grace``."""
    from batch_runner.cli.commands.worker import Display
    from batch_runner.cluster.runtime import ClusterRuntime
    from batch_runner.execution.reaper import reap_zombies

    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    ctx.store.is_paused()  # a database that does not answer: exit 75 now, in one sentence
    display = Display(ctx)
    runtime = ClusterRuntime(lambda: ctx.config, "worker", observer=display.observe)
    runtime.start()
    idle_since: float | None = None
    try:
        while not stop.wait(IDLE_CHECK_SECONDS):
            reap_zombies()
            if forever:
                continue
            if runtime.busy or _due_waiting(ctx):
                idle_since = None
            elif idle_since is None:
                idle_since = time.monotonic()
            elif time.monotonic() - idle_since >= 2 * IDLE_CHECK_SECONDS:
                break  # nothing waiting here or for anyone, twice in a row
    finally:
        runtime.stop_new()
        if not runtime.join(ctx.config.settings.shutdown_grace):
            runtime.interrupt()
            runtime.join(ctx.config.settings.kill_grace + 5.0)
        display.close()
    return EXIT_FAILED if display.failed else EXIT_OK


def _due_waiting(ctx: RunnerContext) -> bool:
    """Whether a run waits that is due (pending or handed to a worker), or one runs here."""
    due = ctx.store.next_due_at()
    return due is not None and due <= time.time()
