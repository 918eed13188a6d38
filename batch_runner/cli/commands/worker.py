"""``queue run`` and ``queue worker``: draining the queue from cron or a terminal."""

from __future__ import annotations

import sys
import time

from batch_runner.cli import render
from batch_runner.errors import EXIT_FAILED, EXIT_OK, EXIT_TIMEOUT, Busy
from batch_runner.runs.context import RunnerContext

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

    from batch_runner.state.slots import Slot

EXIT_BY_STATUS = {"success": EXIT_OK, "timeout": EXIT_TIMEOUT}
IDLE_POLL_SECONDS = 0.5  # --forever: how soon a run added by another process is noticed


def run_next(ctx: RunnerContext) -> int:
    """Run the next due run's attempt, if any; exit with its outcome (0 when nothing was due).

    The lane is the first with a due run and a free slot (lanes in the order of their best due
    run); busy (75) only when every lane with a due run is full.
    """
    from batch_runner.config.lanes import lane_full
    from batch_runner.runs.drain import drain_one
    from batch_runner.runs.interrupt import Interrupter

    lanes = _due_lanes(ctx) or ["default"]
    slot = _free_slot(ctx, lanes)
    if slot is None:
        raise Busy(
            f"{lane_full(ctx.config.settings, lanes[0])}; nothing was started"
            if len(lanes) == 1
            else f"every lane with a due run is full ({', '.join(lanes)}); nothing was started"
        )
    interrupter = Interrupter(ctx)
    interrupter.install()
    try:
        status = drain_one(ctx, interrupter, slot)
    finally:
        slot.release()
    if status is None:
        if ctx.store.is_paused():
            print(
                "the queue is paused; nothing was started (`batch_runner queue resume`)",
                file=sys.stderr,
            )
        return EXIT_OK
    return EXIT_BY_STATUS.get(status, EXIT_FAILED)


def work(ctx: RunnerContext, *, forever: bool) -> int:
    """Drain the queue until nothing is due (``forever``: keep waiting for new runs).

    Without ``forever`` it still waits for the retries of runs it started, but not for runs
    delayed into the future: those are for the next worker or the scheduler. One attempt at a
    time: it drains the due runs of the first lane with a free slot, then looks again.
    """
    from batch_runner.execution.reaper import reap_zombies
    from batch_runner.runs.drain import SLOT_POLL_SECONDS, acquire_slot, drain_due
    from batch_runner.runs.interrupt import Interrupter, WaitInterrupted
    from batch_runner.runs.recovery import reap_if_free

    interrupter = Interrupter(ctx)
    interrupter.install()
    display = Display(ctx)
    turns = _Turns(ctx)
    try:
        while not interrupter.stop_new:
            # Not only before a drain: a run orphaned by a killed worker must not wait,
            # shown as running, until something else is due.
            reap_if_free(ctx)
            # A daemon an earlier run left comes back to us (we are its subreaper, or PID 1):
            # once it exits, it must not stay a zombie while we wait.
            reap_zombies()
            paused = ctx.store.is_paused()
            lanes = [] if paused else turns.order(_due_lanes(ctx))
            if lanes:
                slot = _free_slot(ctx, lanes)
                if slot is None and len(lanes) == 1 and not ctx.config.settings.has_lanes:
                    # No lanes: wait in flock for the lane's slot (the executor lock, or a
                    # lane left from an earlier config), which wakes the moment it is free.
                    # With lanes, look again soon: another lane may get a due run.
                    width = ctx.config.settings.width(lanes[0])
                    slot = acquire_slot(ctx, lanes[0], width, interrupter)
                if slot is None:
                    interrupter.sleep(SLOT_POLL_SECONDS)  # every lane with a due run is full
                    continue
                try:
                    drain_due(
                        ctx, interrupter, slot, observer=display.observe, stay=turns.start(slot)
                    )
                finally:
                    slot.release()
                continue
            next_due = None if paused else ctx.store.next_due_at(retries_only=not forever)
            if not forever and (paused or next_due is None):
                display.idle(paused, ctx.store.next_due_at())
                break
            display.waiting(next_due)
            wait = IDLE_POLL_SECONDS if next_due is None else next_due - time.time()
            interrupter.sleep(min(max(wait, 0.0), IDLE_POLL_SECONDS))
    except WaitInterrupted:
        pass
    finally:
        display.close()
    # Like run-job: a worker that drained a run that did not succeed exits 1, so a cron line
    # or a script running it sees the failure.
    return EXIT_FAILED if display.failed else EXIT_OK


