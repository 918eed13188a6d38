"""The threads of one lane in the scheduler: one per slot, each today's single executor.

Each thread sleeps until its lane's next pending run is due or it is poked, takes a free slot
of the lane (an flock: ``run-job``, workers and the other threads count against the same
width), drains the lane's due runs, and lets the slot go between batches so a ``run-job``
from cron can take its turn. A thread joins in only while more runs are due than its siblings
already after them, so one due run does not send every thread of a wide lane into a claim.
"""

from __future__ import annotations

import signal
import threading
import time
from collections.abc import Callable

from batch_runner.config.spec import ConfigSpec
from batch_runner.errors import DamagedState
from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.drain import SLOT_POLL_SECONDS, acquire_interruptibly, drain_due
from batch_runner.runs.interrupt import Interrupter
from batch_runner.runs.recovery import reap_if_free
from batch_runner.state.slots import Slot, try_any

log = get_logger("batch_runner")

IDLE_RECHECK_SECONDS = 60.0  # a safety net only: new runs come with a poke
ERROR_PAUSE_SECONDS = 1.0


class Owner:
    """What the threads ask of whoever runs them (the dispatcher)."""

    def config(self) -> ConfigSpec:
        raise NotImplementedError

    def failed(self, exc: DamagedState, ctx: RunnerContext) -> None:
        raise NotImplementedError


