"""Waiting on one running child: its pipes, its exit, deadlines and the caller's wake-ups.

One poll() watches the two pipes, a pidfd that becomes readable when the child exits, and the
caller's ``wake_fd``, with the next deadline as the timeout: the wait never sleeps. The pipes
are read only when poll() says they are readable (so they stay blocking).
"""

from __future__ import annotations

import math
import os
import select
import selectors
import signal
import subprocess
import time

from batch_runner.execution import procs, reaper
from batch_runner.execution.capture import OutputCapture
from batch_runner.execution.judge import CANCEL_VERDICTS
from batch_runner.logs import get_logger
from batch_runner.valuetype import Record

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    from batch_runner.execution.outcome import AttemptRequest

log = get_logger("batch_runner")

READ_SIZE = 64 * 1024
# After the main process exits: how long the pipes may stay quiet before we stop waiting for EOF.
POST_EXIT_QUIET = 0.1
# After the main process exits, how long a member of the run's group may take to leave it on
# purpose (``setsid daemon &``: forked, not detached yet) before the group is ended as left over.
DETACH_GRACE = 0.25
_DETACH_POLL = 0.01
# After the run's processes are gone: the longest we go on reading what is left in the pipes.
FINAL_DRAIN = 1.0
# How long to wait for a SIGKILLed child to be reapable before giving up on its exit status.
REAP_WAIT = 5.0
# A child still running after this long is reported to ``on_started``; one that is done sooner
# is not: its pid comes with the outcome, which spares a queue of short runs a write each.
STARTED_REPORT_DELAY = 0.02


class Hooks(Record):
    """The caller's ways into a running attempt."""

    on_spawned: Callable[[int], None] | None  # called with the pid once the child runs
    on_started: Callable[[int], None] | None  # ... once it has run STARTED_REPORT_DELAY s
    cancel: Callable[[], str | None] | None  # "stopped" or "interrupted" ends the attempt
    wake_fd: int | None  # readable when cancel() should be asked now
    poll_interval: float  # cancel() is asked at least this often
    # Whether a run of this id exists: an orphan carrying another run's id is spared only then.
    # Asked only when the attempt is ended (timeout, stop) and such an orphan is found.
    is_known_run: Callable[[str], bool] | None = None


