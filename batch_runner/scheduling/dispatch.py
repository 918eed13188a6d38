"""The scheduler's executor threads: one per slot of each lane, draining due runs.

The scheduler's main thread only decides *when* and enqueues; these threads run. A lane of
width w gets w threads (``lanethreads``). Without lanes that is one thread and one slot, the
executor lock: one run at a time, as before lanes.

The main thread queues each occurrence a moment before it is due, with its due time, and pokes:
a thread wakes, finds the run not yet due, and sleeps to that time, so the write, the poke and
the threads' hand-over all happen before the due time instead of between it and the start. No
slot is taken ahead: a ``run-job`` (``--no-wait`` above all) arriving just before a scheduled
run is not turned away for it.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from batch_runner.config.spec import ConfigSpec
from batch_runner.errors import DamagedState
from batch_runner.runs.context import RunnerContext
from batch_runner.scheduling.lanethreads import Lane, LaneRunner, Owner
from batch_runner.state.wakeup import poke


class Dispatcher(Owner):
    """The executor threads of every lane, started, poked, stopped and joined as one."""

    def __init__(self, config: Callable[[], ConfigSpec]) -> None:
        self._config = config
        self._lanes: dict[str, Lane] = {}
        self._shaped_for: ConfigSpec | None = None
        self._started = False
        # A damaged state database: retrying cannot mend it, so the scheduler exits with it.
        self.fatal: DamagedState | None = None

    @property
    def _runners(self) -> list[LaneRunner]:
        return [runner for lane in self._lanes.values() for runner in lane.every_runner]

    def start(self) -> None:
        self._started = True
        self._shape()
        for runner in self._runners:
            runner.ready.wait(10)

    def poke(self) -> None:
        """A run was queued (or the config reloaded): drain now."""
        if self._started and self._shaped_for is not self._config():
            self._shape()
        for runner in self._runners:
            runner.wake.set()

    @property
    def busy(self) -> bool:
        """Holding a slot: a run is being claimed, executed or recorded."""
        return any(runner.busy for runner in self._runners)

    @property
    def running(self) -> int:
        """How many slots are held."""
        return sum(runner.busy for runner in self._runners)

    def stop_new(self) -> None:
        for runner in self._runners:
            runner.stop_new()

    def interrupt(self) -> None:
        for runner in self._runners:
            runner.interrupt()

    def join(self, timeout: float) -> bool:
        """True when every thread is done or idle (nothing of ours is running)."""
        deadline = time.monotonic() + timeout
        while self.busy and time.monotonic() < deadline:
            time.sleep(0.02)
        return not self.busy

    def _shape(self) -> None:
        """One thread per slot of each configured lane, and of each lane no longer configured
        that still has runs waiting or running (one slot: they drain, one at a time, a retry
        included). A narrowed lane's extra threads end after their current run."""
        config = self._config()
        self._shaped_for = config
        widths = dict(config.settings.lanes)
        for lane in _lanes_in_use(config):
            widths.setdefault(lane, 1)
        for name in self._lanes.keys() - widths.keys():
            self._lanes[name].resize(0, self)
        for name, width in widths.items():
            self._lanes.setdefault(name, Lane(name)).resize(width, self)

    def config(self) -> ConfigSpec:
        return self._config()

    def failed(self, exc: DamagedState, ctx: RunnerContext) -> None:
        self.fatal = exc
        for runner in self._runners:
            runner.stopping.set()
            runner.wake.set()
        poke(ctx.layout.log_dir)  # wake the main loop, which exits with the sentence


def _lanes_in_use(config: ConfigSpec) -> set[str]:
    """The lanes with runs waiting or running."""
    ctx = RunnerContext(config=config)
    try:
        return set(ctx.store.pending_by_lane()) | {
            run["lane"] for run in ctx.store.runs_with_status("running")
        }
    finally:
        ctx.store.close()
