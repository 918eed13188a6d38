"""Where things are: the root, the config file, and the files under the log dir (SPEC 2)."""

from __future__ import annotations

import os
from pathlib import Path

DEFAULT_CONFIG = Path("config") / "batch_config.json"
DEFAULT_LOG_DIR = "logs"


def resolve_root(cli_root: str | None, environ: dict[str, str] | os._Environ[str]) -> Path:
    """``--root``, else ``$BATCH_RUNNER_ROOT``, else the current directory; always absolute."""
    chosen = cli_root or environ.get("BATCH_RUNNER_ROOT") or os.getcwd()
    return Path(os.path.abspath(os.path.expanduser(chosen)))


def resolve_config_path(
    cli_config: str | None, root: Path, environ: dict[str, str] | os._Environ[str]
) -> Path:
    """``--config``, else ``$BATCH_RUNNER_CONFIG``, else ``<root>/config/batch_config.json``."""
    chosen = cli_config or environ.get("BATCH_RUNNER_CONFIG")
    if chosen:
        return Path(os.path.abspath(os.path.expanduser(chosen)))
    return root / DEFAULT_CONFIG


def resolve_under_root(root: Path | str, value: str) -> Path:
    """A path from the config: absolute as given, relative ones against the root."""
    path = Path(os.path.expanduser(value))
    return path if path.is_absolute() else Path(root) / path


class LogLayout:
    """Every file batch_runner writes, all under the log dir."""

    __slots__ = ("log_dir",)

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir

    @property
    def results_dir(self) -> Path:
        return self.log_dir / "batch"

    @property
    def runs_dir(self) -> Path:
        return self.log_dir / "runs"

    @property
    def state_dir(self) -> Path:
        return self.log_dir / "state"

    @property
    def database(self) -> Path:
        return self.state_dir / "batch_runner.sqlite3"

    @property
    def executor_lock(self) -> Path:
        return self.state_dir / "executor.lock"

    @property
    def scheduler_lock(self) -> Path:
        return self.state_dir / "scheduler.lock"

    @property
    def config_snapshot(self) -> Path:
        return self.state_dir / "config_snapshot.json"

    def results_file(self, yyyymmdd: str) -> Path:
        return self.results_dir / f"batch_{yyyymmdd}.jsonl"

    def run_log(self, yyyymmdd: str, run_id: str, attempt: int) -> Path:
        suffix = "" if attempt == 1 else f".attempt{attempt}"
        return self.runs_dir / yyyymmdd / f"{run_id}{suffix}.log"
