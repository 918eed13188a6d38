"""``run-job NAME`` on a cluster (``settings.backend``): the run is queued in the shared
database and run by whichever host's worker has a free slot of its lane; this command waits
for its end and exits with its outcome, as it does on one host. A signal asks the run to stop
(or takes it back while it still waits)."""

from __future__ import annotations

import signal
import sys
import threading
import time

from batch_runner.errors import Busy
from batch_runner.runs.context import RunnerContext
from batch_runner.state.store import FINISHED_STATUSES, WAITING_STATUSES

TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.config.spec import JobSpec

POLL_SECONDS = 0.1


def run_in_cluster(ctx: RunnerContext, job: JobSpec, *, no_wait: bool) -> dict[str, Any] | None:
    """Queue a run of ``job`` and wait for its end: the run as it ended; None when it was
    skipped (the job already waits or runs)."""
    from batch_runner.runs.endings import end_waiting_run
    from batch_runner.runs.enqueue import enqueue_job

    store: Any = ctx.store
    if no_wait and not store.lane_has_free_slot(job.lane):
        raise Busy(
            f"every slot of lane {job.lane!r} in the cluster is busy; {job.name} was not started"
        )
    asked = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        asked.set()

    for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
        signal.signal(signum, on_signal)
    run_id = enqueue_job(ctx, job, "manual")
    if run_id is None:
        return None
    if not store.live_hosts():
        print(
            f"{job.name}: no scheduler or worker of the cluster is running; the run waits for one",
            file=sys.stderr,
        )
    stop_asked = False
    while True:
        run = store.get_run(run_id) or {}
        status = run.get("status")
        if status in FINISHED_STATUSES or not run:
            return run
        if asked.is_set():
            # Taken back while it waits; asked to stop once it runs (a worker may be starting
            # it right now: then it is asked again at the next look).
            if status in WAITING_STATUSES:
                end_waiting_run(ctx, run, "canceled: run-job was interrupted")
            elif status == "running" and not stop_asked:
                stop_asked = store.request_stop(run_id)
            time.sleep(POLL_SECONDS)
        else:
            asked.wait(POLL_SECONDS)
