"""Runs one attempt of a command (SPEC 5): spawn, wait, timeout, stop, kill, capture.

The child leads its own session and process group; the group is the run. The wait never
sleeps: one poll() watches the two pipes, a pidfd that becomes readable when the child
exits, and the caller's ``wake_fd``, with the next deadline as the timeout. A queue drains
runs back to back, so a run costs as few system calls as it can: poll() needs no kernel object
of its own (epoll would take five calls more), the pipes are read only when poll() says they
are readable (so they stay blocking), and /dev/null is opened once per process.

When the main process exits, the attempt is over: its exit status decides the outcome. The
pipes are read on until EOF, but a background process may hold them open
(``bash -c 'sleep 1000 & echo hi'``), so reading stops once they stay quiet for
``POST_EXIT_QUIET`` seconds (or at the deadline), and whatever is left of the group is then
terminated like a timed-out run: a run leaves nothing behind in its group. A descendant that
left the session and closed the pipes (``setsid daemon >log 2>&1 &``) was started on purpose
and outlives a successful run; after a timeout, stop or interrupt it is found by its
``BATCH_RUN_ID`` and ended too (see ``procs``).
"""

from __future__ import annotations

import math
import os
import select
import selectors
import signal
import subprocess
import time
from collections.abc import Callable

from batch_runner.execution import procs
from batch_runner.execution.capture import OutputCapture
from batch_runner.execution.judge import CANCEL_VERDICTS, judge, start_error
from batch_runner.execution.outcome import AttemptOutcome
from batch_runner.logs import get_logger
from batch_runner.valuetype import REQUIRED, record

TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.execution.judge import Status

log = get_logger("batch_runner")

READ_SIZE = 64 * 1024
# After the main process exits: how long the pipes may stay quiet before we stop waiting for EOF.
POST_EXIT_QUIET = 0.1
# After the run's processes are gone: the longest we go on reading what is left in the pipes.
FINAL_DRAIN = 1.0
# How long to wait for a SIGKILLed child to be reapable before giving up on its exit status.
REAP_WAIT = 5.0
# A child still running after this long is reported to ``on_started``; one that is done sooner
# is not: its pid comes with the outcome, which spares a queue of short runs a write each.
STARTED_REPORT_DELAY = 0.02


class AttemptRequest(
    record(
        "AttemptRequest",
        run_id=REQUIRED,
        job_name=REQUIRED,
        attempt=REQUIRED,
        argv=REQUIRED,  # list[str]
        cwd=REQUIRED,
        env=REQUIRED,  # the full child environment
        timeout=REQUIRED,  # seconds
        kill_grace=REQUIRED,  # seconds between SIGTERM and SIGKILL
        log_path=REQUIRED,  # the run log file (its folders may not exist yet)
        run_log_max_bytes=REQUIRED,
        output_max_bytes=REQUIRED,
    )
):
    """Everything one attempt needs; built by the runner from the run's frozen spec."""

    __slots__ = ()


def execute(
    request: AttemptRequest,
    *,
    on_spawned: Callable[[int], None] | None = None,
    on_started: Callable[[int], None] | None = None,
    cancel: Callable[[], str | None] | None = None,
    wake_fd: int | None = None,
    cancel_poll_interval: float = 1.0,
) -> AttemptOutcome:
    """Run one attempt to its end. Only the caller's own callbacks can raise out of here.

    ``on_spawned(pid)`` is called as soon as the child is running (not before: a line the caller
    writes to a pipe wakes its reader, which would compete with the child's exec), and
    ``on_started(pid)`` once the child has run for ``STARTED_REPORT_DELAY`` s.
    ``cancel`` is asked whenever ``wake_fd`` is readable and at least every
    ``cancel_poll_interval`` s; returning "stopped" or "interrupted" ends the attempt so.
    """
    started_at = time.time()
    limits = (request.run_log_max_bytes, request.output_max_bytes)
    with OutputCapture(request.log_path, *limits, open_log=False) as capture:
        try:
            proc, out_fd, err_fd = _spawn(request)
        except (OSError, ValueError) as exc:
            capture.run_log.open()
            reason = start_error(request.argv, request.cwd, exc)
            return _outcome("error", None, reason, capture, started_at, None)
        hooks = _Hooks(
            on_spawned, on_started, cancel, wake_fd if cancel else None, cancel_poll_interval
        )
        verdict, returncode = _supervise(proc, (out_fd, err_fd), request, capture, hooks)
    status, reason = judge(verdict, returncode, request.timeout)
    exit_code = None if returncode is None or returncode < 0 else returncode
    return _outcome(status, exit_code, reason, capture, started_at, proc.pid)


class _Hooks(
    record(
        "_Hooks",
        on_spawned=REQUIRED,
        on_started=REQUIRED,
        cancel=REQUIRED,
        wake_fd=REQUIRED,
        poll_interval=REQUIRED,
    )
):
    """The caller's ways into a running attempt: on_spawned(pid), on_started(pid), cancel(),
    a wake fd."""

    __slots__ = ()


