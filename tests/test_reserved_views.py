"""What users see and do with a reserved run (issue 19): a slot's next run, taken by its runner
while the slot's current run runs, but not started. It waits as a pending run does: listed,
counted and shown among the waiting runs (the word ``reserved`` said), and ``queue remove`` or
``stop`` cancel it as they cancel a pending run."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import job, read_results, run_cli, start_cli, wait_for, write_config
from fault_helpers import runs
from margins import SLOW
from test_completion import bash_complete

from batch_runner.runs.context import RunnerContext
from batch_runner.runs.queue import remove, stop
from batch_runner.state.layout import LogLayout
from batch_runner.state.slots import Slot
from batch_runner.state.store import Store, open_store


def layout_of(root: Path) -> LogLayout:
    return LogLayout(root / "logs")


@pytest.fixture
def store(project: Path) -> Iterator[Store]:
    write_config(project, [job("nightly", "true")])
    assert run_cli(project, "status").returncode == 0  # the state database, created
    opened = open_store(layout_of(project))
    yield opened
    opened.close()


@pytest.fixture
def slot(project: Path, store: Store) -> Iterator[Slot]:
    """Slot 0 of the default lane, held here: the owner of a run in it looks alive."""
    held = Slot(layout_of(project), "default", 0)
    assert held.acquire(wait=False)
    yield held
    held.release()


def add(root: Path, *argv: str) -> str:
    result = run_cli(root, "queue", "add", *argv)
    assert result.returncode == 0, result.stderr
    return str(result.stdout).strip()


def reserve(store: Store, owner_pid: int, lane: str = "default") -> dict[str, Any]:
    (run,) = store.reserve_next(time.time(), owner_pid, socket.gethostname(), lane=lane, slot=0)
    assert run is not None and run["status"] == "reserved"
    return run


def three_runs(root: Path, store: Store) -> tuple[str, str, str]:
    """A run running and one reserved in the held slot 0 (this process is their runner), and
    one pending; added in the opposite order, so that the listing's order is its own."""
    pending = add(root, "--", "true")
    reserved = add(root, "--priority", "5", "--", "true")
    running = add(root, "--priority", "9", "--", "true")
    claimed = store.claim_next(time.time(), os.getpid(), socket.gethostname(), slot=0)
    assert claimed is not None and claimed["run_id"] == running
    assert reserve(store, os.getpid())["run_id"] == reserved
    return running, reserved, pending


def test_queue_list_shows_a_reserved_run_between_running_and_pending(
    project: Path, store: Store, slot: Slot
) -> None:
    running, reserved, pending = three_runs(project, store)
    listed = json.loads(run_cli(project, "queue", "list", "--json").stdout)
    assert [(r["run_id"], r["status"]) for r in listed] == [
        (running, "running"),
        (reserved, "reserved"),
        (pending, "pending"),
    ]
    assert ["reserved_at" in r for r in listed] == [False, True, False]  # as ever but for it
    text = run_cli(project, "queue", "list").stdout.splitlines()
    assert [line.split()[:2] for line in text[1:]] == [
        [running, "running"],
        [reserved, "reserved"],
        [pending, "pending"],
    ]


def test_status_counts_a_reserved_run_among_the_waiting_ones(
    project: Path, store: Store, slot: Slot
) -> None:
    running, reserved, pending = three_runs(project, store)
    status = json.loads(run_cli(project, "status", "--json").stdout)
    assert set(status) == {"scheduler", "paused", "running", "pending"}  # SPEC 9's shape
    assert [r["run_id"] for r in status["running"]] == [running]
    assert [(r["run_id"], r["status"]) for r in status["pending"]] == [
        (reserved, "reserved"),
        (pending, "pending"),
    ]
    text = run_cli(project, "status").stdout
    assert f"waiting: 2 (1 reserved): adhoc ({reserved}, reserved), adhoc ({pending})\n" in text


def test_a_lane_counts_its_reserved_run_as_waiting(project: Path, store: Store) -> None:
    write_config(project, [job("nightly", "true")], settings={"lanes": {"wide": 2}})
    add(project, "--lane", "wide", "--", "true")
    add(project, "--lane", "wide", "--", "true")
    held = Slot(layout_of(project), "wide", 0)
    assert held.acquire(wait=False)
    try:
        reserve(store, os.getpid(), lane="wide")
        status = json.loads(run_cli(project, "status", "--json").stdout)
        assert status["lanes"]["wide"]["pending"] == 2
        assert "lane wide: 0 of 2 running (nothing), 2 waiting" in run_cli(project, "status").stdout
    finally:
        held.release()


def test_the_store_counts_a_reserved_run_as_waiting(project: Path, store: Store) -> None:
    add(project, "--", "true")
    add(project, "--", "true")
    reserve(store, os.getpid())
    assert store.count_pending() == 2
    assert store.pending_by_lane() == {"default": 2}


def test_queue_show_of_a_reserved_retry_says_it_has_not_ended(
    project: Path, store: Store, slot: Slot
) -> None:
    run_id = add(project, "--max-attempts", "2", "--", "false")
    before = time.time() - 10
    # Its first attempt failed; the retry is due, and taken as the slot's next run.
    store.update_run(
        run_id, attempt=1, started_at=before, ended_at=before + 1, attempt_status="error"
    )
    reserve(store, os.getpid())
    shown = json.loads(run_cli(project, "queue", "show", "--json", run_id).stdout)
    assert shown["status"] == "reserved"
    assert shown["end_time"] is None and shown["duration_seconds"] is None
    assert shown["reserved_at"] is not None and shown["start_time"] is not None  # its last try
    text = run_cli(project, "queue", "show", run_id).stdout
    assert "status            reserved" in text


