"""A slot's runs back to back (runs/handoff.py): the next runs are reserved while one runs,
re-checked just before each starts, and the bookkeeping is written while the next one runs.

Real workers in subprocesses, real jobs, the real state database; the order runs started in is
what the jobs themselves wrote.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import job, read_results, run_cli, start_cli, wait_for, write_config
from fault_helpers import integrity, runs
from margins import SLOW

from batch_runner.cli import app
from batch_runner.cli.parser import build_parser
from batch_runner.errors import OperationFailed
from batch_runner.runs.context import RunnerContext
from batch_runner.runs.queue import remove, stop
from batch_runner.state.layout import LogLayout
from batch_runner.state.slots import Slot


@pytest.fixture
def queue_project(project: Path) -> Path:
    write_config(project, [job("tick", "true")])
    return project


def add(root: Path, *argv: str) -> str:
    done = run_cli(root, "queue", "add", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def writes(order: Path, name: str, gate: Path | None = None) -> list[str]:
    """A job that says it started (in ``order``), then waits for ``gate`` if given."""
    wait = f"; while [ ! -e {gate} ]; do sleep 0.01; done" if gate else ""
    return ["--", "sh", "-c", f"echo {name} >> {order}{wait}"]


def started(order: Path) -> list[str]:
    return order.read_text().split() if order.exists() else []


@pytest.fixture
def worker(queue_project: Path) -> Iterator[list[Any]]:
    """Workers started by a test, killed at its end if still running."""
    started_workers: list[Any] = []
    yield started_workers
    for process in started_workers:
        if process.poll() is None:
            process.kill()
        process.communicate(timeout=SLOW)


def test_a_run_of_higher_priority_added_meanwhile_starts_before_the_reserved_ones(
    queue_project: Path, worker: list[Any]
) -> None:
    order, gate = queue_project / "order", queue_project / "go"
    add(queue_project, *writes(order, "a", gate))
    b = add(queue_project, *writes(order, "b"))
    add(queue_project, *writes(order, "c"))
    worker.append(start_cli(queue_project, "queue", "worker"))
    wait_for(lambda: runs(queue_project).get(b) == "reserved", SLOW)
    add(queue_project, "--priority", "5", *writes(order, "d"))
    gate.touch()
    assert worker[0].wait(timeout=SLOW) == 0
    assert started(order) == ["a", "d", "b", "c"]
    assert set(runs(queue_project).values()) == {"success"}


def test_a_run_that_comes_due_while_others_are_reserved_starts_first_if_it_ranks_first(
    queue_project: Path, worker: list[Any]
) -> None:
    """Nothing is written meanwhile: the reservation is old, so it is checked in full."""
    order, gate = queue_project / "order", queue_project / "go"
    add(queue_project, *writes(order, "a", gate))
    b = add(queue_project, *writes(order, "b"))
    added = time.time()
    add(queue_project, "--priority", "5", "--delay", "1", *writes(order, "c"))
    worker.append(start_cli(queue_project, "queue", "worker"))
    wait_for(lambda: runs(queue_project).get(b) == "reserved", SLOW)
    wait_for(lambda: time.time() > added + 1.2, SLOW)
    gate.touch()
    assert worker[0].wait(timeout=SLOW) == 0
    assert started(order) == ["a", "c", "b"]


def test_a_pause_while_a_run_is_reserved_keeps_it_from_starting(
    queue_project: Path, worker: list[Any]
) -> None:
    order, gate = queue_project / "order", queue_project / "go"
    a = add(queue_project, *writes(order, "a", gate))
    b = add(queue_project, *writes(order, "b"))
    worker.append(start_cli(queue_project, "queue", "worker"))
    wait_for(lambda: runs(queue_project).get(b) == "reserved", SLOW)
    assert run_cli(queue_project, "queue", "pause").returncode == 0
    gate.touch()
    assert worker[0].wait(timeout=SLOW) == 0
    assert started(order) == ["a"]
    assert runs(queue_project) == {a: "success", b: "pending"}  # put back as it was


def test_a_reserved_run_removed_never_starts(queue_project: Path, worker: list[Any]) -> None:
    order, gate = queue_project / "order", queue_project / "go"
    add(queue_project, *writes(order, "a", gate))
    b = add(queue_project, *writes(order, "b"))
    add(queue_project, *writes(order, "c"))
    worker.append(start_cli(queue_project, "queue", "worker"))
    wait_for(lambda: runs(queue_project).get(b) == "reserved", SLOW)
    assert run_cli(queue_project, "queue", "remove", b).returncode == 0
    gate.touch()
    assert worker[0].wait(timeout=SLOW) == 0
    assert started(order) == ["a", "c"]
    assert runs(queue_project)[b] == "canceled"
    assert [r["status"] for r in read_results(queue_project) if r["run_id"] == b] == ["canceled"]


def context(root: Path) -> RunnerContext:
    argv = ["--root", str(root), "status"]
    return app.context(build_parser(argv).parse_args(argv))


def test_a_reserved_run_its_slot_notes_as_started_is_running_for_remove_and_stop(
    queue_project: Path,
) -> None:
    """Started less than 20 ms ago, its row still says reserved: its slot's note says more."""
    run_id = add(queue_project, "--", "true")
    ctx = context(queue_project)
    slot = Slot(LogLayout(str(queue_project / "logs")), "default", 0)
    assert slot.acquire(wait=False)  # its runner, alive
    try:
        (run,) = ctx.store.reserve_next(time.time(), os.getpid(), ctx.host, lane="default", slot=0)
        assert slot.note_start(run_id, run["attempt"] + 1)
        with pytest.raises(OperationFailed, match=f"batch_runner stop {run_id}"):
            remove(ctx, run_id)
        assert stop(ctx, run_id)["status"] == "running"
        assert (ctx.store.get_run(run_id) or {}).get("stop_requested")
        assert runs(queue_project)[run_id] == "reserved"
    finally:
        slot.release()
        ctx.store.close()
    assert read_results(queue_project) == []


