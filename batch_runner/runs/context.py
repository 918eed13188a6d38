"""What every command works against: the validated config, the log dir layout, the store;
and the ids runs are known by."""

from __future__ import annotations

import os
import time

from batch_runner.config.spec import ConfigSpec
from batch_runner.state.layout import LogLayout
from batch_runner.state.store import Store, open_store
from batch_runner.timefmt import day_stamp


class RunnerContext:
    """One process's view of a config and its log dir; opens the store on first use."""

    def __init__(self, config: ConfigSpec, *, durable: bool = False) -> None:
        self.config = config
        self.durable = durable
        # A cluster's hosts may share a node name (containers, tests): its id may be given.
        self.host = (
            os.environ.get("BATCH_RUNNER_HOST_ID") or os.uname().nodename
            if config.settings.backend is not None
            else os.uname().nodename
        )
        self.pid = os.getpid()
        self._store: Store | None = None
        # The environment every job starts from; built once per process (it does not change).
        self.child_environ: dict[str, str] | None = None

    @property
    def layout(self) -> LogLayout:
        return LogLayout(self.config.settings.log_dir)

    @property
    def store(self) -> Store:
        if self._store is None:
            self._store = open_store(
                self.layout, durable=self.durable, backend=self.config.settings.backend
            )
            if self.clustered:
                # A lane no host has made slots for yet gets its width from this config.
                self._store.lane_widths = self.lane_widths  # type: ignore[attr-defined]
        return self._store

    @property
    def lane_widths(self) -> dict[str, int]:
        """Each configured lane's width, the default lane's (1 unless configured) included."""
        return {"default": 1, **self.config.settings.lanes}

    def renewed(self, config: ConfigSpec) -> RunnerContext:
        """This context while ``config`` is still the one in force; else a new one (this
        one's store closed): a long-running thread's after a reload."""
        if self.config is config:
            return self
        self.close()
        return RunnerContext(config=config)

    def close(self) -> None:
        if self._store is not None:
            self._store.close()
            self._store = None

    @property
    def clustered(self) -> bool:
        """The state is a cluster's shared database (``settings.backend``)."""
        return self.config.settings.backend is not None

    @property
    def root(self) -> str:
        return self.config.root


def new_run_id(now: float) -> str:
    """Sortable by creation time, unique without coordination, safe as a file name."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + os.urandom(3).hex()


def run_day(run_id: str, started_at: float) -> str:
    """YYYYMMDD of the folder a run's logs go to: the day its id carries (a scheduled run's
    occurrence, so the midnight run's logs are in that day's folder, and every attempt of a
    run in one folder), else the day it started (an id made otherwise)."""
    day = run_id[:8]
    return day if len(day) == 8 and day.isdigit() else day_stamp(started_at)
