"""Turning signals, shutdown and stop requests into the answer a running attempt asks for."""

from __future__ import annotations

import os
import signal

from batch_runner.runs.context import RunnerContext


class WaitInterrupted(Exception):
    """A signal arrived while waiting for the executor lock."""


class Interrupter:
    """Turns signals, shutdown and stop requests into the executor's ``cancel`` answer.

    ``stop_new`` means start nothing new; ``interrupt_now`` means end the running attempt as
    ``interrupted``. A signal handler only sets flags and writes a byte to a pipe; the executor
    wakes on the pipe, asks ``cancel()``, and stops the attempt itself.
    """

    def __init__(self, ctx: RunnerContext) -> None:
        self.ctx = ctx
        self.stop_new = False
        self.interrupt_now = False
        self.in_blocking_wait = False
        self.read_fd, self.write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        self.run_id: str | None = None

    def install(self) -> None:
        """For a foreground ``run-job``: any of these signals ends the run at once."""
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(signum, self._on_signal)

    def _on_signal(self, signum: int, frame: object) -> None:
        self.interrupt()
        if self.in_blocking_wait:
            # Python retries an interrupted flock() unless the handler raises; only a wait for
            # the lock is interrupted this way, never a database write.
            raise WaitInterrupted(f"interrupted by signal {signum} while waiting")

    def interrupt(self) -> None:
        self.stop_new = self.interrupt_now = True
        self.poke()

    def poke(self) -> None:
        """Wake the executor so it asks ``cancel()`` now (safe from a signal handler)."""
        try:
            os.write(self.write_fd, b"x")
        except OSError:
            pass  # the pipe is full: the executor has wake-ups pending already

    def sleep(self, seconds: float) -> None:
        """Sleep, waking early when a signal arrives (the handler writes to the pipe)."""
        import select

        select.select([self.read_fd], [], [], seconds)

    def cancel(self) -> str | None:
        if self.interrupt_now:
            return "interrupted"
        if self.run_id is not None:
            run = self.ctx.store.get_run(self.run_id)
            if run is not None and run["stop_requested"]:
                return "stopped"
        return None
