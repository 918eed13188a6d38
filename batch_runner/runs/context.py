"""What every command works against: the validated config, the log dir layout, the store;
and the ids runs are known by."""

from __future__ import annotations

import os
import time

from batch_runner.config.spec import ConfigSpec
from batch_runner.state.layout import LogLayout
from batch_runner.state.store import Store, open_store


class RunnerContext:
    """One process's view of a config and its log dir; opens the store on first use."""

    def __init__(self, config: ConfigSpec, *, durable: bool = False) -> None:
        self.config = config
        self.durable = durable
        self.host = os.uname().nodename
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
            self._store = open_store(self.layout, durable=self.durable)
        return self._store

    @property
    def root(self) -> str:
        return self.config.root


def new_run_id(now: float) -> str:
    """Sortable by creation time, unique without coordination, safe as a file name."""
    return time.strftime("%Y%m%d-%H%M%S", time.localtime(now)) + "-" + os.urandom(3).hex()
