"""The last config that validated, for the commands that read state or control runs (SPEC 2).

An edit that does not validate must not lock the operator out: with the scheduler still running
on the old config, ``status``, ``history``, ``stop`` and the rest keep working from the snapshot
the last successful validation left in the log dir. Only a snapshot of this very config file and
root, written by this version, is used; the log dir is checked like any other time.
"""

from __future__ import annotations

import json
import os
import re

from batch_runner.config.loader import log_dir_of, read_bytes, snapshot_config, snapshot_identity
from batch_runner.errors import ConfigError
from batch_runner.state.ownership import check_log_dir

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from batch_runner.config.spec import ConfigSpec

# The log dir of a file json cannot read (a trailing comma, half an edit): the one setting
# needed to find the snapshot, found the way a reader of the file would.
_LOG_DIR = re.compile(r'"log_dir"\s*:\s*("(?:[^"\\]|\\.)*")')


def last_good_config(config_path: str, root: str) -> tuple[ConfigSpec, float] | None:
    """The last config of ``config_path`` that validated and when (epoch), or None."""
    config_path, root = os.path.abspath(config_path), os.path.abspath(root)
    log_dir = log_dir_of(_settings_of(config_path), root)
    check_log_dir(log_dir)
    # Any content: what failed to validate is what it no longer matches.
    return snapshot_config(log_dir, config_path, root, snapshot_identity(config_path, root))


def _settings_of(config_path: str) -> Any:
    try:
        text = read_bytes(config_path).decode("utf-8", errors="replace")
    except ConfigError:
        return None
    try:
        document = json.loads(text)
    except ValueError:
        match = _LOG_DIR.search(text)
        try:
            return {"log_dir": json.loads(match[1])} if match else None
        except ValueError:
            return None
    return document.get("settings") if isinstance(document, dict) else None
