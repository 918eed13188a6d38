"""What an attempt's ending means, in the words users read (SPEC 5 and 7); pure functions.

``error`` in a result is one line from here (``exit code 2``, ``timed out after 1800 s``,
``command not found: foo``), followed by the tail of stderr when there is one.
"""

from __future__ import annotations

import errno
import os
import signal

from batch_runner.timefmt import format_seconds

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Literal

    # How an attempt ended: success (exit 0); error (non-zero exit, a signal, or it could not
    # start); timeout; stopped (a user asked); interrupted (the runner shut down).
    Status = Literal["success", "error", "timeout", "stopped", "interrupted"]

# What a ``cancel()`` answer ends the attempt as.
_CANCELED_AS: dict[str, tuple[Status, str]] = {
    "stopped": ("stopped", "stopped by request"),
    "interrupted": ("interrupted", "interrupted: runner shutting down"),
}
CANCEL_VERDICTS = frozenset(_CANCELED_AS)


def judge(verdict: str | None, returncode: int | None, timeout: float) -> tuple[Status, str | None]:
    """Status and one-line reason from how the wait ended and the exit status."""
    if verdict == "timeout":
        return "timeout", f"timed out after {format_seconds(timeout)} s"
    if verdict in _CANCELED_AS:
        return _CANCELED_AS[verdict]
    if returncode == 0:
        return "success", None
    if returncode is None:
        return "error", "exit status unknown: the process could not be reaped"
    if returncode < 0:
        return "error", f"killed by signal {-returncode} ({_signal_name(-returncode)})"
    return "error", f"exit code {returncode}"


def _signal_name(signum: int) -> str:
    try:
        return signal.Signals(signum).name
    except ValueError:
        return "unknown signal"


def start_error(argv: list[str], cwd: str, exc: Exception) -> str:
    """The one-line reason why ``argv`` could not be started in ``cwd``."""
    if not argv:
        return "empty command"
    program = argv[0]
    if not isinstance(exc, OSError):
        return f"cannot start {program}: {exc}"  # e.g. an embedded NUL byte
    if exc.filename is not None and os.fspath(exc.filename) == cwd:
        return _cwd_error(cwd, exc)  # Popen names the cwd when chdir failed
    if isinstance(exc, FileNotFoundError):
        if os.sep in program and os.path.exists(os.path.join(cwd, program)):
            return f"cannot execute {program}: its #! interpreter was not found"
        return f"command not found: {program}"
    if isinstance(exc, PermissionError):
        return f"permission denied: {program}"
    if exc.errno == errno.ENOEXEC:
        return f"cannot execute {program}: not a program, nor a script with a #! line"
    return f"cannot start {program}: {exc.strerror or exc}"


def _cwd_error(cwd: str, exc: OSError) -> str:
    if isinstance(exc, FileNotFoundError):
        return f"working directory does not exist: {cwd}"
    if isinstance(exc, NotADirectoryError):
        return f"working directory is not a directory: {cwd}"
    if isinstance(exc, PermissionError):
        return f"permission denied: working directory {cwd}"
    return f"cannot enter working directory {cwd}: {exc.strerror or exc}"
