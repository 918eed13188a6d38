"""What the runner asks of the place where runs and job state are kept: the store interface.

A backend (``state.sqlite`` today; a shared database for several hosts can stand beside it)
implements every method below with the guarantees written in its docstring; the runner never
reaches past this interface. A run is a plain dict with the columns of the ``runs`` table
(``run_id``, ``job_name``, ``kind`` (``job`` or ``adhoc``), ``spec``, ``trigger``,
``priority``, ``status``, ``attempt``, ``max_attempts``, ``due_at``, ...), times in epoch
seconds. A plain class rather than ``typing.Protocol``: the hot CLI paths do not import typing.
"""

from __future__ import annotations

import errno
import fcntl
import os

from batch_runner.errors import Busy, StorageError

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from contextlib import AbstractContextManager
    from typing import Any

    from batch_runner.state.layout import LogLayout

# How a run can end; ``pending`` and ``running`` are the statuses of a run still in play.
FINISHED_STATUSES = ("success", "error", "timeout", "stopped", "interrupted", "canceled")

# How long opening the store waits for `doctor --repair` to finish with it: as long as SQLite
# waits for another process's lock.
REPAIR_WAIT_SECONDS = 30.0
_REPAIR_POLL_SECONDS = 0.05
_LOCK_FLAGS = os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
_PID_WIDTH = 10  # wider than any pid Linux hands out


