"""Lanes changing under a running scheduler, and runners that must not sit on a full lane
while another could go (found by an outside review; each reproduces its finding)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from conftest import REPO, job, read_results, run_cli, start_cli, wait_for, write_config
from fault_helpers import runs
from lane_helpers import Sampler, procs, unique_sleep
from margins import PROMPT, SLOW

__all__ = ["procs"]  # the fixture

# The runs still waiting: pending, or reserved as a lane's next ones by the thread draining it.
WAITING = {"pending", "reserved"}


def start_scheduler(root: Path, procs: list) -> Path:
    """A scheduler whose log is a file; returns the file once it has started."""
    log = root / "scheduler.stderr"
    with open(log, "w") as stderr:
        procs.append(
            subprocess.Popen(
                [sys.executable, "-m", "batch_runner", "scheduler"],
                cwd=root,
                env={**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)},
                stderr=stderr,
            )
        )
    wait_for(lambda: "scheduler started" in log.read_text(), SLOW)
    return log


def reconfigure(root: Path, log: Path, jobs: list, **settings: object) -> None:
    reloads = log.read_text().count("config reloaded")
    write_config(root, jobs, settings=settings)
    wait_for(lambda: log.read_text().count("config reloaded") > reloads, SLOW)


def queue_add(root: Path, *argv: str) -> str:
    done = run_cli(root, "queue", "add", *argv)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def test_a_lane_widened_while_a_thread_waits_for_its_one_slot_starts_its_run_at_once(
    project: Path, procs: list
) -> None:
    """The scheduler's thread of a lane of width one waits in flock behind a cron run-job's
    long run; widening the lane must not leave the waiting run behind that run."""
    long, short = unique_sleep(100), unique_sleep(0.5)
    jobs = [job("long", ["sleep", long], lane="w")]
    write_config(project, jobs, settings={"lanes": {"w": 1}, "kill_grace": 0.5})
    with Sampler(long=long, short=short) as sampler:
        procs.append(start_cli(project, "run-job", "long"))
        wait_for(lambda: sampler.now()["long"] == 1, SLOW)
        log = start_scheduler(project, procs)
        waiting = queue_add(project, "--lane", "w", "--", "sleep", short)
        reconfigure(project, log, jobs, lanes={"w": 3}, kill_grace=0.5)
        wait_for(lambda: runs(project)[waiting] == "success", PROMPT)
        assert sampler.now()["long"] == 1  # not by waiting for the long run's end


def test_a_retry_in_a_lane_removed_meanwhile_still_runs(project: Path, procs: list) -> None:
    flaky = {
        "max_attempts": 2,
        "backoff": "fixed",
        "backoff_seconds": 1,
    }
    marker = unique_sleep(2)
    write_config(
        project,
        [job("flaky", f"sleep {marker}; exit 1", lane="w", **flaky)],
        settings={"lanes": {"w": 2}},
    )
    log = start_scheduler(project, procs)
    assert run_cli(project, "run-job", "flaky", "--queue").returncode == 0
    with Sampler(flaky=marker) as sampler:
        wait_for(lambda: sampler.now()["flaky"] == 1, SLOW)
    # The lane goes while the first attempt runs: its retry waits in a lane no longer there.
    reconfigure(project, log, [job("flaky", f"sleep {marker}; exit 1", **flaky)])
    wait_for(lambda: set(runs(project).values()) == {"error"}, SLOW)
    attempts = [r["attempt"] for r in read_results(project) if r["job_name"] == "flaky"]
    assert attempts == [1, 2]


def test_status_shows_a_lane_no_longer_configured_while_it_has_runs(project: Path) -> None:
    write_config(project, [job("a", "true")], settings={"lanes": {"w": 2}})
    queue_add(project, "--lane", "w", "--delay", "1h", "--", "true")
    write_config(project, [job("a", "true")])  # no lanes any more
    text = run_cli(project, "status").stdout
    assert "lane w: 0 of 1 running (nothing), 1 waiting (not configured" in text


def test_a_worker_does_not_wait_on_a_full_lane_while_another_lane_has_a_free_slot(
    project: Path, procs: list
) -> None:
    long = unique_sleep(100)
    write_config(
        project, [job("long", ["sleep", long])], settings={"lanes": {"http": 4}, "kill_grace": 0.5}
    )
    with Sampler(long=long) as sampler:
        procs.append(start_cli(project, "run-job", "long"))
        wait_for(lambda: sampler.now()["long"] == 1, SLOW)
    queue_add(project, "--", "true")  # due in the default lane, which is full
    worker = start_cli(project, "queue", "worker", "--forever")
    procs.append(worker)
    # Once it has the database open it has seen that only the full lane has a due run.
    wait_for(lambda: _has_open(worker.pid, "batch_runner.sqlite3"), SLOW)
    other = queue_add(project, "--lane", "http", "--", "true")
    wait_for(lambda: runs(project)[other] == "success", PROMPT)


def test_a_lane_narrowed_under_a_thread_in_a_high_slot_keeps_its_new_width(
    project: Path, procs: list
) -> None:
    """The thread kept after narrowing may be draining in a slot beyond the new width; it lets
    that slot go after its run. (The scheduler's threads take slots 1 and 2 here, as a cron
    run-job holds slot 0, so the kept thread is in a high slot in two runs of three.)"""
    hold, queued = unique_sleep(8), unique_sleep(1)
    jobs = [job("hold", ["sleep", hold], lane="w"), job("later", ["sleep", queued], lane="w")]
    write_config(project, jobs, settings={"lanes": {"w": 3}})
    with Sampler(hold=hold, queued=queued) as sampler:
        procs.append(start_cli(project, "run-job", "hold"))
        wait_for(lambda: sampler.now()["hold"] == 1, SLOW)
        for _ in range(12):
            queue_add(project, "--lane", "w", "--", "sleep", queued)
        log = start_scheduler(project, procs)
        wait_for(lambda: sampler.now()["queued"] == 2, SLOW)
        reconfigure(project, log, jobs, lanes={"w": 1})
        assert procs[0].wait(timeout=SLOW) == 0  # slot 0 is free from now on
        procs.append(start_cli(project, "run-job", "later"))  # takes slot 0 as soon as it can
        wait_for(lambda: sampler.now()["queued"] <= 1, PROMPT)  # the runs under way end
    with Sampler(queued=queued) as narrowed:
        wait_for(lambda: not WAITING & set(runs(project).values()), SLOW)
        assert procs[-1].wait(timeout=SLOW) == 0
    assert narrowed.most["queued"] == 1


def _has_open(pid: int, name: str) -> bool:
    try:
        fds = os.listdir(f"/proc/{pid}/fd")
    except OSError:
        return False
    for fd in fds:
        try:
            if os.readlink(f"/proc/{pid}/fd/{fd}").endswith(name):
                return True
        except OSError:
            continue
    return False


def test_queue_list_shows_runs_of_a_lane_removed_since_beside_default_ones(
    project: Path,
) -> None:
    write_config(project, [job("a", "true")], settings={"lanes": {"w": 2}})
    queue_add(project, "--lane", "w", "--delay", "1h", "--", "true")
    queue_add(project, "--delay", "1h", "--", "true")
    write_config(project, [job("a", "true")])  # no lanes any more
    listed = run_cli(project, "queue", "list")
    assert listed.returncode == 0, listed.stderr
    header, *rows = listed.stdout.splitlines()
    assert " LANE " in header
    assert sorted(row.split()[7] for row in rows) == ["default", "w"]  # after two dates


def test_a_reload_widens_and_narrows_a_lane_while_it_drains(project: Path, procs: list) -> None:
    marker = unique_sleep(1)
    jobs = [job("idle", "true")]
    write_config(project, jobs, settings={"lanes": {"q": 1}})
    for _ in range(14):
        queue_add(project, "--lane", "q", "--", "sleep", marker)
    log = start_scheduler(project, procs)
    with Sampler(q=marker) as sampler:
        wait_for(lambda: sampler.now()["q"] == 1, SLOW)
        reconfigure(project, log, jobs, lanes={"q": 3})
        # Nothing else wakes the scheduler: the reload itself must widen the lane.
        wait_for(lambda: sampler.now()["q"] == 3, PROMPT)
        reconfigure(project, log, jobs, lanes={"q": 1})
        wait_for(lambda: sampler.now()["q"] <= 1, PROMPT)  # the runs under way end (1 s)
    # Still draining, now one at a time (the waiting runs: pending, or reserved as the lane's
    # next ones by the thread that drains it).
    assert WAITING & set(runs(project).values())
    with Sampler(q=marker) as narrowed:
        wait_for(lambda: not WAITING & set(runs(project).values()), SLOW)
        wait_for(lambda: narrowed.now()["q"] == 0, SLOW)
        # The last run's row is written as its thread lets the lane go, a moment after its end.
        wait_for(lambda: set(runs(project).values()) == {"success"}, SLOW)
    assert narrowed.most["q"] == 1