class Attempt:
    """The wait on one running child: its pipes, its exit, the caller's wake-ups."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        pipe_fds: tuple[int, int],  # the read ends of the child's stdout and stderr
        request: AttemptRequest,
        capture: OutputCapture,
        hooks: Hooks,
    ) -> None:
        self.proc, self.request, self.capture = proc, request, capture
        self.cancel, self.poll_interval = hooks.cancel, hooks.poll_interval
        self.is_known_run = hooks.is_known_run
        now = time.monotonic()
        self.deadline = now + request.timeout
        self.next_check = now + hooks.poll_interval if hooks.cancel else math.inf
        self.on_started = hooks.on_started
        self.report_at = now + STARTED_REPORT_DELAY if hooks.on_started else math.inf
        self.woken = self.exited = False
        self.last_data = now
        self.selector = selectors.PollSelector()
        self.pipe_fds = pipe_fds
        self.pipes: dict[int, bool] = {}  # pipe fd not at EOF yet -> is stderr
        for fd, is_stderr in zip(pipe_fds, (False, True), strict=True):
            self.pipes[fd] = is_stderr
            self.selector.register(fd, selectors.EVENT_READ, "pipe")
        self.exit_fd = procs.exit_fd(proc.pid)
        self.selector.register(self.exit_fd, selectors.EVENT_READ, "exit")
        if hooks.wake_fd is not None:
            self.selector.register(hooks.wake_fd, selectors.EVENT_READ, "wake")

    def run(self) -> tuple[str | None, int | None]:
        """Wait for the end; returns the verdict ("timeout", a cancel answer or None) and rc."""
        verdict = self._wait_for_exit()
        if verdict is not None:
            # Ended by us: whatever the job left behind goes too, however it detached.
            self._end_processes(reaper.RunScope(self.proc, self.is_known_run))
            return verdict, self._reap()
        # Reaped at once: the pgid stays reserved while the group has members, and once it has
        # none, the pid will not come round again before the check below.
        returncode = self._reap()
        self.last_data = time.monotonic()  # the quiet window starts at the exit
        self._drain(self.deadline, cancellable=True)
        if self.pipes or self._group_stays():
            self._end_processes(None)
        return None, returncode

    def _group_stays(self) -> bool:
        """Whether members stay in the run's group once its main process has exited.

        A daemon started on purpose outlives a successful run, but ``setsid`` takes effect only
        once the forked child runs it: without a moment's grace a busy machine would end the
        daemon as a left-over member. A background job that stays in the group is ended
        ``DETACH_GRACE`` later, as before.
        """
        deadline = time.monotonic() + DETACH_GRACE
        while procs.group_alive(self.proc.pid):
            if time.monotonic() >= deadline:
                return True
            time.sleep(_DETACH_POLL)
        return False

    def _wait_for_exit(self) -> str | None:
        while not self.exited:
            now = time.monotonic()
            if now >= self.deadline:
                return "timeout"
            verdict = self._ask_cancel(now)
            if verdict is not None:
                return verdict
            if now >= self.report_at and self.on_started is not None:
                self.report_at = math.inf
                self.on_started(self.proc.pid)
            self._select(min(self.deadline, self.next_check, self.report_at))
        return None

    def _drain(self, deadline: float, *, cancellable: bool) -> None:
        """Read until EOF, until the pipes stay quiet a moment, or until ``deadline``."""
        while self.pipes:
            now = time.monotonic()
            until = min(self.last_data + POST_EXIT_QUIET, deadline)
            if now >= until or (cancellable and self._ask_cancel(now) is not None):
                return
            self._select(min(until, self.next_check) if cancellable else until)

    def _end_processes(self, scope: reaper.RunScope | None) -> None:
        """One SIGTERM, read while the run dies, SIGKILL whatever is left after kill_grace."""
        grace_end = time.monotonic() + self.request.kill_grace
        procs.signal_run(self.proc.pid, self.request.run_id, signal.SIGTERM, scope)
        while (self.pipes or not self.exited) and time.monotonic() < grace_end:
            self._select(grace_end)
        if not procs.kill_remaining(self.proc.pid, self.request.run_id, grace_end, scope):
            log.warning("run %s: processes survived SIGKILL", self.request.run_id)
        self.last_data = time.monotonic()
        self._drain(self.last_data + FINAL_DRAIN, cancellable=False)

    def _ask_cancel(self, now: float) -> str | None:
        if self.cancel is None or not (self.woken or now >= self.next_check):
            return None
        self.woken, self.next_check = False, now + self.poll_interval
        # At the same pace: a run of hours leaves no exited orphan a zombie till its end.
        reaper.reap_zombies()
        try:
            verdict = self.cancel()
        except Exception:  # a failed check must not end the job; the next one may work
            log.exception("run %s: checking for a stop request failed", self.request.run_id)
            return None
        return verdict if verdict in CANCEL_VERDICTS else None

    def _select(self, until: float) -> None:
        timeout = None if until == math.inf else max(until - time.monotonic(), 0.0)
        for key, _events in self.selector.select(timeout):
            if key.data == "pipe":
                self._read(key.fd)
            elif key.data == "exit":
                self.exited = True
                self.selector.unregister(key.fd)
            else:
                self._read_wake(key.fd)

    def _read(self, fd: int) -> None:
        try:
            data = os.read(fd, READ_SIZE)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if data:
            self.capture.feed(data, stderr=self.pipes[fd])
            self.last_data = time.monotonic()
        else:
            self.selector.unregister(fd)
            del self.pipes[fd]

    def _read_wake(self, fd: int) -> None:
        self.woken = True
        try:
            if not os.read(fd, 4096):
                self.selector.unregister(fd)  # the writer is gone: no more wake-ups
        except BlockingIOError:
            pass

    def _reap(self) -> int | None:
        if not self.exited:
            ready, _, _ = select.select([self.exit_fd], [], [], REAP_WAIT)
            if not ready:
                log.warning("run %s: pid %d cannot be reaped", self.request.run_id, self.proc.pid)
                return None
            self.exited = True
        return self.proc.wait()

    def close(self) -> None:
        self.selector.close()
        os.close(self.exit_fd)
        for fd in self.pipe_fds:
            os.close(fd)
