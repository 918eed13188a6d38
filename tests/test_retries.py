"""Retries with backoff and the consecutive-failure count (SPEC 8), end to end through the CLI."""

from __future__ import annotations

import itertools
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from datetime import datetime
from pathlib import Path

import pytest
from conftest import REPO, job, read_results, run_cli, write_config
from fault_helpers import database

from batch_runner.runs.finish import BACKOFF_CAP_SECONDS, retry_delay


def counting(counter: Path, succeed_from: int) -> list[str]:
    """A command that fails until its ``succeed_from``-th run (the count is kept in a file)."""
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}; "
        f"echo attempt $n; test $n -ge {succeed_from}"
    )
    return ["sh", "-c", script]


def when(record: dict, key: str) -> float:
    return datetime.fromisoformat(record[key]).timestamp()


def error_count(root: Path) -> int:
    [row] = json.loads(run_cli(root, "list", "--json").stdout)
    return row["error_count"]


# --- retry_delay ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "attempt", "delay"),
    [
        ({"backoff": "fixed", "backoff_seconds": 30}, 1, 30),
        ({"backoff": "fixed", "backoff_seconds": 30}, 7, 30),
        ({"backoff": "exponential", "backoff_seconds": 30}, 1, 30),
        ({"backoff": "exponential", "backoff_seconds": 30}, 2, 60),
        ({"backoff": "exponential", "backoff_seconds": 30}, 4, 240),
        ({}, 3, 120),  # the defaults: exponential from 30 s
        ({"backoff": "exponential", "backoff_seconds": 0}, 5, 0),
    ],
)
def test_retry_delay(spec: dict, attempt: int, delay: float) -> None:
    assert retry_delay(spec, attempt) == delay


@pytest.mark.parametrize(
    ("spec", "attempt"),
    [
        ({"backoff": "exponential", "backoff_seconds": 30}, 8),  # 3840 s
        ({"backoff": "exponential", "backoff_seconds": 1}, 999),  # no overflow at max_attempts
        ({"backoff": "exponential", "backoff_seconds": 315_360_000}, 999),
        ({"backoff": "fixed", "backoff_seconds": 7200}, 1),
    ],
)
def test_retry_delay_is_capped_at_one_hour(spec: dict, attempt: int) -> None:
    assert BACKOFF_CAP_SECONDS == 3600
    assert retry_delay(spec, attempt) == 3600


# --- run-job through the retries ----------------------------------------------------------------


def test_failing_twice_then_succeeding_is_one_successful_run(project: Path) -> None:
    counter = project / "count"
    write_config(
        project,
        [job("flaky", counting(counter, 3), max_attempts=3, backoff="fixed", backoff_seconds=0.2)],
    )
    result = run_cli(project, "run-job", "flaky")
    assert result.returncode == 0, result.stderr
    assert "attempt 3/3" in result.stdout
    records = read_results(project)
    assert [r["attempt"] for r in records] == [1, 2, 3]
    assert [r["status"] for r in records] == ["error", "error", "success"]
    assert [r["trigger"] for r in records] == ["manual", "retry", "retry"]
    assert len({r["run_id"] for r in records}) == 1
    assert all(r["max_attempts"] == 3 for r in records)
    assert [r["output"] for r in records] == ["attempt 1\n", "attempt 2\n", "attempt 3\n"]
    assert len({r["log_file"] for r in records}) == 3  # one log file per attempt
    for before, after in itertools.pairwise(records):
        assert when(after, "start_time") - when(before, "end_time") >= 0.2 - 0.01
    assert error_count(project) == 0


def test_exponential_backoff_doubles_the_wait(project: Path) -> None:
    counter = project / "count"
    write_config(
        project,
        [
            job(
                "flaky",
                counting(counter, 3),
                max_attempts=3,
                backoff="exponential",
                backoff_seconds=0.2,
            )
        ],
    )
    assert run_cli(project, "run-job", "flaky").returncode == 0
    first, second, third = read_results(project)
    assert when(second, "start_time") - when(first, "end_time") >= 0.2 - 0.01
    assert when(third, "start_time") - when(second, "end_time") >= 0.4 - 0.01


def test_all_attempts_failing_is_one_failed_run(project: Path) -> None:
    write_config(
        project,
        [
            job(
                "broken",
                ["sh", "-c", "echo nope >&2; exit 3"],
                max_attempts=3,
                backoff="fixed",
                backoff_seconds=0.1,
            )
        ],
    )
    result = run_cli(project, "run-job", "broken")
    assert result.returncode == 1
    records = read_results(project)
    assert [r["status"] for r in records] == ["error"] * 3
    assert [r["exit_code"] for r in records] == [3] * 3
    assert all("nope" in r["error"] for r in records)
    assert error_count(project) == 1  # one failed run, not one per attempt
    # A new process (a restart) picks the count up from the state database.
    assert run_cli(project, "run-job", "broken").returncode == 1
    assert error_count(project) == 2
    assert len(read_results(project)) == 6


