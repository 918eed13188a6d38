"""Loading the config into the long-running scheduler, at start and on every reload."""

from __future__ import annotations

import subprocess
import sys

from batch_runner.config.loader import load_config
from batch_runner.config.spec import ConfigSpec
from batch_runner.errors import EXIT_CONFIG, ConfigError


def load_validated(config_path: str, root: str) -> ConfigSpec:
    """The config, validated in a child process when it changed.

    The child (``batch_runner validate``) leaves a validated snapshot behind, which is then
    loaded here: pydantic never enters the long-running scheduler, which keeps its memory
    small (under 64 MB with 10,000 jobs). Should the child fail for any other reason than an
    invalid config, loading validates in this process instead.
    """
    argv = [sys.executable, "-m", "batch_runner", "-c", config_path, "--root", root, "validate"]
    result = subprocess.run(argv, capture_output=True, text=True, stdin=subprocess.DEVNULL)
    if result.returncode == EXIT_CONFIG:
        lines = result.stderr.strip().removeprefix("error: ").splitlines() or ["invalid config"]
        raise ConfigError(lines[0], [line.strip() for line in lines[1:]])
    return load_config(config_path, root)


def settle_garbage_collector() -> None:
    """Collect once, then leave the config and plans (long-lived, tens of thousands of objects
    with 10,000 jobs) out of later collections: a full pass over them takes milliseconds, and
    would land on some run's start."""
    import gc

    gc.unfreeze()  # what an earlier start or reload left behind may be garbage by now
    gc.collect()
    gc.freeze()
