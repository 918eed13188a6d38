"""The scheduler's executor thread: drains due runs from the queue while holding the lock.

The scheduler's main thread only decides *when* and enqueues; this thread runs. It sleeps until
the next pending run is due or it is poked, and releases the executor lock between batches so a
``run-job`` from cron can take its turn.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from batch_runner.context import RunnerContext
from batch_runner.locks import FileLock
from batch_runner.logs import get_logger
from batch_runner.recovery import reap_orphans
from batch_runner.runner import Interrupter, drain_due
from batch_runner.spec import ConfigSpec

log = get_logger("batch_runner")

IDLE_RECHECK_SECONDS = 60.0  # a safety net only: new runs come with a poke
ERROR_PAUSE_SECONDS = 1.0


class Dispatcher:
    def __init__(self, config: Callable[[], ConfigSpec]) -> None:
        self._config = config
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._ready = threading.Event()
        self._interrupter: Interrupter | None = None
        self._lock: FileLock | None = None
        self._thread = threading.Thread(target=self._main, name="executor", daemon=True)

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def poke(self) -> None:
        self._wake.set()

    @property
    def busy(self) -> bool:
        """Holding the executor: a run is being claimed, executed or recorded."""
        return self._lock is not None and self._lock.held

    def stop_new(self) -> None:
        self._stopping.set()
        if self._interrupter is not None:
            self._interrupter.stop_new = True
        self._wake.set()

    def interrupt(self) -> None:
        if self._interrupter is not None:
            self._interrupter.interrupt()

    def join(self, timeout: float) -> bool:
        """True when the thread is done or idle (nothing of ours is running)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._thread.join(0.05)
            if not self._thread.is_alive() or not self.busy:
                return True
        return not self.busy

    def _main(self) -> None:
        ctx = RunnerContext(config=self._config())
        self._interrupter = Interrupter(ctx)
        self._lock = FileLock(ctx.layout.executor_lock)
        self._ready.set()
        while not self._stopping.is_set():
            try:
                self._step(ctx)
            except Exception:
                log.exception("executor error; retrying in %.0f s", ERROR_PAUSE_SECONDS)
                self._wake.wait(ERROR_PAUSE_SECONDS)

    def _reap_if_free(self, ctx: RunnerContext) -> None:
        """Start-up reaping: runs left ``running`` while nobody holds the executor are orphans."""
        assert self._lock is not None
        if ctx.store.runs_with_status("running") and self._lock.acquire(wait=False):
            try:
                reap_orphans(ctx, ctx.config.settings.kill_grace)
            finally:
                self._lock.release()

    def _step(self, ctx: RunnerContext) -> None:
        self._wake.clear()
        ctx.config = self._config()
        self._reap_if_free(ctx)
        next_due = None if ctx.store.is_paused() else ctx.store.next_due_at()
        now = time.time()
        if next_due is not None and next_due <= now:
            assert self._lock is not None and self._interrupter is not None
            self._lock.acquire()
            try:
                if not self._stopping.is_set():
                    drain_due(ctx, self._interrupter)
            finally:
                self._lock.release()
            return
        wait = IDLE_RECHECK_SECONDS if next_due is None else min(next_due - now,
                                                                 IDLE_RECHECK_SECONDS)
        self._wake.wait(wait)
