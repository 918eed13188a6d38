"""Finding and ending a run's processes: its group, stragglers by environ, pid-reuse safety."""

from __future__ import annotations

import os
import select
import signal
import subprocess
import time
import uuid
from collections.abc import Iterator

import pytest
from conftest import process_running as running
from margins import PROMPT, SLOW

from batch_runner.execution.procs import first_group_of_run, group_alive, kill_group, terminate_run


@pytest.fixture
def run_id() -> str:
    return f"procs-{uuid.uuid4().hex[:12]}"


@pytest.fixture
def spawn() -> Iterator:
    """Start a process in its own session; every one is killed and reaped after the test."""
    started: list[subprocess.Popen[bytes]] = []

    def start(script: str, run_id: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "BATCH_RUN_ID"}
        if run_id is not None:
            env["BATCH_RUN_ID"] = run_id
        proc = subprocess.Popen(
            ["sh", "-c", script],
            env=env,
            start_new_session=True,
            stdout=subprocess.PIPE,
            stdin=subprocess.DEVNULL,
        )
        started.append(proc)
        return proc

    yield start
    for proc in started:
        kill_group(proc.pid, signal.SIGKILL)
        proc.kill()
        proc.wait(timeout=5)
        if proc.stdout:
            proc.stdout.close()


def first_line_pid(proc: subprocess.Popen[bytes]) -> int:
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], 5.0)
    assert ready, "the script printed nothing in 5 s"
    return int(proc.stdout.readline())


def test_a_run_is_found_by_its_exact_run_id(spawn, run_id: str) -> None:
    # Started before the run's own process: found first if the match were loose.
    spawn("exec sleep 1000", run_id + "x")
    spawn("exec sleep 1000")
    mine = spawn("exec sleep 1000", run_id)
    assert _wait_for(lambda: first_group_of_run(run_id) == mine.pid)
    assert first_group_of_run(run_id + "y") is None


def test_group_alive_ignores_zombies(spawn) -> None:
    proc = spawn("exit 0")
    assert _wait_for(lambda: not running(proc.pid))  # a zombie until reaped
    assert kill_group(proc.pid, 0)  # the kernel still counts the zombie as a member
    assert group_alive(proc.pid) is False
    alive = spawn("exec sleep 1000")
    assert group_alive(alive.pid) is True


def test_terminate_run_ends_group_and_stragglers(spawn, run_id: str) -> None:
    leader = spawn("setsid sleep 1000 & echo $!; sleep 1000", run_id)
    escaped = first_line_pid(leader)
    start = time.monotonic()
    assert terminate_run(leader.pid, run_id, grace=SLOW) is True
    assert time.monotonic() - start < PROMPT  # SIGTERM was enough: no waiting out the grace
    assert not running(escaped) and not running(leader.pid)


def test_terminate_run_sigkills_after_the_grace(spawn, run_id: str) -> None:
    leader = spawn(f"trap '' TERM; echo $$; sleep {SLOW:g}", run_id)  # sleep ignores TERM too
    first_line_pid(leader)  # the trap is set
    start = time.monotonic()
    assert terminate_run(leader.pid, run_id, grace=0.2) is True
    # The grace was given in full; SIGKILL came at its end, not at the job's own end.
    assert 0.2 <= time.monotonic() - start < PROMPT
    assert leader.wait(timeout=SLOW) == -signal.SIGKILL


def test_a_reused_pgid_without_the_run_id_is_left_alone(spawn, run_id: str) -> None:
    """Start-up reaping passes a pgid from the database: it may belong to someone else now."""
    stranger = spawn("exec sleep 1000")
    assert terminate_run(stranger.pid, run_id, grace=0.1) is True  # nothing of the run runs
    assert running(stranger.pid)


def test_without_a_pgid_only_the_run_id_counts(spawn, run_id: str) -> None:
    marked = spawn("exec sleep 1000", run_id)
    assert _wait_for(lambda: first_group_of_run(run_id) == marked.pid)
    assert terminate_run(None, run_id, grace=1.0) is True
    assert not running(marked.pid)


def test_the_runners_own_group_is_never_signalled(run_id: str) -> None:
    assert terminate_run(os.getpgrp(), run_id, grace=0.0) is True
    assert terminate_run(1, run_id, grace=0.0) is True


def test_kill_group_of_a_missing_or_special_group() -> None:
    assert kill_group(2**22 + 12345, signal.SIGTERM) is False
    assert kill_group(0, 0) is False  # killpg(0) would mean our own group
    assert kill_group(1, 0) is False
    assert group_alive(2**22 + 12345) is False


def _wait_for(condition, timeout: float = 5.0) -> bool:
    """For process-table changes made by exec, which give no event to wait on."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.01)
    return False
