"""The scheduler's executor thread: drains due runs from the queue while holding the lock.

The scheduler's main thread only decides *when* and enqueues; this thread runs. It sleeps until
the next pending run is due or it is poked, and releases the executor lock between batches so a
``run-job`` from cron can take its turn.

The main thread queues each occurrence a moment before it is due, with its due time, and pokes:
this thread wakes, finds the run not yet due, and sleeps to that time, so the write, the poke
and the threads' hand-over all happen before the due time instead of between it and the start.
The executor lock is not taken ahead: a ``run-job`` (``--no-wait`` above all) arriving just
before a scheduled run is not turned away for it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from batch_runner.config.spec import ConfigSpec
from batch_runner.errors import DamagedState
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.drain import drain_due
from batch_runner.runs.interrupt import Interrupter
from batch_runner.runs.recovery import reap_if_free
from batch_runner.state.locks import FileLock
from batch_runner.state.wakeup import poke

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
        self._paused = False  # as the last drain found the queue
        self._thread = threading.Thread(target=self._main, name="executor", daemon=True)
        # A damaged state database: retrying cannot mend it, so the scheduler exits with it.
        self.fatal: DamagedState | None = None

    def start(self) -> None:
        self._thread.start()
        self._ready.wait(10)

    def poke(self) -> None:
        """A run was queued: drain now."""
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
        self._safely(self._reap_if_free, ctx)
        while not self._stopping.is_set():
            self._safely(self._step, ctx)

    def _safely(self, action: Callable[[RunnerContext], None], ctx: RunnerContext) -> None:
        try:
            action(ctx)
        except DamagedState as exc:
            self.fatal = exc
            self._stopping.set()
            poke(ctx.layout.log_dir)  # wake the main loop, which exits with the sentence
        except Exception:
            log.exception("executor error; retrying in %.0f s", ERROR_PAUSE_SECONDS)
            self._wake.wait(ERROR_PAUSE_SECONDS)

    def _reap_if_free(self, ctx: RunnerContext) -> None:
        # At start, and after every wait that ended without a poke: a `run-job` from cron may
        # have died meanwhile.
        reap_if_free(ctx, self._lock)

    def _step(self, ctx: RunnerContext) -> None:
        """One wake-up: drain what is due, else sleep until the next run is due or a poke.

        A poke for a new run goes straight to ``drain_due``, which reaps and honours a pause
        itself; the pause is asked here only once a drain found it, so a paused queue with due
        runs sleeps instead of spinning, and a running queue pays nothing for it.
        """
        self._wake.clear()
        ctx.config = self._config()
        next_due = ctx.store.next_due_at()
        now = time.time()
        if self._paused:
            self._paused = ctx.store.is_paused()
        if self._paused:
            self._sleep(ctx, None)  # until `queue resume` pokes
        elif next_due is not None and next_due <= now:
            self._drain(ctx)
        else:
            self._sleep(ctx, next_due)

    def _sleep(self, ctx: RunnerContext, next_due: float | None) -> None:
        """Until ``next_due`` or a poke. Woken by the due time, start the run at once (the
        scheduler queues its runs a moment ahead); else look for orphans of a dead run-job,
        which draining does first anyway."""
        wait = (
            IDLE_RECHECK_SECONDS
            if next_due is None
            else min(next_due - time.time(), IDLE_RECHECK_SECONDS)
        )
        if self._wake.wait(wait):
            return
        if next_due is not None and next_due <= time.time():
            self._drain(ctx)
        else:
            self._reap_if_free(ctx)

    def _drain(self, ctx: RunnerContext) -> None:
        assert self._lock is not None and self._interrupter is not None
        self._lock.acquire()
        try:
            if not self._stopping.is_set():
                drain_due(ctx, self._interrupter)
        finally:
            self._lock.release()
        self._paused = ctx.store.is_paused()
