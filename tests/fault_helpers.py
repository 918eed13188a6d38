"""Helpers for the fault tests: start and kill the CLI, and check what survives a crash."""

from __future__ import annotations

import json
import logging
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from conftest import REPO

from batch_runner.state.store import FINISHED_STATUSES

FINISHED = set(FINISHED_STATUSES)


def env_for(root: Path) -> dict[str, str]:
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    return env


def start(root: Path, *argv: str) -> subprocess.Popen:
    """``python -m batch_runner ARGV`` in the background, its output thrown away."""
    return subprocess.Popen(
        [sys.executable, "-m", "batch_runner", *argv],
        env=env_for(root),
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def wait_for(predicate: Callable[[], bool], timeout: float = 20.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)


def database(root: Path) -> Path:
    return root / "logs" / "state" / "batch_runner.sqlite3"


def runs(root: Path) -> dict[str, str]:
    """run_id -> status, read straight from the state database."""
    with sqlite3.connect(database(root), timeout=30) as db:
        return dict(db.execute("SELECT run_id, status FROM runs").fetchall())


def integrity(root: Path) -> str:
    with sqlite3.connect(database(root), timeout=30) as db:
        return db.execute("PRAGMA integrity_check").fetchone()[0]


def jsonl_records(root: Path) -> list[dict]:
    """Every line of every results file, each parsed (json.loads raises on a torn line).

    Split on "\\n" only: str.splitlines() also splits on U+0085 and U+2028, which JSON leaves
    unescaped inside strings (job output holding them would look torn).
    """
    records = []
    for path in sorted((root / "logs" / "batch").glob("*.jsonl")):
        for line in path.read_bytes().split(b"\n"):
            if line:
                records.append(json.loads(line))
    return records


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose environment holds ``marker`` (e.g. a run id)."""
    found = []
    needle = marker.encode()
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            environ = (entry / "environ").read_bytes()
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z" and needle in environ:
            found.append(int(entry.name))
    return found


def orphans(root: Path, run_ids: set[str]) -> list[int]:
    """Live processes carrying BATCH_RUN_ID of one of ``run_ids``."""
    pids = []
    for pid in processes_with("BATCH_RUN_ID="):
        try:
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
        except OSError:
            continue
        for item in environ:
            if item.startswith(b"BATCH_RUN_ID=") and item[13:].decode(errors="replace") in run_ids:
                pids.append(pid)
    return pids


@pytest.fixture
def restore_logging() -> Iterator[None]:
    """Undo what an in-process ``main()`` does to logging, so later tests' caplog still works."""
    from batch_runner import logs

    logger = logging.getLogger("batch_runner")
    saved = (logs.threshold, logs._configure, logger.handlers[:], logger.level, logger.propagate)
    yield
    logs.threshold, logs._configure = saved[0], saved[1]
    logger.handlers[:] = saved[2]
    logger.setLevel(saved[3])
    logger.propagate = saved[4]
