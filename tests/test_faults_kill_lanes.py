"""SIGKILL at random moments with lanes: nothing accepted is lost, nothing succeeds twice, and
no lane ever runs more than its width, counted from the live processes (SPEC 13, issue 18).

CI kills the scheduler 4 times; ``--soak`` 100 times.
"""

from __future__ import annotations

import contextlib
import io
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest
from conftest import job, run_cli, write_config
from fault_helpers import FINISHED, env_for, integrity, jsonl_records, restore_logging, runs, start
from fault_helpers import wait_for as wait_until
from lane_helpers import Sampler, unique_sleep
from test_faults_kill import check_survivors

from batch_runner.cli.main import main

pytestmark = pytest.mark.usefixtures("restore_logging")
__all__ = ["restore_logging"]

LANES = {"wide": 3}


def queue_in_lane(lane: str, count: int, ledger: Path, marker: str) -> list[str]:
    """``queue add --lane LANE -- sh -c 'echo $BATCH_RUN_ID >> ledger; sleep MARKER'``."""
    ids = []
    for _ in range(count):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            command = f"echo $BATCH_RUN_ID >> {ledger}; sleep {marker}"
            assert main(["queue", "add", "--lane", lane, "--", "sh", "-c", command]) == 0
        ids.append(out.getvalue().strip())
    return ids


@pytest.fixture
def lanes_project(project: Path) -> Path:
    write_config(project, [job("tick", "true")], settings={"kill_grace": 0.5, "lanes": LANES})
    return project


def test_scheduler_with_lanes_killed_at_random_moments_loses_nothing_and_keeps_widths(
    lanes_project: Path, soak: bool
) -> None:
    root = lanes_project
    ledger = root / "ledger"
    serial, wide = unique_sleep(0.1), unique_sleep(0.3)
    kills = 100 if soak else 4
    accepted = queue_in_lane("default", 20, ledger, serial)
    accepted += queue_in_lane("wide", 40, ledger, wide)
    rng = random.Random(21)
    with Sampler(default=serial, wide=wide) as sampler:
        for _ in range(kills):
            process = start(root, "scheduler")
            time.sleep(rng.uniform(0.5, 2.0))  # long enough for the scheduler to start runs
            process.send_signal(signal.SIGKILL)
            process.wait(timeout=10)
        drained = run_cli(root, "queue", "worker", timeout=300)
    assert drained.returncode in (0, 1), drained.stderr
    assert "Traceback" not in drained.stderr
    status = check_survivors(root, accepted, ledger)
    queued = Counter(status[r] for r in accepted)
    assert queued["success"] + queued["interrupted"] == len(accepted), queued
    assert sampler.most["default"] == 1
    assert 1 < sampler.most["wide"] <= 3
    print(f"\nscheduler with lanes: {kills} kills, {dict(queued)}, most {sampler.most}")


def test_producers_workers_and_a_scheduler_with_lanes_run_everything_exactly_once(
    lanes_project: Path,
) -> None:
    root = lanes_project
    ledger = root / "ledger"
    serial, wide = unique_sleep(0.0), unique_sleep(0.1)
    daemons = [start(root, "queue", "worker", "--forever") for _ in range(2)]
    daemons.append(start(root, "scheduler"))
    producer = (
        "import contextlib, io, sys\n"
        "from batch_runner.cli.main import main\n"
        "for i in range(20):\n"
        "    lane, marker = ('wide', sys.argv[2]) if i % 2 else ('default', sys.argv[1])\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(['queue', 'add', '--lane', lane, '--', 'sh', '-c',\n"
        f"                     'echo $BATCH_RUN_ID >> {ledger}; sleep ' + marker]) == 0\n"
    )
    env = env_for(root)
    total = 6 * 20
    with Sampler(default=serial, wide=wide) as sampler:
        producers = [
            subprocess.Popen([sys.executable, "-c", producer, serial, wide], env=env, cwd=root)
            for _ in range(6)
        ]
        try:
            for p in producers:
                assert p.wait(timeout=120) == 0
            wait_until(lambda: ledger.exists() and len(ledger.read_text().split()) >= total, 120)
            wait_until(lambda: all(s in FINISHED for s in runs(root).values()), 60)
            time.sleep(0.5)  # a duplicate start, if any, would show up now
        finally:
            for d in daemons:
                d.send_signal(signal.SIGTERM)
            for d in daemons:
                d.wait(timeout=20)
    started = ledger.read_text().split()
    assert len(started) == total and len(set(started)) == total
    status = runs(root)
    assert all(status[r] == "success" for r in started)
    assert integrity(root) == "ok"
    jsonl_records(root)
    assert sampler.most["default"] == 1
    assert sampler.most["wide"] <= 3