class Store:
    """The operations the runner needs; a backend overrides every one of them."""

    def close(self) -> None:
        raise NotImplementedError

    def transaction(self) -> AbstractContextManager[None]:
        """``with store.transaction():`` one write transaction, its lock taken up front; the
        store's calls made inside it join it, all or nothing."""
        raise NotImplementedError

    # --- the queue of runs ------------------------------------------------------------------

    def insert_run(self, run: dict[str, Any]) -> None:
        """Accept a run; durable once the call (or its transaction) returns."""
        raise NotImplementedError

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        raise NotImplementedError

    def find_runs(self, prefix: str) -> list[dict[str, Any]]:
        """At most two runs whose id starts with ``prefix`` (users type a unique prefix)."""
        raise NotImplementedError

    def run_extras(self, run_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Priority, attempt and progress of those runs the store still holds, by run id."""
        raise NotImplementedError

    def active_run_of_job(self, job_name: str) -> dict[str, Any] | None:
        """The pending or running run of a named job (never an ad-hoc run with its label)."""
        raise NotImplementedError

    def runs_with_status(self, *statuses: str, limit: int | None = None) -> list[dict[str, Any]]:
        """Running runs first, then by priority, due time and arrival."""
        raise NotImplementedError

    def recent_finished(self, limit: int) -> list[dict[str, Any]]:
        """The ``limit`` most recently created finished runs, newest first."""
        raise NotImplementedError

    def count_pending(self) -> int:
        raise NotImplementedError

    def next_due_at(self, *, retries_only: bool = False) -> float | None:
        """When the next pending run (or only a retry of a started one) may start."""
        raise NotImplementedError

    def claim_next(
        self,
        now: float,
        owner_pid: int,
        host: str,
        *,
        foreground_run_id: str | None = None,
        first_attempt_only: bool = False,
    ) -> dict[str, Any] | None:
        """Take the next due run (priority, then due time, then arrival) and mark it running.

        Atomic: no two drainers ever take the same run. While the queue is paused nothing is
        taken but ``foreground_run_id`` (the run a foreground ``run-job`` waits for), which
        may also start while it is not first. ``first_attempt_only``: None if the next run is
        a retry (whose last attempt's details the claim clears, so that ``unclaim`` could not
        give them back).
        """
        raise NotImplementedError

    def unclaim(self, run_id: str, owner_pid: int) -> None:
        """Put a first attempt claimed by ``owner_pid`` but never started back as it was."""
        raise NotImplementedError

    def update_run(self, run_id: str, **fields: Any) -> None:
        raise NotImplementedError

    def end_if_pending(self, run_id: str, status: str, error: str | None, now: float) -> bool:
        """A pending run ends with ``status`` without another attempt; False if it had
        already started again or finished."""
        raise NotImplementedError

    def request_stop(self, run_id: str) -> bool:
        """Flag a running run; its runner notices within a second and stops it."""
        raise NotImplementedError

    def set_progress(self, run_id: str, percent: float | None, message: str | None) -> bool:
        """Record progress of a running run; False when it is not running."""
        raise NotImplementedError

    def delete_finished_before(self, cutoff: float) -> int:
        """Forget finished runs that ended before ``cutoff``; pending and running ones stay."""
        raise NotImplementedError

    # --- per job --------------------------------------------------------------------------

    def job_states(self) -> dict[str, dict[str, Any]]:
        """Per job: its state's fields (if it has run) and ``next_run`` (if planned)."""
        raise NotImplementedError

    def job_state(self, job_name: str) -> dict[str, Any] | None:
        """last_run, last_status, error_count and notified of a job that has run."""
        raise NotImplementedError

    def save_job_state(self, state: dict[str, Any]) -> None:
        """Within the caller's transaction if one is open, else in one of its own."""
        raise NotImplementedError

    def set_next_runs(self, next_runs: dict[str, str | None]) -> None:
        """Remember each job's planned next run, for ``list``, ``next`` and catch-up."""
        raise NotImplementedError

    def set_next_run(self, job_name: str, next_run: str | None) -> None:
        """``set_next_runs`` for one job, meant for the caller's transaction (with its run)."""
        raise NotImplementedError

    # --- flags ------------------------------------------------------------------------------

    def is_paused(self) -> bool:
        raise NotImplementedError

    def set_paused(self, paused: bool) -> None:
        raise NotImplementedError

    # --- result lines the JSONL could not take (a full disk) --------------------------------

    def remember_unwritten(
        self, run_id: str | None, started_at: float, record: dict[str, Any]
    ) -> None:
        """Keep a result line until it can be appended to the day file of ``started_at``;
        within the caller's transaction if one is open (the end of its run), else its own."""
        raise NotImplementedError

    def has_unwritten(self) -> bool:
        """Whether a line waits; cheap enough to ask after every run."""
        raise NotImplementedError

    def unwritten(self) -> list[dict[str, Any]]:
        """Every waiting line, oldest first: ``seq``, ``run_id``, ``started_at``, ``record``."""
        raise NotImplementedError

    def forget_unwritten(self, seq: int) -> bool:
        """Drop a line once appended; False if another process had dropped it already. Meant
        for the caller's transaction, which is what keeps two writers of it apart."""
        raise NotImplementedError


def open_store(layout: LogLayout, *, durable: bool = False) -> Store:
    """The store of a log dir. ``durable``: every commit survives power loss (``queue add``)."""
    from batch_runner.state.sqlite.store import SqliteStore

    return SqliteStore(layout.database, durable=durable)


def open_existing_store(layout: LogLayout) -> Store | None:
    """The store of a log dir that has one; None where nothing was ever stored (opening it
    would create an empty database wherever a stray path points)."""
    return open_store(layout) if os.path.exists(layout.database) else None


# The store locks this process holds alone (``doctor --repair``): its own stores need no more.
_ALONE: set[str] = set()


class StoreLock:
    """The flock on ``state/store.lock`` that keeps ``doctor --repair`` from moving the database
    away from under a process that has it open (which would go on with the moved file).

    Every open store holds it shared, for as long as it is open; the kernel drops it when the
    process dies, even by SIGKILL. ``doctor --repair`` takes it alone, and only while no one
    else holds it, then moves the database aside and rebuilds it; a store opened meanwhile
    waits for that (``REPAIR_WAIT_SECONDS`` at most), so it never meets the old file.
    """

    __slots__ = ("_alone", "_fd", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._alone = False

    def share(self, database: str) -> None:
        """Take it shared, waiting while ``doctor --repair`` holds it (Busy past the wait)."""
        if _ALONE and os.path.abspath(self.path) in _ALONE:
            return  # this process is the repair: the lock it holds covers this store too
        try:
            fd = _open_lock(self.path)
        except OSError as exc:
            if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
                raise _lock_error(self.path, exc) from None
            try:  # a folder this process may only read: so much the lock needs
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                return  # nor the lock there: it cannot write the store either
        try:
            _wait_shared(fd, database)
        except BaseException:
            os.close(fd)
            raise
        self._fd = fd

    def take_alone(self) -> bool:
        """Take it alone, at once or not at all: False while another store is open anywhere."""
        try:
            fd = _open_lock(self.path)
        except OSError as exc:
            raise _lock_error(self.path, exc) from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        except BaseException:
            os.close(fd)
            raise
        self._fd, self._alone = fd, True
        _ALONE.add(os.path.abspath(self.path))
        try:
            os.pwrite(fd, f"{os.getpid():>{_PID_WIDTH}}\n".encode(), 0)
        except OSError:
            pass  # a full disk: the pid only serves the sentence of a store that waits too long
        return True

    def release(self) -> None:
        if self._alone:
            _ALONE.discard(os.path.abspath(self.path))
            self._alone = False
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing drops the flock

    def __del__(self) -> None:
        # A store dropped unclosed (the connection closes itself then) lets go of it as well.
        if self._fd is not None and not self._alone:
            os.close(self._fd)


def _open_lock(path: str) -> int:
    try:
        return os.open(path, _LOCK_FLAGS, 0o600)
    except FileNotFoundError:  # no state folder yet: the first store creates it
        os.makedirs(os.path.dirname(path), mode=0o700, exist_ok=True)
        return os.open(path, _LOCK_FLAGS, 0o600)


def _lock_error(path: str, exc: OSError) -> StorageError:
    if exc.errno == errno.ELOOP:
        return StorageError(
            f"{path} is a symlink, and batch_runner follows none in its log dir; "
            f"remove it (`rm {path}`)"
        )
    return StorageError(f"cannot open the lock file {path}: {exc.strerror or exc}")


def _wait_shared(fd: int, database: str) -> None:
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        return
    except BlockingIOError:
        pass
    import time  # only a store that meets a repair waits

    deadline = time.monotonic() + REPAIR_WAIT_SECONDS
    while time.monotonic() < deadline:
        time.sleep(_REPAIR_POLL_SECONDS)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            pass
    words = os.pread(fd, 32, 0).split()
    pid = f" (pid {int(words[0])})" if words and words[0].isdigit() else ""
    raise Busy(
        f"`batch_runner doctor --repair`{pid} has been repairing the state database {database} "
        f"for over {REPAIR_WAIT_SECONDS:g} s; try again once it is done"
    )
