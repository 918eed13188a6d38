"""Review of issue 19: a run a dead worker had reserved is not due for the scheduler.

Before the hand-off, the worker's next run stayed ``pending``: the scheduler's lane thread saw
it due, waited for the slot in flock and took it over the moment the worker died. Now it is
``reserved``, which ``next_due_at`` does not count: the thread sleeps (up to
``IDLE_RECHECK_SECONDS``, a minute) before it reaps it and starts it (SPEC 6: a due run starts
within 50 ms once the executor is free).
"""

from __future__ import annotations

import json
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import job, run_cli, start_cli, wait_for, write_config
from fault_helpers import runs
from margins import PROMPT, SLOW


@pytest.fixture
def processes() -> Iterator[list[Any]]:
    started: list[Any] = []
    yield started
    for process in started:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=SLOW)


def add(root: Path, *argv: str) -> str:
    done = run_cli(root, "queue", "add", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def scheduler_alive(root: Path) -> bool:
    done = run_cli(root, "status", "--json")
    return done.returncode == 0 and json.loads(done.stdout)["scheduler"]["alive"]


def test_the_scheduler_takes_over_a_dead_workers_reserved_run_at_once(
    project: Path, processes: list[Any]
) -> None:
    write_config(project, [job("tick", "true")])
    order, gate = project / "order", project / "go"
    add(project, "--", "sh", "-c", f"while [ ! -e {gate} ]; do sleep 0.01; done")
    b = add(project, "--", "sh", "-c", f"echo b >> {order}")
    worker = start_cli(project, "queue", "worker")
    processes.append(worker)
    wait_for(lambda: runs(project).get(b) == "reserved", SLOW)
    processes.append(start_cli(project, "scheduler"))
    wait_for(lambda: scheduler_alive(project), SLOW)

    worker.send_signal(signal.SIGKILL)
    worker.wait(timeout=SLOW)
    gate.touch()  # the dead worker's job may end now; it is the scheduler's to reap

    wait_for(lambda: order.exists(), PROMPT)
    assert runs(project)[b] in ("running", "success")