def test_all_attempts_timing_out_exits_124(project: Path) -> None:
    write_config(
        project,
        [job("slow", "sleep 5", timeout=0.3, max_attempts=2, backoff="fixed", backoff_seconds=0.1)],
        settings={"kill_grace": 0.2},
    )
    result = run_cli(project, "run-job", "slow")
    assert result.returncode == 124, result.stderr
    records = read_results(project)
    assert [r["status"] for r in records] == ["timeout", "timeout"]
    assert [r["trigger"] for r in records] == ["manual", "retry"]
    assert error_count(project) == 1


def test_a_success_after_failed_runs_resets_the_count(project: Path) -> None:
    flag = project / "flag"
    write_config(
        project,
        [job("flaky", f"test -e {flag}", max_attempts=2, backoff="fixed", backoff_seconds=0)],
    )
    for expected in (1, 2, 3):
        assert run_cli(project, "run-job", "flaky").returncode == 1
        assert error_count(project) == expected
    flag.touch()
    assert run_cli(project, "run-job", "flaky").returncode == 0
    assert error_count(project) == 0
    [row] = json.loads(run_cli(project, "list", "--json").stdout)
    assert row["last_status"] == "success"


def test_a_waiting_retry_does_not_hold_the_executor(project: Path) -> None:
    """While A waits out its backoff, B (waiting in line meanwhile) runs; then A's retry."""
    counter, gate = project / "count", project / "gate"
    # A's first attempt fails only once B waits in line, however slowly B starts; the second
    # attempt succeeds.
    script = (
        f"n=$(cat {counter} 2>/dev/null || echo 0); n=$((n + 1)); echo $n > {counter}; "
        f"if [ $n -eq 1 ]; then while [ ! -e {gate} ]; do sleep 0.01; done; exit 1; fi"
    )
    write_config(
        project,
        [
            job("a", ["sh", "-c", script], max_attempts=2, backoff="fixed", backoff_seconds=1.5),
            job("b", "echo b"),
        ],
    )
    first, second = _start(project, "a"), None
    try:
        _wait_for(counter.exists)
        second = _start(project, "b")
        _wait_for(lambda: _statuses_of(project, "b") == ["pending"])
        gate.touch()
        assert second.wait(timeout=30) == 0, second.stderr.read() if second.stderr else ""
        assert first.wait(timeout=30) == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.send_signal(signal.SIGKILL)
                proc.wait(timeout=10)
    a1, b, a2 = read_results(project)
    assert (a1["job_name"], a1["attempt"], a1["status"]) == ("a", 1, "error")
    assert (b["job_name"], b["status"]) == ("b", "success")
    assert (a2["job_name"], a2["attempt"], a2["status"]) == ("a", 2, "success")
    assert when(b, "end_time") <= when(a2, "start_time")
    assert when(a2, "start_time") - when(a1, "end_time") >= 1.5 - 0.01


def _start(root: Path, name: str) -> subprocess.Popen:
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    return subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "run-job", name],
        cwd=root,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _statuses_of(root: Path, name: str) -> list[str]:
    """Straight from the state database: ``run-job`` queues its run before it waits its turn."""
    if not database(root).exists():
        return []
    with sqlite3.connect(database(root), timeout=30) as db:
        query = "SELECT status FROM runs WHERE job_name = ?"
        return [status for (status,) in db.execute(query, (name,))]


def test_the_scheduler_runs_the_retries_of_a_scheduled_run(project: Path) -> None:
    counter = project / "count"
    write_config(
        project,
        [
            job(
                "flaky",
                counting(counter, 2),
                schedule_time="1s",
                max_attempts=2,
                backoff="fixed",
                backoff_seconds=0.2,
            )
        ],
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    log = project / "scheduler.stderr"
    with open(log, "w") as stderr:
        daemon = subprocess.Popen(
            [sys.executable, "-m", "batch_runner", "scheduler"],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        _wait_for(lambda: any(r["trigger"] == "retry" for r in read_results(project)))
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(timeout=20)
    [retry] = [r for r in read_results(project) if r["trigger"] == "retry"]
    # Only the records of that run: a busy machine may add a skipped occurrence in between.
    first, second = [r for r in read_results(project) if r["run_id"] == retry["run_id"]]
    assert [(r["attempt"], r["status"], r["trigger"]) for r in (first, second)] == [
        (1, "error", "schedule"),
        (2, "success", "retry"),
    ], log.read_text()
    assert first["run_id"] == second["run_id"]
    assert when(second, "start_time") - when(first, "end_time") >= 0.2 - 0.01


def _wait_for(predicate, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "timed out waiting"
        time.sleep(0.02)
