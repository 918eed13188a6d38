"""The exception tree. ``cli.main`` is the one place that turns these into stderr and exit codes."""

from __future__ import annotations

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Final

EXIT_OK: Final = 0
EXIT_FAILED: Final = 1
EXIT_USAGE: Final = 2
EXIT_NOT_FOUND: Final = 3
EXIT_BUSY: Final = 75
EXIT_CONFIG: Final = 78
EXIT_TIMEOUT: Final = 124


class BatchRunnerError(Exception):
    """Root of every error a user can cause; ``str(err)`` is the one sentence they see."""

    exit_code: int = EXIT_FAILED


class OperationFailed(BatchRunnerError):
    """A job or an operation ran and failed (exit 1)."""

    exit_code = EXIT_FAILED


class UsageError(BatchRunnerError):
    """Bad command-line arguments or values (exit 2)."""

    exit_code = EXIT_USAGE


class NotFound(BatchRunnerError):
    """No such job or run (exit 3)."""

    exit_code = EXIT_NOT_FOUND


class Busy(BatchRunnerError):
    """The executor or the job is busy and the caller asked not to wait (exit 75)."""

    exit_code = EXIT_BUSY


class ConfigError(BatchRunnerError):
    """The config file is missing, unreadable or invalid (exit 78).

    ``problems`` holds every problem found, each already a full sentence; the message is the
    first line the user sees, the problems follow it.
    """

    exit_code = EXIT_CONFIG

    def __init__(self, message: str, problems: list[str] | None = None) -> None:
        super().__init__(message)
        self.problems: list[str] = problems or []

    def render(self) -> str:
        return "\n".join([str(self), *(f"  {p}" for p in self.problems)])


class StorageError(BatchRunnerError):
    """The log dir or the state database cannot be written or read (full disk, permissions)."""

    exit_code = EXIT_FAILED


class StateLocked(Busy, StorageError):
    """The state database stays locked past the wait (a repair under way, a stuck writer):
    exit 75 for a command, 503 with ``Retry-After`` from the service."""

    exit_code = EXIT_BUSY


class DamagedState(StorageError):
    """The state database is damaged or is no database at all (exit 1): it stays so until it
    is moved aside (``doctor --repair``), so a long-running process stops rather than retries."""

    exit_code = EXIT_FAILED


class BackendUnavailable(Busy, StorageError):
    """The cluster's database (``settings.backend``) did not answer within its deadline, or
    refused the connection: exit 75 for a command, 503 with ``Retry-After`` from the service."""

    exit_code = EXIT_BUSY
