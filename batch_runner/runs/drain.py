"""The one path every run takes: enqueue, wait for a slot of its lane, claim, execute, record.

Runs live in the state database as a queue, each in a lane. Whoever holds a slot of a lane (the
scheduler, a ``run-job`` from cron, a queue worker) claims the lane's next due run in order of
priority, due time and arrival, and executes it; so a lane never runs more than its width at
once across every process on a log dir. Without lanes there is one lane, ``default``, of one
slot (the executor lock): one run at a time, in order.
"""

from __future__ import annotations

import time

from batch_runner.logs import get_logger
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.execute import Observer, execute_run
from batch_runner.runs.interrupt import Interrupter, WaitInterrupted
from batch_runner.state.slots import Slot, try_any
from batch_runner.state.store import FINISHED_STATUSES

log = get_logger("batch_runner")

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any


def drain_due(
    ctx: RunnerContext,
    interrupter: Interrupter | None,
    slot: Slot,
    until_run: str | None = None,
    observer: Observer | None = None,
    stay: Callable[[], bool] | None = None,
    own_first: bool = False,
) -> None:
    """Run the due runs of ``slot``'s lane one by one while holding ``slot``; stop after
    ``until_run`` ends, or once ``stay`` says to let the lane go (a worker giving another lane
    its turn, a slot beyond a narrowed lane's width). ``own_first``: ``until_run`` before the
    runs due ahead of it (a lane wider than one, whose other slots are for those).

    While the queue is paused only ``until_run`` (a foreground ``run-job``) may start.
    """
    # Recovery rests on it: a run is recorded in a slot only by the holder of that slot.
    assert slot.held, f"draining {slot!r} without holding it"
    _reap_orphans(ctx, slot)
    claim = _Claimer(ctx, interrupter, slot, until_run, stay, own_first)
    if until_run is None:
        _drain_handing_off(ctx, interrupter, slot, claim, observer)
        return
    run = claim()
    while run is not None:
        if until_run is not None and run["run_id"] == until_run:
            execute_run(ctx, run, interrupter, observer)
            return
        # The next claim shares the commit that ends this run, unless ending it sends a
        # heartbeat or a notice: the next run must not wait claimed while those go out.
        quiet_end = run["kind"] != "job" and not run["spec"].get("ping_url")
        # Only a first attempt is claimed so: one put back (below) is then exactly as it was.
        _, run = execute_run(
            ctx, run, interrupter, observer, claim.first_attempt if quiet_end else None
        )
        if run is None:
            run = claim()  # the queue's end, a retry next, or an end that was not quiet
        elif interrupter and interrupter.stop_new:
            ctx.store.unclaim(run["run_id"], ctx.pid)  # a signal came after the claim
            return


def _drain_handing_off(
    ctx: RunnerContext,
    interrupter: Interrupter | None,
    slot: Slot,
    claim: _Claimer,
    observer: Observer | None,
) -> None:
    """``drain_due`` for a slot's runner (a worker, a scheduler's lane): each run's
    bookkeeping is written while the next one starts (``runs.handoff``)."""
    from batch_runner.runs.handoff import Handoff, NotStarted

    handoff = Handoff(ctx, slot, reserving=ctx.config.settings.width(slot.lane) == 1)
    try:
        run = handoff.claim(claim)
        while run is not None:
            try:
                execute_run(ctx, run, interrupter, observer, handoff=handoff)
            except NotStarted:
                pass  # put back: another run ranks first now, or it was removed
            if handoff.error is not None:
                raise handoff.error
            go_on = claim.may_go_on()
            run = handoff.take_reserved() if go_on else None
            if run is None and go_on:
                run = handoff.claim(claim)
    except BaseException:
        try:
            handoff.close()
        except Exception:  # the first error is the one to tell; recovery settles the rest
            log.exception("could not record the drain's last runs")
        raise
    handoff.close()


class _Claimer:
    """The next claim of a drain: nothing once a signal said to start nothing new."""

    def __init__(
        self,
        ctx: RunnerContext,
        interrupter: Interrupter | None,
        slot: Slot,
        until_run: str | None,
        stay: Callable[[], bool] | None = None,
        own_first: bool = False,
    ) -> None:
        self.ctx, self.interrupter, self.until_run = ctx, interrupter, until_run
        self.slot, self.stay, self.own_first = slot, stay, own_first

    def may_go_on(self) -> bool:
        """Whether another run may start: no signal said to stop, the lane is still ours."""
        if self.interrupter and self.interrupter.stop_new:
            return False
        return self.stay is None or self.stay()

    def __call__(self, first_attempt_only: bool = False) -> dict[str, Any] | None:
        if not self.may_go_on():
            return None
        return self.ctx.store.claim_next(
            time.time(),
            self.ctx.pid,
            self.ctx.host,
            foreground_run_id=self.until_run,
            first_attempt_only=first_attempt_only,
            lane=self.slot.lane,
            slot=self.slot.index,
            foreground_first=self.own_first,
        )

    def first_attempt(self) -> dict[str, Any] | None:
        return self(first_attempt_only=True)


