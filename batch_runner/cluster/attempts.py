"""An attempt handed to this host by procrastinate: started, run through our executor, ended.

The run's row is the truth, not procrastinate's job: the task marks the run running only if it
is still reserved for this very job (``start_dispatched``), and it always returns normally, so
procrastinate never retries anything (retries are ours: a new job once the backoff is due).
Each thread of the worker's pool has a store of its own (a connection is one thread's).
"""

from __future__ import annotations

import os
import threading
import time

from batch_runner.errors import StorageError
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.execute import Observer, execute_run
from batch_runner.runs.interrupt import Interrupter

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from batch_runner.config.spec import ConfigSpec

log = get_logger("batch_runner")


class ClusterInterrupter(Interrupter):
    """A stop asked on any host is in the shared database; a database that does not answer
    for a moment must not end the job, so its error means "no stop asked yet"."""

    def cancel(self) -> str | None:
        try:
            return super().cancel()
        except StorageError:
            return None

    def close(self) -> None:
        os.close(self.read_fd)
        os.close(self.write_fd)


class Attempts:
    """The attempts running on this host's worker: started by procrastinate's threads, their
    ids beaten by the keeper, interrupted together at shutdown."""

    def __init__(self, config: Callable[[], ConfigSpec], observer: Observer | None) -> None:
        self._config = config
        self._observer = observer
        self._local = threading.local()
        self._lock = threading.Lock()
        self.running: dict[str, ClusterInterrupter] = {}
        self.shutting_down = False

    def context(self) -> RunnerContext:
        """This thread's context, with a store of its own, renewed when the config changed."""
        ctx: RunnerContext | None = getattr(self._local, "ctx", None)
        config = self._config()
        ctx = self._local.ctx = RunnerContext(config) if ctx is None else ctx.renewed(config)
        return ctx

    def run(self, run_id: str, job_id: int) -> None:
        """procrastinate's task: one attempt of ``run_id`` if it is still this job's to run."""
        ctx = self.context()
        try:
            run = ctx.store.start_dispatched(  # type: ignore[attr-defined]
                run_id, job_id, os.getpid(), time.time()
            )
        except StorageError as exc:
            # Left reserved: the sweep of reserved runs hands it to another job.
            log.warning("could not start run %s: %s", run_id, exc)
            return
        if run is None:
            return  # taken back (removed, or handed to another job) before it started
        interrupter = ClusterInterrupter(ctx)
        with self._lock:
            self.running[run_id] = interrupter
            if self.shutting_down:
                interrupter.interrupt()
        try:
            execute_run(ctx, run, interrupter, self._observer)
        except StorageError as exc:
            # Its end could not be written (the database went away): the sweep settles it.
            log.error("run %s: %s", run_id, exc)
        finally:
            ctx.store.fences.pop(run_id, None)  # type: ignore[attr-defined]
            with self._lock:
                self.running.pop(run_id, None)
            interrupter.close()

    def ids(self) -> list[str]:
        with self._lock:
            return list(self.running)

    def interrupt_all(self) -> None:
        """End every running attempt as ``interrupted`` (a shutdown past its grace)."""
        with self._lock:
            self.shutting_down = True
            for interrupter in self.running.values():
                interrupter.interrupt()

    def close(self) -> None:
        ctx: RunnerContext | None = getattr(self._local, "ctx", None)
        if ctx is not None:
            ctx.close()


def describe(run: dict[str, Any]) -> str:
    return f"{run['job_name']} (run {run['run_id']})"