def _supervise(
    proc: subprocess.Popen[bytes],
    pipe_fds: tuple[int, int],
    request: AttemptRequest,
    capture: OutputCapture,
    hooks: _Hooks,
) -> tuple[str | None, int | None]:
    try:
        try:
            attempt = _Attempt(proc, pipe_fds, request, capture, hooks)
        except BaseException:
            for fd in pipe_fds:
                os.close(fd)
            raise
        try:
            if hooks.on_spawned is not None:
                hooks.on_spawned(proc.pid)
            # Created while the child starts up, in parallel: creating a file can cost this
            # as much as starting `true`. The child's output waits in its pipes meanwhile.
            capture.run_log.open()
            return attempt.run()
        finally:
            attempt.close()
    except BaseException:
        _abort(proc, request.run_id)  # a callback's error, KeyboardInterrupt: kill, then raise
        raise


def _abort(proc: subprocess.Popen[bytes], run_id: str) -> None:
    """Never leave an unsupervised job behind: no grace, the exception is on its way."""
    procs.terminate_run(proc.pid, run_id, 0.0, own_group=True)
    try:
        proc.wait(timeout=REAP_WAIT)
    except subprocess.TimeoutExpired:
        log.warning("run %s: pid %d cannot be reaped", run_id, proc.pid)


def _spawn(request: AttemptRequest) -> tuple[subprocess.Popen[bytes], int, int]:
    """Start the child; returns it and the read ends of its stdout and stderr pipes.

    The pipes are ours rather than Popen's: raw fds need no file objects around them.
    """
    if not request.argv:
        raise ValueError("empty command")
    out_read, out_write = os.pipe2(os.O_CLOEXEC)
    try:
        err_read, err_write = os.pipe2(os.O_CLOEXEC)
    except OSError:
        os.close(out_read)
        os.close(out_write)
        raise
    try:
        proc = subprocess.Popen(
            request.argv,
            cwd=request.cwd,
            env=request.env,
            stdin=_dev_null(),
            stdout=out_write,
            stderr=err_write,
            close_fds=True,
            start_new_session=True,
        )
    except BaseException:
        os.close(out_read)
        os.close(err_read)
        raise
    finally:
        os.close(out_write)  # only the child writes: its exit brings EOF
        os.close(err_write)
    return proc, out_read, err_read


_DEV_NULL: list[int] = []


def _dev_null() -> int:
    """A read-only /dev/null for every child's stdin, opened once (close-on-exec here)."""
    if not _DEV_NULL:
        _DEV_NULL.append(os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC))
    return _DEV_NULL[0]


def _outcome(
    status: Status,
    exit_code: int | None,
    reason: str | None,
    capture: OutputCapture,
    started_at: float,
    pid: int | None,
) -> AttemptOutcome:
    tail = capture.stderr_tail()
    error = None if reason is None else (f"{reason}\n{tail}" if tail else reason)
    return AttemptOutcome(
        status=status,
        exit_code=exit_code,
        error=error,
        output=capture.output(),
        output_truncated=capture.truncated,
        started_at=started_at,
        ended_at=time.time(),
        pid=pid,
    )


class _Attempt:
    """The wait on one running child: its pipes, its exit, the caller's wake-ups."""

    def __init__(
        self,
        proc: subprocess.Popen[bytes],
        pipe_fds: tuple[int, int],  # the read ends of the child's stdout and stderr
        request: AttemptRequest,
        capture: OutputCapture,
        hooks: _Hooks,
    ) -> None:
        self.proc, self.request, self.capture = proc, request, capture
        self.cancel, self.poll_interval = hooks.cancel, hooks.poll_interval
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
            self._end_processes()
            return verdict, self._reap()
        # Reaped at once: the pgid stays reserved while the group has members, and once it has
        # none, the pid will not come round again before the check below.
        returncode = self._reap()
        self.last_data = time.monotonic()  # the quiet window starts at the exit
        self._drain(self.deadline, cancellable=True)
        if self.pipes or procs.group_alive(self.proc.pid):
            self._end_processes()
        return None, returncode

    def _wait_for_exit(self) -> str | None:
        while not self.exited:
            now = time.monotonic()
            if now >= self.deadline:
                return "timeout"
            verdict = self._ask_cancel(now)
            if verdict is not None:
                return verdict
            if now >= self.report_at:
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

    def _end_processes(self) -> None:
        """One SIGTERM, read while the run dies, SIGKILL whatever is left after kill_grace."""
        grace_end = time.monotonic() + self.request.kill_grace
        procs.signal_run(self.proc.pid, self.request.run_id, signal.SIGTERM)
        while (self.pipes or not self.exited) and time.monotonic() < grace_end:
            self._select(grace_end)
        if not procs.kill_remaining(self.proc.pid, self.request.run_id, grace_end):
            log.warning("run %s: processes survived SIGKILL", self.request.run_id)
        self.last_data = time.monotonic()
        self._drain(self.last_data + FINAL_DRAIN, cancellable=False)

    def _ask_cancel(self, now: float) -> str | None:
        if self.cancel is None or not (self.woken or now >= self.next_check):
            return None
        self.woken, self.next_check = False, now + self.poll_interval
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
