"""Every file batch_runner writes, all under the log dir (SPEC 2)."""

from __future__ import annotations

import os

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from batch_runner.paths import StrPath


class LogLayout:
    """Every file batch_runner writes, all under the log dir."""

    __slots__ = ("log_dir",)

    def __init__(self, log_dir: StrPath) -> None:
        self.log_dir = os.fspath(log_dir)

    @property
    def results_dir(self) -> str:
        return os.path.join(self.log_dir, "batch")

    @property
    def runs_dir(self) -> str:
        return os.path.join(self.log_dir, "runs")

    @property
    def state_dir(self) -> str:
        return os.path.join(self.log_dir, "state")

    @property
    def database(self) -> str:
        return os.path.join(self.state_dir, "batch_runner.sqlite3")

    @property
    def store_lock(self) -> str:
        return store_lock_of(self.database)

    @property
    def executor_lock(self) -> str:
        return os.path.join(self.state_dir, "executor.lock")

    def slot_lock(self, lane: str, index: int) -> str:
        """The flock of one slot of a lane: held by the runner of the run in that slot.

        Slot 0 of the default lane is the executor lock of a log dir without lanes, so that
        everything that knew that lock (``status``, ``doctor``, older notes) still holds.
        """
        if lane == "default" and index == 0:
            return self.executor_lock
        return os.path.join(self.state_dir, f"lane.{lane}.{index}.lock")

    @property
    def scheduler_lock(self) -> str:
        return os.path.join(self.state_dir, "scheduler.lock")

    @property
    def config_snapshot(self) -> str:
        return os.path.join(self.state_dir, "config_snapshot.json")

    def results_file(self, yyyymmdd: str) -> str:
        return os.path.join(self.results_dir, f"batch_{yyyymmdd}.jsonl")

    def run_log(self, yyyymmdd: str, run_id: str, attempt: int) -> str:
        suffix = "" if attempt == 1 else f".attempt{attempt}"
        return os.path.join(self.runs_dir, yyyymmdd, f"{run_id}{suffix}.log")


def store_lock_of(database: StrPath) -> str:
    """The lock beside a state database that every process holding it open shares, and that
    ``doctor --repair`` takes alone before it moves the database aside."""
    return os.path.join(os.path.dirname(os.fspath(database)), "store.lock")