def test_queue_remove_cancels_a_reserved_run(project: Path, store: Store, slot: Slot) -> None:
    run_id = add(project, "--", "true")
    reserve(store, os.getpid())
    result = run_cli(project, "queue", "remove", run_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"canceled run {run_id} (adhoc)\n"
    assert runs(project)[run_id] == "canceled"
    assert [(r["run_id"], r["status"]) for r in read_results(project)] == [(run_id, "canceled")]


def test_stop_cancels_a_reserved_run(project: Path, store: Store, slot: Slot) -> None:
    run_id = add(project, "--", "true")
    reserve(store, os.getpid())
    result = run_cli(project, "stop", run_id)
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"canceled run {run_id} of adhoc before it started\n"
    assert runs(project)[run_id] == "canceled"
    assert [(r["run_id"], r["status"]) for r in read_results(project)] == [(run_id, "canceled")]


def test_stop_of_a_job_whose_run_is_reserved_cancels_it(
    project: Path, store: Store, slot: Slot
) -> None:
    queued = run_cli(project, "run-job", "--queue", "nightly")
    run_id = queued.stdout.strip()
    reserve(store, os.getpid())
    result = run_cli(project, "stop", "nightly")
    assert result.returncode == 0, result.stderr
    assert runs(project)[run_id] == "canceled"


def test_remove_of_a_run_reserved_by_a_dead_runner_cancels_it(project: Path, store: Store) -> None:
    gone = subprocess.Popen(["true"])
    gone.wait()
    run_id = add(project, "--", "true")
    # Its runner was SIGKILLed before it started the run: no run log, and its slot is free.
    reserve(store, gone.pid)
    result = run_cli(project, "queue", "remove", run_id)
    assert result.returncode == 0, result.stderr
    assert runs(project)[run_id] == "canceled"
    assert [(r["run_id"], r["status"]) for r in read_results(project)] == [(run_id, "canceled")]


def context(project: Path) -> RunnerContext:
    from batch_runner.cli import app
    from batch_runner.cli.parser import build_parser

    argv = ["--root", str(project), "status"]
    return app.context(build_parser(argv).parse_args(argv))


class _OwnerStarts:
    """The reserved run's owner starts it (its own connection, its own commit) at the moment
    ``end_if_pending`` is about to run: the race a remove or a stop can lose."""

    def __init__(self, project: Path, ctx: RunnerContext, run_id: str) -> None:
        self.owner = open_store(layout_of(project))
        self.run_id, self.real = run_id, ctx.store.end_if_pending

    def __call__(self, run_id: str, status: str, error: str | None, now: float, *rest: Any) -> bool:
        run = self.owner.get_run(self.run_id)
        assert run is not None
        run.update(attempt=run["attempt"] + 1, started_at=time.time(), log_file="/dev/null")
        with self.owner.transaction():
            assert self.owner.start_reserved(run, os.getpid())
        return self.real(run_id, status, error, now, *rest)


def test_a_reserved_run_started_meanwhile_is_refused_by_remove_and_stopped_by_stop(
    project: Path, store: Store, slot: Slot, monkeypatch: pytest.MonkeyPatch
) -> None:
    from batch_runner.errors import OperationFailed

    for action in ("remove", "stop"):
        run_id = add(project, "--", "true")
        reserve(store, os.getpid())
        ctx = context(project)
        starts = _OwnerStarts(project, ctx, run_id)
        monkeypatch.setattr(ctx.store, "end_if_pending", starts)
        try:
            if action == "remove":
                with pytest.raises(OperationFailed, match=f"batch_runner stop {run_id}"):
                    remove(ctx, run_id)
            else:
                assert stop(ctx, run_id)["status"] == "running"
                assert (store.get_run(run_id) or {}).get("stop_requested")
        finally:
            starts.owner.close()
            ctx.store.close()
        assert runs(project)[run_id] == "running"
        store.update_run(run_id, status="success")  # done with it: the next one is reserved
    assert read_results(project) == []


def test_completion_offers_a_reserved_run(project: Path, store: Store, slot: Slot) -> None:
    run_id = add(project, "--", "true")
    reserve(store, os.getpid())
    assert bash_complete(project, f"batch_runner queue remove {run_id[:-1]}") == [run_id]


def test_a_run_job_interrupted_while_its_run_is_reserved_cancels_it(
    project: Path, store: Store, slot: Slot
) -> None:
    # The slot held here: the run-job waits for it, and this process reserves its run.
    waiting = start_cli(project, "run-job", "nightly")
    try:
        wait_for(lambda: len(runs(project)) == 1, SLOW)
        (run_id,) = runs(project)
        reserve(store, os.getpid())
        waiting.send_signal(signal.SIGTERM)
        _, err = waiting.communicate(timeout=SLOW)
    finally:
        waiting.kill()
        waiting.wait()
    assert waiting.returncode == 1
    assert err == "nightly: interrupted while waiting; the run ended canceled\n"
    assert runs(project)[run_id] == "canceled"
    assert [(r["run_id"], r["status"]) for r in read_results(project)] == [(run_id, "canceled")]