def test_a_wide_lane_reserves_nothing(project: Path, worker: list[Any]) -> None:
    """In a lane wider than one a reserved run would wait for this slot while another slot
    is free: its runs are claimed when they start, as before."""
    write_config(project, [job("tick", "true")], settings={"lanes": {"wide": 2}})
    ids = [add(project, "--lane", "wide", "--", "sleep", "0.2") for _ in range(4)]
    seen: set[str] = set()
    worker.append(start_cli(project, "queue", "worker"))
    while worker[0].poll() is None:
        seen |= set(runs(project).values())
        time.sleep(0.01)
    assert "reserved" not in seen and "running" in seen
    assert {runs(project)[i] for i in ids} == {"success"}


def pgid_of(database: Path, run_id: str) -> int | None:
    with sqlite3.connect(database, timeout=SLOW) as db:
        row = db.execute("SELECT pgid FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return None if row is None else row[0]


def test_a_worker_killed_after_a_runs_line_before_its_row_records_it_from_the_line(
    queue_project: Path, worker: list[Any]
) -> None:
    """The new window: the run's JSONL line is written, its row not yet (it waits for the
    next run's start). The write lock held here keeps the worker in that window."""
    order, gate = queue_project / "order", queue_project / "go"
    a = add(queue_project, *writes(order, "a", gate))
    b = add(queue_project, *writes(order, "b"))
    worker.append(start_cli(queue_project, "queue", "worker"))
    wait_for(lambda: runs(queue_project).get(b) == "reserved", SLOW)
    database = queue_project / "logs" / "state" / "batch_runner.sqlite3"
    # Past its 20th millisecond, when its row is written (else the worker would wait for the
    # lock below right there, in the middle of the run, and never write its line).
    wait_for(lambda: pgid_of(database, a) is not None, SLOW)
    lock = sqlite3.connect(database, isolation_level=None, timeout=SLOW)
    try:
        lock.execute("BEGIN IMMEDIATE")  # the worker's next commit waits for it
        gate.touch()
        wait_for(lambda: any(r["run_id"] == a for r in read_results(queue_project)), SLOW)
        assert runs(queue_project)[a] == "running"  # the line is there, the row says running
        worker[0].send_signal(signal.SIGKILL)
        worker[0].wait(timeout=SLOW)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert runs(queue_project) == {a: "success", b: "success"}  # not interrupted
    assert [r["status"] for r in read_results(queue_project)] == ["success", "success"]
    assert started(order) == ["a", "b"]  # each once
    assert integrity(queue_project) == "ok"
