"""SIGKILL during each write: what survives a runner killed mid-run, and a config edit killed.

- the runner killed right after the run started: the run stays ``running`` until the next
  runner recovers it as ``interrupted``; its job's process group does not outlive recovery;
- the runner killed in the job's last instant (the job kills its parent, the runner, just
  before the result would be written): the same, and the JSONL logs stay parseable;
- ``batch_runner add`` killed at random moments: the config file is always the old or the new
  document, never a partial one.
"""

from __future__ import annotations

import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import job, run_cli, write_config
from fault_helpers import (
    database,
    env_for,
    integrity,
    jsonl_records,
    orphans,
    runs,
    start,
    wait_for,
)

from batch_runner.config.loader import validate_file


def _status_of(root: Path, name: str) -> list[str]:
    with sqlite3.connect(database(root), timeout=30) as db:
        rows = db.execute(
            "SELECT status FROM runs WHERE job_name = ? ORDER BY seq", (name,)
        ).fetchall()
    return [r[0] for r in rows]


@pytest.fixture
def write_project(project: Path) -> Path:
    marker = project / "started"
    write_config(
        project,
        [
            job("long", f"touch {marker}; sleep 30"),
            job("suicide", "echo last words; kill -9 $PPID; sleep 5"),
            job("quick", "echo quick"),
        ],
        settings={"kill_grace": 0.5},
    )
    return project


def test_runner_killed_right_after_the_run_started(write_project: Path) -> None:
    root = write_project
    runner = start(root, "run-job", "long")
    wait_for((root / "started").exists)
    runner.send_signal(signal.SIGKILL)
    runner.wait(timeout=10)
    assert _status_of(root, "long") == ["running"]  # accepted, not lost
    assert run_cli(root, "run-job", "quick").returncode == 0  # the next runner recovers it
    assert _status_of(root, "long") == ["interrupted"]
    wait_for(lambda: not orphans(root, set(runs(root))), 10)
    assert integrity(root) == "ok"
    records = jsonl_records(root)
    assert [r["status"] for r in records if r["job_name"] == "long"] == ["interrupted"]


def test_runner_killed_in_the_jobs_last_instant(write_project: Path) -> None:
    root = write_project
    result = run_cli(root, "run-job", "suicide")
    assert result.returncode == -signal.SIGKILL  # the job's parent is the runner itself
    assert _status_of(root, "suicide") == ["running"]
    assert run_cli(root, "run-job", "quick").returncode == 0
    assert _status_of(root, "suicide") == ["interrupted"]
    assert integrity(root) == "ok"
    assert [r["status"] for r in jsonl_records(root) if r["job_name"] == "suicide"] == [
        "interrupted"
    ]


def test_a_config_edit_killed_at_random_moments_is_never_partial(project: Path, soak: bool) -> None:
    path = write_config(project, [job("j0", "true")])
    rng = random.Random(5)
    seen_new = 0
    for i in range(1, (200 if soak else 6) + 1):
        before = json.loads(path.read_text())
        editor = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "batch_runner",
                "add",
                f"j{i}",
                "echo hi",
                "--type",
                "interval",
                "--time",
                "60",
            ],
            env=env_for(project),
            cwd=project,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(rng.uniform(0.2, 1.2))  # `add` takes ~1 s here
        editor.send_signal(signal.SIGKILL)
        editor.wait(timeout=10)
        after = json.loads(path.read_text())  # parses: never partial
        names = [j["name"] for j in after["jobs"]]
        old = [j["name"] for j in before["jobs"]]
        assert names in (old, [*old, f"j{i}"])
        seen_new += names != old
        validate_file(path, project)
    leftovers = [p.name for p in path.parent.iterdir() if p.name != path.name]
    print(f"\nconfig edits: {i} kills, {seen_new} edits landed, temp files left: {leftovers}")


def test_the_runner_is_the_jobs_parent(write_project: Path) -> None:
    root = write_project
    out = root / "ppid"
    write_config(root, [job("who", f"echo $PPID > {out}")])
    env = env_for(root)
    runner = subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "run-job", "who"],
        env=env,
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    assert runner.wait(timeout=30) == 0
    assert int(out.read_text()) == runner.pid
    assert os.getpid() != runner.pid
