"""The scheduler as PID 1 of a container (as supercronic is used): every orphan is reaped.

In a PID namespace of its own (``unshare --pid --fork --mount-proc``) the scheduler is init:
every process whose parent dies there is reparented to it, a job's or not. None may stay a
zombie, and a timed-out job's detached grandchild is ended as anywhere else.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from conftest import REPO, job, read_results, run_cli, wait_for, write_config
from test_orphans import SETTLE, stat_fields, with_marker


def _unshare_unusable() -> str | None:
    if sys.platform != "linux" or shutil.which("unshare") is None:
        return "needs Linux and util-linux's unshare"
    try:
        probe = subprocess.run(
            ["unshare", "--pid", "--fork", "--mount-proc", "true"],
            capture_output=True,
            text=True,
            timeout=30,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"unshare cannot run: {exc}"
    if probe.returncode != 0:
        return f"unshare --pid needs root or user namespaces: {probe.stderr.strip()}"
    return None


pytestmark = pytest.mark.skipif(bool(_unshare_unusable()), reason=str(_unshare_unusable()))


def pid_namespace(pid: int) -> str | None:
    try:
        return os.readlink(f"/proc/{pid}/ns/pid")
    except OSError:
        return None


def namespace_members(init: int) -> list[int]:
    """The pids (as seen from here) of every process in ``init``'s namespace but itself."""
    namespace = pid_namespace(init)
    return [
        int(name)
        for name in os.listdir("/proc")
        if name.isdigit() and int(name) != init and pid_namespace(int(name)) == namespace
    ]


def zombies_in(init: int) -> list[int]:
    return [pid for pid in namespace_members(init) if stat_fields(pid)[:1] == ["Z"]]


def children_of(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def test_the_scheduler_as_pid_1_reaps_every_orphan(project: Path) -> None:
    tag = f"{uuid.uuid4().int % 10**9:09d}"
    short = [f"0.{n}{tag}" for n in (2, 3, 4)]  # orphans that exit by themselves
    detached = f"302.{tag}"  # a timed-out job's grandchild, to be killed
    leaves = (
        f"setsid sh -c 'sleep {short[0]}' & (sleep {short[1]} &); "
        f"env -i setsid sleep {short[2]} >/dev/null 2>&1 & echo started"
    )
    write_config(
        project,
        [
            job("orphans", ["sh", "-c", leaves]),
            job("detach", ["sh", "-c", f"env -i setsid sleep {detached} & sleep 100"], timeout=1),
        ],
        settings={"kill_grace": 1},
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)}
    stderr = project / "scheduler.stderr"
    scheduler = [sys.executable, "-m", "batch_runner", "scheduler"]
    with open(stderr, "w") as err:
        unshare = subprocess.Popen(
            ["unshare", "--pid", "--fork", "--mount-proc", "--kill-child", *scheduler],
            cwd=project,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    try:
        wait_for(lambda: children_of(unshare.pid) or unshare.poll() is not None, SETTLE)
        (init,) = children_of(unshare.pid)
        assert _ns_pid(init) == 1
        wait_for(lambda: "scheduler started" in stderr.read_text() or unshare.poll(), SETTLE)
        for name in ("orphans", "detach"):
            queued = run_cli(project, "run-job", "--queue", name)
            assert queued.returncode == 0, queued.stderr
        _leave_orphans_from_outside_the_runs(init, [f"0.5{tag}", f"0.6{tag}"])
        wait_for(lambda: len(read_results(project)) == 2, SETTLE * 2)
        statuses = {r["job_name"]: r["status"] for r in read_results(project)}
        assert statuses == {"orphans": "success", "detach": "timeout"}, stderr.read_text()
        markers = [*short, f"0.5{tag}", f"0.6{tag}", detached]
        wait_for(lambda: not any(with_marker(m) for m in markers), SETTLE)
        wait_for(lambda: not zombies_in(init), SETTLE)
        # Nothing left at all: every orphan reaped, nothing survived (a shell may outlive its
        # last ``sleep`` by a moment).
        wait_for(lambda: not namespace_members(init), SETTLE)
        os.kill(init, signal.SIGTERM)
        assert unshare.wait(timeout=SETTLE) == 0, stderr.read_text()
    finally:
        if unshare.poll() is None:
            unshare.kill()  # --kill-child: the namespace's init goes with it
            unshare.wait(timeout=SETTLE)


def _ns_pid(pid: int) -> int:
    """``pid``'s pid inside its own namespace (the last NSpid field)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("NSpid:"):
            return int(line.split()[-1])
    raise AssertionError("no NSpid line")


def _leave_orphans_from_outside_the_runs(init: int, markers: list[str]) -> None:
    """A process entering the namespace (``docker exec``, say) whose children outlive it: one
    in a session of its own, one in the session of the test (and of the scheduler)."""
    if shutil.which("nsenter") is None:
        return
    script = f"setsid sleep {markers[0]} >/dev/null 2>&1 & sleep {markers[1]} >/dev/null 2>&1 &"
    entered = subprocess.run(
        ["nsenter", "--target", str(init), "--pid", "--mount", "--", "sh", "-c", script],
        capture_output=True,
        text=True,
        timeout=SETTLE,
    )
    assert entered.returncode == 0, entered.stderr