def drain_one(ctx: RunnerContext, interrupter: Interrupter | None, slot: Slot) -> str | None:
    """One attempt of the next due run of ``slot``'s lane (``queue run``); None when nothing
    is due or the queue is paused. The caller holds ``slot``.
    """
    assert slot.held, f"draining {slot!r} without holding it"
    _reap_orphans(ctx, slot)
    run = ctx.store.claim_next(time.time(), ctx.pid, ctx.host, lane=slot.lane, slot=slot.index)
    return None if run is None else execute_run(ctx, run, interrupter)[0]


def run_to_completion(
    ctx: RunnerContext,
    run_id: str,
    *,
    lane: str,
    width: int,
    held: Slot | None = None,
    interrupter: Interrupter | None = None,
) -> dict[str, Any]:
    """Wait for a slot of ``lane``, run what is due ahead of ``run_id`` there, then ``run_id``
    and its retries. ``held``: a slot of the lane the caller has taken already.

    Returns the run as it ended (still ``pending`` only if a signal cut the wait short).
    """
    run = ctx.store.get_run(run_id)
    while True:
        if run is None or run["status"] in FINISHED_STATUSES:
            return run or {}
        if interrupter and interrupter.stop_new:
            return run
        if run["status"] == "running" and held is None:
            # Another slot's runner took it (a lane wider than one): wait for its end without
            # taking a slot, which another run could use. Its runner may die meanwhile.
            _reap_orphans(ctx, None)
            _pause(SLOT_POLL_SECONDS, interrupter)
            run = ctx.store.get_run(run_id)
            continue
        slot = held or acquire_slot(ctx, lane, width, interrupter)
        held = None
        try:
            # One wide, it runs what is due ahead of its run first, in order, as it always
            # did. Wider, it starts its own: the lane's other slots are for the rest, and
            # another run-job waiting for one of those would otherwise wait for this one.
            drain_due(ctx, interrupter, slot, until_run=run_id, own_first=width > 1)
        finally:
            slot.release()
        run = ctx.store.get_run(run_id)
        if run is not None and run["status"] == "pending" and _sleep_until_due(run, interrupter):
            run = ctx.store.get_run(run_id)


# How often a runner waiting for a slot of a wide lane looks again (a full lane of width 1 is
# waited for in flock itself, which wakes the moment the holder lets go).
SLOT_POLL_SECONDS = 0.1


def acquire_slot(
    ctx: RunnerContext, lane: str, width: int, interrupter: Interrupter | None
) -> Slot:
    """Wait for a slot of ``lane``; a signal handled by ``interrupter`` ends the wait."""
    if width <= 1:
        slot = Slot(ctx.layout, lane, 0)
        acquire_interruptibly(slot, interrupter)
        return slot
    while True:
        taken = try_any(ctx.layout, lane, width)
        if taken is not None:
            return taken
        if interrupter and interrupter.stop_new:
            raise WaitInterrupted("interrupted before a slot was free")
        _pause(SLOT_POLL_SECONDS, interrupter)


def acquire_interruptibly(lock: Slot, interrupter: Interrupter | None) -> bool:
    """Wait for ``lock``; a signal handled by ``interrupter`` ends the wait."""
    if interrupter is None or lock.held:
        return lock.acquire()
    interrupter.in_blocking_wait = True
    try:
        if interrupter.stop_new:
            raise WaitInterrupted("interrupted before the executor was free")
        return lock.acquire(wait=True)
    finally:
        interrupter.in_blocking_wait = False


def _pause(seconds: float, interrupter: Interrupter | None) -> None:
    if interrupter is None:
        time.sleep(seconds)
    else:
        interrupter.sleep(seconds)


def _sleep_until_due(run: dict[str, Any], interrupter: Interrupter | None) -> bool:
    """A retry waiting out its backoff does not hold a slot: sleep with the slot released
    (a second at most, then look again); False when it is due already."""
    delay = min(max(run["due_at"] - time.time(), 0.0), 1.0)
    if delay <= 0:
        return False
    _pause(delay, interrupter)
    return True


def _reap_orphans(ctx: RunnerContext, slot: Slot | None) -> None:
    """Before a claim: runs left ``running`` by a dead runner, in ``slot`` (held by the caller:
    certainly orphans) or in any slot nobody holds."""
    running = ctx.store.runs_with_status("running", "reserved")
    if running:  # rare without lanes: recovery's code is loaded only then
        from batch_runner.runs.recovery import reap_if_free

        reap_if_free(ctx, () if slot is None else (slot,), running)
