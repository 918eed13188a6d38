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
import stat

from batch_runner.config.loader import log_dir_of
from batch_runner.config.spec import SNAPSHOT_FORMAT, ConfigSpec
from batch_runner.state.layout import LogLayout
from batch_runner.state.ownership import check_log_dir
from batch_runner.version import __version__

# typing costs milliseconds at start-up; its names serve the type checker only.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

# The log dir of a file json cannot read (a trailing comma, half an edit): the one setting
# needed to find the snapshot, found the way a reader of the file would.
_LOG_DIR = re.compile(r'"log_dir"\s*:\s*("(?:[^"\\]|\\.)*")')


def last_good_config(config_path: str, root: str) -> tuple[ConfigSpec, float] | None:
    """The last config of ``config_path`` that validated and when (epoch), or None."""
    config_path, root = os.path.abspath(config_path), os.path.abspath(root)
    log_dir = log_dir_of(_settings_of(config_path), root)
    check_log_dir(log_dir)
    try:
        fd = os.open(LogLayout(log_dir).config_snapshot, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        with open(fd, "rb") as file:
            written = os.fstat(file.fileno()).st_mtime
            snapshot = json.loads(file.read())
    except (OSError, ValueError):
        return None
    expected = {
        "format": SNAPSHOT_FORMAT,
        "version": __version__,
        "config_path": config_path,
        "root": root,
    }
    if not isinstance(snapshot, dict) or any(snapshot.get(k) != v for k, v in expected.items()):
        return None
    try:
        return ConfigSpec.from_normalized(config_path, root, snapshot["config"]), written
    except (KeyError, TypeError, ValueError, AttributeError):
        return None


def _settings_of(config_path: str) -> Any:
    try:
        fd = os.open(config_path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
        with open(fd, "rb") as file:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None  # a FIFO would hang us
            text = file.read().decode("utf-8", errors="replace")
    except OSError:
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