class Lane:
    """A lane's threads, and how many of them are after its due runs right now."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.width = 0
        self.runners: list[LaneRunner] = []
        self.retired: list[LaneRunner] = []  # beyond a narrowed width, ending their batch
        # Threads that hold or wait for a slot and will claim next (not running a job): a
        # thread joins in only while more runs are due than these, so one due run does not
        # wake every thread of a wide lane into a claim. Under ``guard``.
        self.seeking = 0
        self.guard = threading.Lock()

    def resize(self, width: int, owner: Owner) -> None:
        """``width`` threads from now on; those beyond it end after their current run, and
        are still stopped, interrupted and joined with the rest until they have. (A thread
        kept on in a slot at or beyond the new width lets it go after its run, too.)"""
        self.width = width
        for runner in self.runners[width:]:
            runner.stop_new()
        self.retired = [r for r in self.retired + self.runners[width:] if r.thread.is_alive()]
        self.runners = self.runners[:width]
        while len(self.runners) < width:
            runner = LaneRunner(self, len(self.runners), owner)
            self.runners.append(runner)
            _start_without_sigchld(runner.thread)

    @property
    def every_runner(self) -> list[LaneRunner]:
        return self.runners + [r for r in self.retired if r.thread.is_alive()]

    def enter(self, runner: LaneRunner, due: int) -> bool:
        """Whether ``runner`` is wanted for ``due`` due runs; counted in if so.

        A sibling blocked in flock on slot 0 from when the lane was one wide does not count
        once it is wider: it may wait there for an outside runner's whole run.
        """
        with self.guard:
            stuck = sum(r.in_flock for r in self.every_runner) if self.width > 1 else 0
            if due <= self.seeking - stuck:
                return False
            self.seeking += 1
            runner.seeking = True
            return True

    def seek(self, runner: LaneRunner, seeking: bool) -> None:
        """``runner`` started a job (no longer seeking), or ended one (seeking the next)."""
        with self.guard:
            if runner.seeking != seeking:
                self.seeking += 1 if seeking else -1
                runner.seeking = seeking
        if not seeking:
            self.wake_others(runner)  # more may be due than the threads still seeking

    def leave(self, runner: LaneRunner) -> None:
        self.seek(runner, False)

    def wake_others(self, runner: LaneRunner) -> None:
        for other in self.runners:
            if other is not runner:
                other.wake.set()


def _start_without_sigchld(thread: threading.Thread) -> None:
    """Start ``thread`` with SIGCHLD blocked, a mask it keeps: the main thread alone reaps
    orphans (``reaper.reap_on_sigchld``), so the signal must never be delivered elsewhere."""
    previous = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGCHLD})
    try:
        thread.start()
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, previous)


class LaneRunner:
    """One executor thread of a lane: today's single executor, for one slot at a time."""

    def __init__(self, lane: Lane, number: int, owner: Owner) -> None:
        self.lane = lane
        self.owner = owner
        self.wake = threading.Event()
        self.stopping = threading.Event()
        self.ready = threading.Event()
        self._interrupter: Interrupter | None = None
        self._slot: Slot | None = None
        self.seeking = False  # counted in the lane's ``seeking``
        self.in_flock = False  # blocked waiting for slot 0 of a lane of width one
        self._paused = False  # as the last drain found the queue
        self.thread = threading.Thread(
            target=self._main, name=f"executor-{lane.name}-{number}", daemon=True
        )

    @property
    def busy(self) -> bool:
        slot = self._slot
        return slot is not None and slot.held

    def stop_new(self) -> None:
        """Shutting down, or the lane narrowed or went (retired): let the running attempt end,
        start nothing more."""
        self.stopping.set()
        if self._interrupter is not None:
            self._interrupter.stop_new = True  # the drain claims nothing after this run
        self.wake.set()

    def interrupt(self) -> None:
        if self._interrupter is not None:
            self._interrupter.interrupt()

    def _main(self) -> None:
        ctx = RunnerContext(config=self.owner.config())
        self._interrupter = Interrupter(ctx)
        self.ready.set()
        self._safely(self._reap_if_free, ctx)
        while not self.stopping.is_set():
            self._safely(self._step, ctx)
        ctx.store.close()

    def _safely(self, action: Callable[[RunnerContext], None], ctx: RunnerContext) -> None:
        try:
            action(ctx)
        except DamagedState as exc:
            self.owner.failed(exc, ctx)
        except Exception:
            log.exception("executor error; retrying in %.0f s", ERROR_PAUSE_SECONDS)
            self.wake.wait(ERROR_PAUSE_SECONDS)

    def _reap_if_free(self, ctx: RunnerContext) -> None:
        # At start, and after every wait that ended without a poke: a `run-job` from cron may
        # have died meanwhile.
        reap_if_free(ctx)

    def _step(self, ctx: RunnerContext) -> None:
        """One wake-up: drain what is due, else sleep until the next run is due or a poke.

        A poke for a new run goes straight to ``drain_due``, which reaps and honours a pause
        itself; the pause is asked here only once a drain found it, so a paused queue with due
        runs sleeps instead of spinning, and a running queue pays nothing for it.
        """
        self.wake.clear()
        ctx.config = self.owner.config()
        next_due = ctx.store.next_due_at(lane=self.lane.name)
        if self._paused:
            self._paused = ctx.store.is_paused()
        if self._paused:
            self._sleep(ctx, None)  # until `queue resume` pokes
        elif next_due is not None and next_due <= time.time():
            if not self._drain(ctx):
                self._sleep(ctx, None)  # siblings have it; one of them wakes us when done
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
        if self.wake.wait(wait):
            return
        if next_due is not None and next_due <= time.time():
            self._drain(ctx)
        else:
            self._reap_if_free(ctx)

    def _drain(self, ctx: RunnerContext) -> bool:
        """Take a slot and drain the lane's due runs; False when enough siblings are at it."""
        assert self._interrupter is not None
        lane = self.lane
        # With one thread in the lane there is nobody to share with: no need to count.
        due = ctx.store.count_due(lane.name, time.time(), lane.width) if lane.width > 1 else 1
        if not lane.enter(self, due):
            return False
        try:
            self._slot = self._take_slot(ctx)
            if self._slot is not None and not self.stopping.is_set():
                slot = self._slot
                drain_due(
                    ctx,
                    self._interrupter,
                    slot,
                    observer=self._observe,
                    # A lane narrowed under us: a slot at or beyond its width is let go.
                    stay=lambda: slot.index < lane.width,
                )
        finally:
            if self._slot is not None:
                self._slot.release()
            lane.leave(self)
        self._paused = ctx.store.is_paused()
        return True

    def _observe(self, event: str, run: object, *rest: object) -> None:
        self.lane.seek(self, event == "end")

    def _take_slot(self, ctx: RunnerContext) -> Slot | None:
        """A free slot of the lane; waits while the lane is full (in other processes too).

        Width one waits in flock itself, as the single executor always did. A wider lane
        looks again every ``SLOT_POLL_SECONDS``, giving up once nothing is due any more.
        """
        lane = self.lane
        if lane.width <= 1:
            only = Slot(ctx.layout, lane.name, 0)
            self.in_flock = True
            try:
                acquire_interruptibly(only, None)
            finally:
                self.in_flock = False
            return only
        while not self.stopping.is_set():
            free = try_any(ctx.layout, lane.name, lane.width)
            if free is not None:
                return free
            next_due = ctx.store.next_due_at(lane=lane.name)
            if next_due is None or next_due > time.time():
                return None
            self.wake.wait(SLOT_POLL_SECONDS)
        return None