class _Turns:
    """Lanes take turns in a worker: after ``TURN_SECONDS`` in one lane it lets the lane go if
    another has a due run, and tries the others first. Without it, a steady stream into one
    lane would keep a worker from every other (priority orders runs within a lane only)."""

    TURN_SECONDS = 1.0

    def __init__(self, ctx: RunnerContext) -> None:
        self.ctx = ctx
        self.last: str | None = None

    def order(self, lanes: list[str]) -> list[str]:
        """``lanes`` with the one just served last."""
        last = self.last
        if last is not None and last in lanes[:-1]:
            lanes = [lane for lane in lanes if lane != last] + [last]
        return lanes

    def start(self, slot: Slot) -> Callable[[], bool]:
        """Whether to keep draining ``slot``'s lane, asked before each claim."""
        self.last = slot.lane
        turn_ends = [time.monotonic() + self.TURN_SECONDS]

        def stay() -> bool:
            now = time.monotonic()
            if now < turn_ends[0]:
                return True  # most runs: no query at all
            if any(lane != slot.lane for lane in _due_lanes(self.ctx)):
                return False
            turn_ends[0] = now + self.TURN_SECONDS  # nobody else waits: another turn
            return True

        return stay


def _due_lanes(ctx: RunnerContext) -> list[str]:
    """The lanes with a run due now, the lane of the best such run first."""
    return [lane for lane, due, _ in ctx.store.lanes_waiting(time.time()) if due]


def _free_slot(ctx: RunnerContext, lanes: list[str]) -> Slot | None:
    from batch_runner.state.slots import try_any

    for lane in lanes:
        slot = try_any(ctx.layout, lane, ctx.config.settings.width(lane))
        if slot is not None:
            return slot
    return None


class Display:
    """A live status line on a terminal (rich); one plain line per event when piped."""

    def __init__(self, ctx: RunnerContext) -> None:
        self.ctx = ctx
        self.failed = 0  # runs drained that ended other than success
        self.tty = sys.stdout.isatty()
        self._status: Any = None
        if self.tty:
            from rich.console import Console

            self.console = Console()
            self._status = self.console.status(_text("waiting for runs"))
            self._status.start()

    def observe(self, event: str, run: dict[str, Any], ended: str = "", final: bool = True) -> None:
        what = f"{run['job_name']} (run {run['run_id']}, attempt {run['attempt']})"
        line = f"start {what}" if event == "start" else f"end {what}: {ended}"
        failed = event == "end" and not ended.startswith("success")
        if event == "end" and final:
            self.failed += failed
        level = "WARNING" if failed else "INFO"
        if self._status is None:
            self._print(line, level)  # piped: no status line, so no count to keep up to date
            return
        waiting = self.ctx.store.count_pending()
        self._emit(
            line,
            f"running {what} — {waiting} waiting" if event == "start" else f"{waiting} waiting",
            level,
        )

    def waiting(self, next_due: float | None) -> None:
        if self._status is not None:
            when = (
                ""
                if next_due is None
                else time.strftime(" (next at %H:%M:%S)", time.localtime(next_due))
            )
            self._status.update(_text(f"waiting for runs{when}"))

    def idle(self, paused: bool, later: float | None) -> None:
        if paused:
            text = "the queue is paused; `batch_runner queue resume` lets runs start"
        elif later is None:
            text = "the queue is empty"
        else:
            count = self.ctx.store.count_pending()
            when = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(later))
            text = (
                f"nothing is due; {count} run{'s wait' if count != 1 else ' waits'} for a "
                f"later time (the next at {when})"
            )
        self._emit(text, text)

    def _emit(self, line: str, status_line: str, level: str = "INFO") -> None:
        if self._status is None:
            self._print(line, level)
            return
        # The scheduler's line format, not rich's log (which ends each line with worker.py:N).
        self.console.print(_text(_stamped(line, level)))
        self._status.update(_text(render.shown(status_line)))

    @staticmethod
    def _print(line: str, level: str = "INFO") -> None:
        # One write per line even unbuffered (PYTHONUNBUFFERED): print() writes the newline apart.
        sys.stdout.write(_stamped(line, level) + "\n")
        sys.stdout.flush()

    def close(self) -> None:
        if self._status is not None:
            self._status.stop()


def _text(line: str) -> Any:
    """``line`` for rich as it is: a str would be read as markup and emoji codes, and a label
    may be "[/x]" (a MarkupError that ended the worker) or ":smile:"."""
    from rich.text import Text  # only on a terminal, where rich is loaded

    return Text(line)


def _stamped(line: str, level: str) -> str:
    """A line as the scheduler logs it: ``2026-12-06T03:29:16+0000 INFO end ...``.

    Always one line: a label stored before labels were checked may hold a line break, which
    would print a forged line after it.
    """
    return f"{time.strftime('%Y-%m-%dT%H:%M:%S%z')} {level} {render.shown(line)}"
