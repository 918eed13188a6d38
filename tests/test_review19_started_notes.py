"""Review of issue 19: a slot's note names only the LAST run it started, while up to eight
runs started from reservations may have ended with their rows still ``reserved`` (their end
waits for the next commit). Such a run is started (and over) for everyone who asks.

The worker runs in a subprocess with ``supervise.STARTED_REPORT_DELAY`` raised, so that the
commit which would otherwise come 20 ms into the next run (``Handoff.started``) does not come
while the test looks: the same state exists for those 20 ms (and for up to eight short runs in
a row) in every worker; the patch only holds it still.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import job, read_results, run_cli, wait_for, write_config
from fault_helpers import env_for, runs
from margins import SLOW

WORKER = (
    "import sys\n"
    "import batch_runner.execution.supervise as supervise\n"
    "supervise.STARTED_REPORT_DELAY = 3600.0  # no commit 20 ms into a run\n"
    "from batch_runner.cli.main import main\n"
    "sys.exit(main(['queue', 'worker']))\n"
)


@pytest.fixture
def root(project: Path) -> Path:
    write_config(project, [job("tick", "true")])
    return project


@pytest.fixture
def workers() -> Iterator[list[subprocess.Popen[str]]]:
    started: list[subprocess.Popen[str]] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=SLOW)


def start_worker(root: Path, workers: list[subprocess.Popen[str]]) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", WORKER],
        env=env_for(root),
        cwd=root,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    workers.append(process)
    return process


def add(root: Path, *argv: str) -> str:
    done = run_cli(root, "queue", "add", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def says(order: Path, name: str, then: str = "") -> list[str]:
    return ["--", "sh", "-c", f"echo {name} >> {order}{then}"]


def gated(gate: Path) -> str:
    return f"; while [ ! -e {gate} ]; do sleep 0.01; done"


def started(order: Path) -> list[str]:
    return order.read_text().split() if order.exists() else []


def lines(root: Path, run_id: str) -> list[str]:
    return [r["status"] for r in read_results(root) if r["run_id"] == run_id]


@pytest.mark.parametrize("command", [("queue", "remove"), ("stop",)])
def test_remove_and_stop_never_cancel_a_reserved_run_that_already_ran(
    root: Path, workers: list[Any], command: tuple[str, ...]
) -> None:
    """b started from its reservation and ended (its line is written); c started after it,
    so the slot's note names c. ``queue remove b`` (``stop b``) must refuse: b is over. It
    cancels it: a second line, ``canceled``, for a run that ran, and exit 0."""
    order, gate_a, gate_c = root / "order", root / "go-a", root / "go-c"
    add(root, *says(order, "a", gated(gate_a)))
    b = add(root, *says(order, "b"))
    add(root, *says(order, "c", gated(gate_c)))
    add(root, *says(order, "d"))
    worker = start_worker(root, workers)
    wait_for(lambda: runs(root).get(b) == "reserved", SLOW)
    gate_a.touch()
    wait_for(lambda: "c" in started(order), SLOW)
    wait_for(lambda: lines(root, b) == ["success"], SLOW)
    assert runs(root)[b] == "reserved"  # ended, its row not written yet

    removed = run_cli(root, *command, b)

    gate_c.touch()
    assert worker.wait(timeout=SLOW) == 0
    assert started(order) == ["a", "b", "c", "d"]
    assert lines(root, b) == ["success"], f"b ran once, yet its lines are {lines(root, b)}"
    assert removed.returncode != 0, f"{' '.join(command)} canceled a run that had run"


def test_recovery_never_runs_again_a_reserved_run_that_ran_without_a_run_log(
    root: Path, workers: list[Any]
) -> None:
    """The worker dies while c (started after b) runs: b ran and wrote its line, its row still
    says reserved, the note names c. b's run log could not be created (here: a dangling
    symlink where it goes, as a quota or a file-descriptor limit would refuse it): recovery
    looks for its line only when the note or the log says it started, and puts b back in
    the queue. It runs a second time."""
    order, gate_a = root / "order", root / "go-a"
    add(root, *says(order, "a", gated(gate_a)))
    b = add(root, *says(order, "b"))
    add(root, *says(order, "c", "; kill -KILL $PPID"))  # the worker dies as c starts
    add(root, *says(order, "d"))
    log = root / "logs" / "runs" / b[:8] / f"{b}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    log.symlink_to(root / "nowhere" / "b.log")
    worker = start_worker(root, workers)
    wait_for(lambda: runs(root).get(b) == "reserved", SLOW)
    gate_a.touch()
    assert worker.wait(timeout=SLOW) == -signal.SIGKILL
    assert lines(root, b) == ["success"] and runs(root)[b] == "reserved"

    assert run_cli(root, "queue", "worker").returncode in (0, 1)  # c ends interrupted: 1

    assert started(order).count("b") == 1, f"b started {started(order).count('b')} times"
    assert lines(root, b) == ["success"]
    assert runs(root)[b] == "success"
