"""The ad-hoc queue end to end: durable adds, order, exactly once, remove, stop, pause."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, job, process_running, read_results, run_cli, start_cli, write_config
from conftest import wait_for as wait_until
from margins import PROMPT, SLOW


def add(root: Path, *argv: str) -> str:
    result = run_cli(root, "queue", "add", *argv)
    assert result.returncode == 0, result.stderr
    run_id = result.stdout.strip()
    assert run_id and "\n" not in run_id  # the id alone: id=$(batch_runner queue add ...)
    return run_id


start = start_cli


def wait_for(predicate, timeout: float = 20.0) -> None:
    wait_until(predicate, timeout)


def show(root: Path, run_id: str) -> dict:
    result = run_cli(root, "queue", "show", run_id, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


@pytest.fixture
def queue_project(project: Path) -> Path:
    write_config(
        project, [job("long", "sleep 30"), job("quick", "echo quick")], settings={"kill_grace": 0.5}
    )
    return project


def test_add_persists_and_never_runs_anything_itself(queue_project: Path) -> None:
    marker = queue_project / "ran"
    run_id = add(queue_project, "--label", "touch", "--", "touch", str(marker))
    assert not marker.exists()
    view = show(queue_project, run_id)
    assert view["status"] == "pending" and view["label"] == "touch"
    assert view["command"] == ["touch", str(marker)]
    assert view["exit_code"] is None and view["progress_percent"] is None
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert marker.exists()
    assert show(queue_project, run_id)["status"] == "success"


def test_runs_start_in_priority_then_due_then_arrival_order(queue_project: Path) -> None:
    order = queue_project / "order"
    ids = {}
    for label, priority in (("low1", 0), ("high", 5), ("low2", 0), ("mid", 2)):
        ids[label] = add(
            queue_project,
            "--priority",
            str(priority),
            "--label",
            label,
            "--",
            "sh",
            "-c",
            f"echo {label} >> {order}",
        )
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert order.read_text().split() == ["high", "mid", "low1", "low2"]
    records = read_results(queue_project)
    assert [r["run_id"] for r in records] == [ids[k] for k in ("high", "mid", "low1", "low2")]
    assert all(r["trigger"] == "queue" for r in records)


def test_delayed_runs_wait_for_their_time(queue_project: Path) -> None:
    run_id = add(queue_project, "--delay", "1h", "--", "true")
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert show(queue_project, run_id)["status"] == "pending"
    bad = run_cli(queue_project, "queue", "add", "--at", "25:99", "--", "true")
    assert bad.returncode == 2 and "--at" in bad.stderr
    now = add(queue_project, "--delay", "0", "--", "true")  # a computed delay may be 0
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert show(queue_project, now)["status"] == "success"


def test_exactly_once_with_many_producers_and_two_workers(queue_project: Path) -> None:
    ledger = queue_project / "ledger"
    workers = [start(queue_project, "queue", "worker", "--forever") for _ in range(2)]
    producer_code = (
        "import sys, subprocess\n"
        "for i in range(15):\n"
        "    subprocess.run([sys.executable, '-m', 'batch_runner', 'queue', 'add', '--',\n"
        f"                    'sh', '-c', 'echo $BATCH_RUN_ID >> {ledger}'], check=True,\n"
        "                   stdout=subprocess.DEVNULL)\n"
    )
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(queue_project), "PYTHONPATH": str(REPO)}
    producers = [
        subprocess.Popen([sys.executable, "-c", producer_code], env=env, cwd=queue_project)
        for _ in range(4)
    ]
    try:
        for producer in producers:
            assert producer.wait(timeout=120) == 0
        wait_for(lambda: ledger.exists() and len(ledger.read_text().split()) >= 60, 60)
        time.sleep(0.3)  # a duplicate start, if any, would show up now
    finally:
        for worker in workers:
            worker.send_signal(signal.SIGTERM)
            worker.wait(timeout=20)
    started = ledger.read_text().split()
    assert len(started) == 60 and len(set(started)) == 60
    records = read_results(queue_project)
    assert sorted(r["run_id"] for r in records) == sorted(started)
    assert all(r["status"] == "success" for r in records)


def test_remove_cancels_pending_and_refuses_running(queue_project: Path) -> None:
    marker = queue_project / "started"
    running = add(queue_project, "--", "sh", "-c", f"touch {marker}; sleep 30")
    waiting = add(queue_project, "--", "true")
    worker = start(queue_project, "queue", "worker")
    try:
        wait_for(marker.exists)
        refused = run_cli(queue_project, "queue", "remove", running)
        assert refused.returncode == 1 and "stop" in refused.stderr
        removed = run_cli(queue_project, "queue", "remove", waiting)
        assert removed.returncode == 0, removed.stderr
        assert show(queue_project, waiting)["status"] == "canceled"
        assert run_cli(queue_project, "queue", "remove", "no-such-run").returncode == 3
        assert run_cli(queue_project, "stop", running).returncode == 0
        assert worker.wait(timeout=20) == 1  # it drained a run that did not succeed
    finally:
        if worker.poll() is None:
            worker.kill()
    assert show(queue_project, running)["status"] == "stopped"


def test_stop_ends_the_attempt_and_its_group_without_retry(queue_project: Path) -> None:
    pids = queue_project / "pids"
    run_id = add(
        queue_project,
        "--max-attempts",
        "3",
        "--",
        "bash",
        "-c",
        f"sleep 1000 & echo $! > {pids}; sleep {SLOW:g}",
    )
    worker = start(queue_project, "queue", "worker")
    wait_for(lambda: pids.exists() and pids.read_text().strip())
    assert run_cli(queue_project, "stop", run_id).returncode == 0
    # Ended by the stop, not by the job's own end SLOW s later. How soon (SPEC: within 2 s plus
    # kill_grace) is a figure: benchmarks/bench_queue.py measures it.
    wait_for(lambda: show(queue_project, run_id)["status"] == "stopped", timeout=PROMPT)
    assert worker.wait(timeout=20) == 1  # it drained a run that did not succeed
    view = show(queue_project, run_id)
    assert view["attempt"] == 1  # no retry after a stop
    grandchild = int(pids.read_text())
    wait_for(
        lambda: (
            not Path(f"/proc/{grandchild}").exists()
            or Path(f"/proc/{grandchild}/stat").read_text().split(") ")[1][0] == "Z"
        ),
        5,
    )
    [record] = read_results(queue_project)
    assert record["status"] == "stopped"


def test_stop_by_job_name_and_unknown_targets(queue_project: Path) -> None:
    proc = start(queue_project, "run-job", "long")
    wait_for(lambda: json.loads(run_cli(queue_project, "status", "--json").stdout)["running"])
    assert run_cli(queue_project, "stop", "long").returncode == 0
    assert proc.wait(timeout=20) == 1
    assert read_results(queue_project)[-1]["status"] == "stopped"
    assert run_cli(queue_project, "stop", "quick").returncode == 1  # a job that is not running
    assert run_cli(queue_project, "stop", "nothing-like-this").returncode == 3


def test_progress_from_inside_a_run_shows_in_status_and_show(queue_project: Path) -> None:
    gate = queue_project / "gate"
    script = (
        f'{sys.executable} -c "import batch_runner; batch_runner.runs.progress(10)"; '
        f"batch_runner progress --percent 40 'halfway there'; "
        f"while [ ! -e {gate} ]; do sleep 0.05; done"
    )
    run_id = add(queue_project, "--", script)
    worker = start(queue_project, "queue", "worker")
    try:

        def reported() -> bool:
            view = show(queue_project, run_id)
            return view["progress_percent"] == 40 and view["progress_message"] == "halfway there"

        wait_for(reported)
        status = json.loads(run_cli(queue_project, "status", "--json").stdout)
        assert status["running"][0]["progress_percent"] == 40
        assert "halfway there" in run_cli(queue_project, "status").stdout
    finally:
        gate.touch()
        worker.wait(timeout=20)
    outside = run_cli(queue_project, "progress", "--percent", "5")
    assert outside.returncode == 2 and "inside a batch_runner run" in outside.stderr
    log_dir = str(queue_project / "logs")
    no_dir = run_cli(queue_project, "progress", "x", env={"BATCH_RUN_ID": run_id})
    assert no_dir.returncode == 2 and "$BATCH_RUNNER_LOG_DIR is not set" in no_dir.stderr
    unknown = run_cli(
        queue_project,
        "progress",
        "x",
        env={"BATCH_RUN_ID": "nosuch", "BATCH_RUNNER_LOG_DIR": log_dir},
    )
    assert unknown.returncode == 3 and "no run nosuch" in unknown.stderr
    finished = run_cli(
        queue_project,
        "progress",
        "x",
        env={"BATCH_RUN_ID": run_id, "BATCH_RUNNER_LOG_DIR": log_dir},
    )
    assert finished.returncode == 1 and "is not running (success)" in finished.stderr


def test_pause_stops_new_starts_from_queue_and_resume_lets_them_go(queue_project: Path) -> None:
    assert run_cli(queue_project, "queue", "pause").returncode == 0
    run_id = add(queue_project, "--", "true")
    assert run_cli(queue_project, "queue", "run").returncode == 0
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert show(queue_project, run_id)["status"] == "pending"
    assert json.loads(run_cli(queue_project, "status", "--json").stdout)["paused"] is True
    assert "PAUSED" in run_cli(queue_project, "status").stdout
    assert run_cli(queue_project, "queue", "resume").returncode == 0
    assert run_cli(queue_project, "queue", "run").returncode == 0
    assert show(queue_project, run_id)["status"] == "success"


def test_queue_run_exits_with_the_outcome(queue_project: Path) -> None:
    assert run_cli(queue_project, "queue", "run").returncode == 0  # nothing due
    add(queue_project, "--", "sh", "-c", "exit 4")
    assert run_cli(queue_project, "queue", "run").returncode == 1
    add(queue_project, "--timeout", "0.2", "--", "sleep", "5")
    assert run_cli(queue_project, "queue", "run").returncode == 124


def test_a_killed_worker_loses_nothing(queue_project: Path) -> None:
    marker = queue_project / "started"
    first = add(queue_project, "--", "sh", "-c", f"touch {marker}; sleep 30")
    others = [add(queue_project, "--", "true") for _ in range(3)]
    worker = start(queue_project, "queue", "worker")
    wait_for(marker.exists)
    worker.kill()
    worker.wait(timeout=10)
    assert show(queue_project, first)["status"] == "running"  # until someone reaps it
    # Waiting, some reserved by the dead worker as its next runs: the next runner puts them back.
    assert all(show(queue_project, i)["status"] in ("pending", "reserved") for i in others)
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert show(queue_project, first)["status"] == "interrupted"
    assert all(show(queue_project, i)["status"] == "success" for i in others)
    status = json.loads(run_cli(queue_project, "status", "--json").stdout)
    assert status["running"] == [] and status["pending"] == []


def _orphan(root: Path) -> tuple[str, int]:
    """A run left ``running`` by a worker killed mid-run, and the pid of its job."""
    pid_file = root / "job.pid"
    run_id = add(
        root, "--", "sh", "-c", f"echo $$ > {pid_file}.tmp; mv {pid_file}.tmp {pid_file}; sleep 30"
    )
    worker = start(root, "queue", "worker")
    wait_for(pid_file.exists)
    worker.kill()
    worker.wait(timeout=10)
    assert show(root, run_id)["status"] == "running"
    return run_id, int(pid_file.read_text())


def test_a_worker_reaps_an_orphan_even_when_nothing_is_due(queue_project: Path) -> None:
    orphan, pid = _orphan(queue_project)
    later = add(queue_project, "--delay", "1h", "--", "true")
    result = run_cli(queue_project, "queue", "worker")
    assert result.returncode == 0, result.stderr
    assert show(queue_project, orphan)["status"] == "interrupted"
    assert not process_running(pid)
    assert show(queue_project, later)["status"] == "pending"
    assert "nothing is due; 1 run waits for a later time" in result.stdout


def test_stop_of_a_run_whose_worker_died_reaps_it(queue_project: Path) -> None:
    orphan, pid = _orphan(queue_project)
    result = run_cli(queue_project, "stop", orphan)
    assert result.returncode == 0, result.stderr
    assert "had lost its runner" in result.stdout and "interrupted" in result.stdout
    assert show(queue_project, orphan)["status"] == "interrupted"
    assert not process_running(pid)


def test_run_job_queue_and_the_scheduler_drains_the_queue(queue_project: Path) -> None:
    write_config(queue_project, [job("quick", "echo quick")])
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(queue_project), "PYTHONPATH": str(REPO)}
    daemon = subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "scheduler"],
        env=env,
        cwd=queue_project,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        for line in daemon.stderr:
            if "scheduler started" in line:
                break
        queued = run_cli(queue_project, "run-job", "quick", "--queue")
        assert queued.returncode == 0
        run_id = queued.stdout.strip()
        # The scheduler is woken, not left to its once-a-minute look at the queue.
        wait_for(lambda: show(queue_project, run_id)["status"] == "success", 5)
        adhoc = add(queue_project, "--", "true")
        wait_for(lambda: show(queue_project, adhoc)["status"] == "success", 10)
    finally:
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(timeout=20) == 0


def test_queue_clean_forgets_old_finished_runs(queue_project: Path) -> None:
    run_id = add(queue_project, "--", "true")
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    assert run_cli(queue_project, "queue", "clean", "--keep-days", "1").returncode == 0
    assert show(queue_project, run_id)["status"] == "success"  # younger than a day
    result = run_cli(queue_project, "queue", "clean", "--keep-days", "0")
    assert result.returncode == 0 and "removed 1" in result.stdout
    assert run_cli(queue_project, "queue", "show", run_id).returncode == 3


def test_stopping_a_run_waiting_for_its_retry_ends_it_as_its_last_attempt(project: Path) -> None:
    write_config(
        project, [job("flaky", "exit 3", max_attempts=3, backoff="fixed", backoff_seconds=60)]
    )
    run_id = run_cli(project, "run-job", "flaky", "--queue").stdout.strip()
    assert run_cli(project, "queue", "run").returncode == 1  # attempt 1 fails; retry in 60 s
    assert show(project, run_id)["status"] == "pending"
    assert run_cli(project, "stop", "flaky").returncode == 0
    view = show(project, run_id)
    assert view["status"] == "error" and view["attempt"] == 1
    [row] = json.loads(run_cli(project, "list", "--json").stdout)
    assert row["error_count"] == 1 and row["last_status"] == "error"
    assert [r["status"] for r in read_results(project)] == ["error"]  # one line per attempt


def test_run_job_queue_of_a_job_already_waiting_says_so(queue_project: Path) -> None:
    first = run_cli(queue_project, "run-job", "quick", "--queue")
    assert first.returncode == 0, first.stderr
    second = run_cli(queue_project, "run-job", "quick", "--queue")
    assert second.returncode == 75 and second.stdout == ""
    assert second.stderr.strip() == (
        "quick: skipped, it is already waiting or running (recorded as skipped)"
    )
    assert [r["status"] for r in read_results(queue_project)] == ["skipped"]


def test_ad_hoc_runs_never_stand_in_for_a_job_of_the_same_name(project: Path) -> None:
    write_config(project, [job("adhoc", "true"), job("nightly", "true")])
    unlabeled = add(project, "--", "true")
    labeled = add(project, "--label", "nightly", "--", "true")
    for name in ("adhoc", "nightly"):
        queued = run_cli(project, "run-job", name, "--queue")
        assert queued.returncode == 0, queued.stderr
        stopped = run_cli(project, "stop", name)
        assert stopped.returncode == 0 and "canceled run" in stopped.stdout
        assert show(project, queued.stdout.strip())["status"] == "canceled"
    assert show(project, unlabeled)["status"] == "pending"
    assert show(project, labeled)["status"] == "pending"


def test_queue_list_all_says_when_it_leaves_finished_runs_out(queue_project: Path) -> None:
    ids = [add(queue_project, "--", "true") for _ in range(3)]
    assert run_cli(queue_project, "queue", "worker").returncode == 0
    listed = run_cli(queue_project, "queue", "list", "--all", "--limit", "2", "--json")
    assert [r["run_id"] for r in json.loads(listed.stdout)] == ids[:0:-1]
    assert "the latest 2 finished runs are listed; --limit N for more" in listed.stderr
    everything = run_cli(queue_project, "queue", "list", "--all", "--limit", str(10**30))
    assert everything.returncode == 0 and everything.stderr == ""
    assert all(run_id in everything.stdout for run_id in ids)


def test_queue_list_names_a_job_run_by_its_job(queue_project: Path) -> None:
    assert run_cli(queue_project, "run-job", "quick", "--queue").returncode == 0
    add(queue_project, "--label", "nightly-copy", "--", "true")
    listing = run_cli(queue_project, "queue", "list").stdout
    assert "quick: echo quick" in listing and "nightly-copy: true" in listing


def test_stop_of_a_misspelt_job_suggests_it(queue_project: Path) -> None:
    result = run_cli(queue_project, "stop", "quik")
    assert result.returncode == 3 and "did you mean the job 'quick'?" in result.stderr


def test_queue_run_while_paused_says_so(queue_project: Path) -> None:
    add(queue_project, "--", "true")
    assert run_cli(queue_project, "queue", "pause").returncode == 0
    result = run_cli(queue_project, "queue", "run")
    assert result.returncode == 0 and "the queue is paused" in result.stderr
