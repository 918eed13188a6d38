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
``POST_EXIT_QUIET`` seconds (or at the deadline), and whatever is still in the group
``DETACH_GRACE`` seconds later is terminated like a timed-out run: a run leaves nothing
behind in its group. A descendant that left the session and closed the pipes
(``setsid daemon >log 2>&1 &``) was started on purpose and outlives a successful run; after
a timeout, stop or interrupt it is found by its ``BATCH_RUN_ID`` and ended too (see ``procs``),
or, when it dropped its environment, as a descendant of the job or an orphan the job left to
the runner, which is their child subreaper (see ``reaper``).

Attempts may execute at once, one per thread (the scheduler's lanes). Whatever they share is
safe so: the pipes are close-on-exec and every child closes the fds it did not ask for, so
no pipe end of one attempt leaks into another's child; /dev/null is opened under a lock; and
the reaper tells their orphans apart by when each was born.
"""

from __future__ import annotations

import os
import subprocess
import threading
import time
from collections.abc import Callable

from batch_runner.execution import procs, reaper
from batch_runner.execution.capture import OutputCapture
from batch_runner.execution.judge import judge, start_error
from batch_runner.execution.outcome import AttemptOutcome, AttemptRequest
from batch_runner.execution.supervise import REAP_WAIT, Attempt, Hooks
from batch_runner.logs import get_logger

TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.execution.judge import Status

log = get_logger("batch_runner")


def execute(
    request: AttemptRequest,
    *,
    before_spawn: Callable[[], None] | None = None,
    on_spawned: Callable[[int], None] | None = None,
    on_started: Callable[[int], None] | None = None,
    cancel: Callable[[], str | None] | None = None,
    wake_fd: int | None = None,
    cancel_poll_interval: float = 1.0,
    is_known_run: Callable[[str], bool] | None = None,
) -> AttemptOutcome:
    """Run one attempt to its end. Only the caller's own callbacks can raise out of here.

    ``before_spawn()`` is called right before the spawn; what it raises leaves here with
    nothing started.
    ``on_spawned(pid)`` is called as soon as the child is running (not before: a line the caller
    writes to a pipe wakes its reader, which would compete with the child's exec), and
    ``on_started(pid)`` once the child has run for ``STARTED_REPORT_DELAY`` s.
    ``cancel`` is asked whenever ``wake_fd`` is readable and at least every
    ``cancel_poll_interval`` s; returning "stopped" or "interrupted" ends the attempt so.
    ``is_known_run(run_id)`` says whether a run exists, asked only once the attempt is ended
    and an orphan carries another run's id: only then is it spared (see ``reaper``).
    """
    started_at = time.time()
    limits = (request.run_log_max_bytes, request.output_max_bytes)
    reaper.adopt()  # before the first job: its orphans must come back to us
    with OutputCapture(request.log_path, *limits, open_log=False) as capture:
        if before_spawn is not None:
            before_spawn()
        # In flight from before the spawn: every process of the run starts within its flight.
        flight = reaper.taking_off(request.run_id)
        try:
            proc, out_fd, err_fd = _spawn(request)
        except (OSError, ValueError) as exc:
            reaper.waited(None, flight, False)
            capture.run_log.open()
            return _outcome(
                "error",
                None,
                start_error(request.argv, request.cwd, exc),
                capture,
                started_at,
                None,
            )
        reaper.spawned(proc.pid, flight)
        hooks = Hooks(
            on_spawned,
            on_started,
            cancel,
            wake_fd if cancel else None,
            cancel_poll_interval,
            is_known_run,
        )
        verdict: str | None = "aborted"  # unless _supervise returns: it killed the run and raised
        try:
            verdict, returncode = _supervise(proc, (out_fd, err_fd), request, capture, hooks)
        finally:
            reaper.waited(proc.pid, flight, verdict is not None, request.kill_grace)
    reaper.reap_zombies()  # the orphans a timeout or a stop has just ended, say
    status, reason = judge(verdict, returncode, request.timeout)
    exit_code = None if returncode is None or returncode < 0 else returncode
    return _outcome(status, exit_code, reason, capture, started_at, proc.pid)


def _supervise(
    proc: subprocess.Popen[bytes],
    pipe_fds: tuple[int, int],
    request: AttemptRequest,
    capture: OutputCapture,
    hooks: Hooks,
) -> tuple[str | None, int | None]:
    try:
        try:
            attempt = Attempt(proc, pipe_fds, request, capture, hooks)
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
        _abort(proc, request.run_id, hooks)  # a callback's error, KeyboardInterrupt: kill, raise
        raise


def _abort(proc: subprocess.Popen[bytes], run_id: str, hooks: Hooks) -> None:
    """Never leave an unsupervised job behind: no grace, the exception is on its way."""
    scope = reaper.RunScope(proc, hooks.is_known_run)
    procs.terminate_run(proc.pid, run_id, 0.0, own_group=True, scope=scope)
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
_DEV_NULL_LOCK = threading.Lock()  # attempts may start at once, one per thread


def _dev_null() -> int:
    """A read-only /dev/null for every child's stdin, opened once (close-on-exec here)."""
    if not _DEV_NULL:
        with _DEV_NULL_LOCK:
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
