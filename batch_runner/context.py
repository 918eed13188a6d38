"""What every command works against: the validated config, the log dir layout, the store."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

from batch_runner.paths import LogLayout
from batch_runner.spec import ConfigSpec
from batch_runner.store import Store


@dataclass
class RunnerContext:
    """One process's view of a config and its log dir; opens the store on first use."""

    config: ConfigSpec
    durable: bool = False
    host: str = field(default_factory=lambda: os.uname().nodename)
    pid: int = field(default_factory=os.getpid)

    @cached_property
    def layout(self) -> LogLayout:
        return LogLayout(Path(self.config.settings.log_dir))

    @cached_property
    def store(self) -> Store:
        return Store(self.layout.database, durable=self.durable)

    @property
    def root(self) -> Path:
        return Path(self.config.root)
