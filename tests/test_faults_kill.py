"""SIGKILL at random moments: nothing accepted is lost, nothing succeeds twice (SPEC 13).

CI kills the worker 20 times and the scheduler 4 times; ``--soak`` kills them 1,000 and 200
times (``python -m pytest tests/test_faults_kill.py --soak -q``).
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
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import job, run_cli, write_config
from fault_helpers import (
    FINISHED,
    env_for,
    integrity,
    jsonl_records,
    orphans,
    restore_logging,
    runs,
    start,
    wait_for,
)

from batch_runner.cli.main import main

pytestmark = pytest.mark.usefixtures("restore_logging")
__all__ = ["restore_logging"]


def queue_many(root: Path, count: int, ledger: Path, job_sleep: float = 0.0) -> list[str]:
    """``queue add -- sh -c 'echo $BATCH_RUN_ID >> ledger'`` ``count`` times, in-process."""
    ids = []
    pause = f"; sleep {job_sleep}" if job_sleep else ""
    for _ in range(count):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            assert (
                main(["queue", "add", "--", "sh", "-c", f"echo $BATCH_RUN_ID >> {ledger}{pause}"])
                == 0
            )
        ids.append(out.getvalue().strip())
    return ids


def kill_loop(
    root: Path, argv: list[str], kills: int, seed: int, refill: Callable[[], None] | None = None
) -> None:
    """Start ``argv`` and SIGKILL it after 0.05-0.8 s, ``kills`` times; ``refill`` before each."""
    rng = random.Random(seed)
    for _ in range(kills):
        if refill is not None:
            refill()  # so that most kills find the worker busy, not idle
        process = start(root, *argv)
        time.sleep(rng.uniform(0.05, 0.8))  # start-up takes ~0.3 s of that
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)


def check_survivors(root: Path, accepted: list[str], ledger: Path) -> dict[str, str]:
    """The SPEC 13 invariants after a final drain; returns run_id -> status."""
    status = runs(root)
    missing = set(accepted) - set(status)
    assert not missing, f"accepted runs lost: {sorted(missing)[:5]}"
    unfinished = {r: s for r, s in status.items() if s not in FINISHED}
    assert not unfinished, f"runs left unfinished after the drain: {unfinished}"
    # A run interrupted by a kill may have written its ledger line before the worker died;
    # a run that succeeded must have started exactly once.
    started = Counter(ledger.read_text().split()) if ledger.exists() else Counter()
    succeeded = [r for r, s in status.items() if s == "success" and r in set(accepted)]
    twice = [r for r in succeeded if started[r] != 1]
    assert not twice, f"successful runs started other than once: {twice[:5]}"
    assert integrity(root) == "ok"
    records = jsonl_records(root)  # every line parses
    recorded = Counter(r["run_id"] for r in records if r.get("status") == "success")
    assert all(recorded[r] == 1 for r in succeeded)
    ids = set(status)
    wait_for(lambda: not orphans(root, ids), 10)
    return status


@pytest.fixture
def kill_project(project: Path) -> Path:
    write_config(project, [job("tick", "true")], settings={"kill_grace": 0.5})
    return project


def test_worker_killed_at_random_moments_loses_nothing(kill_project: Path, soak: bool) -> None:
    root = kill_project
    ledger = root / "ledger"
    kills = 1000 if soak else 20
    accepted = queue_many(root, 50, ledger, job_sleep=0.01)
    kill_loop(
        root,
        ["queue", "worker", "--forever"],
        kills,
        seed=8,
        refill=lambda: accepted.extend(queue_many(root, 10, ledger, job_sleep=0.01)),
    )
    drained = run_cli(root, "queue", "worker", timeout=300)
    assert drained.returncode in (0, 1), drained.stderr
    assert "Traceback" not in drained.stderr
    status = check_survivors(root, accepted, ledger)
    counts = Counter(status.values())
    assert counts["success"] + counts["interrupted"] == len(accepted), counts
    print(f"\nworker: {kills} kills, {len(accepted)} runs: {dict(counts)}")


def test_scheduler_killed_at_random_moments_loses_nothing(kill_project: Path, soak: bool) -> None:
    root = kill_project
    ledger = root / "ledger"
    sched_ledger = root / "sched-ledger"
    write_config(
        root,
        [job("every", f"echo $BATCH_RUN_ID >> {sched_ledger}", schedule_time="1")],
        settings={"kill_grace": 0.5},
    )
    kills = 200 if soak else 4
    accepted = queue_many(root, 400 if soak else 60, ledger)
    rng = random.Random(13)
    for _ in range(kills):
        process = start(root, "scheduler")
        time.sleep(rng.uniform(0.5, 2.0))  # long enough for the scheduler to start runs
        process.send_signal(signal.SIGKILL)
        process.wait(timeout=10)
    drained = run_cli(root, "queue", "worker", timeout=300)
    assert drained.returncode in (0, 1), drained.stderr
    assert "Traceback" not in drained.stderr
    status = check_survivors(root, accepted, ledger)
    counts = Counter(status.values())
    queued = Counter(status[r] for r in accepted)
    assert queued["success"] + queued["interrupted"] == len(accepted), queued
    # The interval job's runs also start once each.
    scheduled = Counter(sched_ledger.read_text().split()) if sched_ledger.exists() else Counter()
    assert all(
        scheduled[r] == 1 for r, s in status.items() if s == "success" and r not in set(accepted)
    )
    assert len(status) > len(accepted), "the interval job never ran"
    print(f"\nscheduler: {kills} kills, {len(status)} runs: {dict(counts)}")


def test_producers_workers_and_a_scheduler_at_once_run_everything_exactly_once(
    kill_project: Path,
) -> None:
    root = kill_project
    ledger = root / "ledger"
    daemons = [start(root, "queue", "worker", "--forever") for _ in range(2)]
    daemons.append(start(root, "scheduler"))
    producer = (
        "import contextlib, io, sys\n"
        "from batch_runner.cli.main import main\n"
        "for i in range(25):\n"
        "    with contextlib.redirect_stdout(io.StringIO()):\n"
        "        assert main(['queue', 'add', '--', 'sh', '-c',\n"
        f"                     'echo $BATCH_RUN_ID >> {ledger}']) == 0\n"
    )
    env = env_for(root)
    producers = [
        subprocess.Popen([sys.executable, "-c", producer], env=env, cwd=root) for _ in range(8)
    ]
    try:
        for p in producers:
            assert p.wait(timeout=120) == 0
        total = 8 * 25
        wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) >= total, 60)
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
    assert sum(1 for s in status.values() if s not in FINISHED) == 0
    assert integrity(root) == "ok"
    jsonl_records(root)
