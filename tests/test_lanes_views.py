"""What users see of lanes (status, list, queue list) and the per-run controls beside them:
stop, progress and retries act on their own run while a neighbour in the lane runs on."""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import REPO, job, read_results, run_cli, start_cli, wait_for, write_config
from fault_helpers import runs
from lane_helpers import Sampler, procs, unique_sleep
from margins import SLOW

__all__ = ["procs"]  # the fixture


def running_ids(root: Path) -> list[str]:
    return sorted(run_id for run_id, status in runs(root).items() if status == "running")


def test_status_and_lists_without_lanes_say_nothing_of_lanes(project: Path) -> None:
    write_config(project, [job("a", "true")])
    status = run_cli(project, "status")
    assert status.stdout == "scheduler: not running\nrunning: nothing\nwaiting: 0\n"
    assert set(json.loads(run_cli(project, "status", "--json").stdout)) == {
        "scheduler",
        "paused",
        "running",
        "pending",
    }
    assert "LANE" not in run_cli(project, "list").stdout.upper()
    assert "lane" not in json.loads(run_cli(project, "list", "--json").stdout)[0]
    run_cli(project, "queue", "add", "--", "true")
    assert "LANE" not in run_cli(project, "queue", "list").stdout.splitlines()[0]
    (view,) = json.loads(run_cli(project, "queue", "list", "--json").stdout)
    assert "lane" not in view  # the run objects of SPEC 9, as they were


def test_status_shows_each_lanes_width_and_what_runs_in_it(project: Path, procs: list) -> None:
    marker = unique_sleep(100)
    write_config(
        project,
        [
            job("slow1", ["sleep", marker], lane="wide"),
            job("slow2", ["sleep", marker], lane="wide"),
            job("here", ["sleep", marker]),
        ],
        settings={"lanes": {"wide": 3}, "kill_grace": 0.5},
    )
    with Sampler(jobs=marker) as sampler:
        for name in ("slow1", "slow2", "here"):
            procs.append(start_cli(project, "run-job", name))
        wait_for(lambda: sampler.now()["jobs"] == 3, SLOW)
    run_cli(project, "queue", "add", "--lane", "wide", "--delay", "1h", "--", "true")
    wide = sorted(
        r["run_id"]
        for r in json.loads(run_cli(project, "queue", "list", "--json").stdout)
        if r["lane"] == "wide" and r["status"] == "running"
    )
    status = json.loads(run_cli(project, "status", "--json").stdout)
    lane = dict(status["lanes"]["wide"])
    assert sorted(lane.pop("running")) == wide and len(wide) == 2
    assert lane == {"width": 3, "configured": True, "pending": 1}
    assert status["lanes"]["default"]["width"] == 1
    assert len(status["lanes"]["default"]["running"]) == 1
    assert {r["lane"] for r in status["running"]} == {"wide", "default"}
    text = run_cli(project, "status").stdout
    assert "lane default: 1 of 1 running (" in text
    assert "lane wide: 2 of 3 running (" in text and "1 waiting" in text
    assert all(run_id in text for run_id in wide)
    listed = run_cli(project, "list").stdout
    header = next(line for line in listed.splitlines() if line.startswith("NAME"))
    assert header.split()[-1] == "LANE"
    assert next(line for line in listed.splitlines() if line.startswith("slow1")).endswith("wide")
    assert "lanes: default 1 at a time, wide 3 at a time" in listed
    assert json.loads(run_cli(project, "list", "--json").stdout)[0]["lane"] == "wide"
    assert " LANE " in run_cli(project, "queue", "list").stdout.splitlines()[0]
    for name in ("slow1", "slow2", "here"):
        assert run_cli(project, "stop", name).returncode == 0
    for proc in procs:
        proc.wait(timeout=SLOW)


def test_stop_and_progress_act_on_their_own_run_while_the_neighbour_runs_on(
    project: Path, procs: list
) -> None:
    marker = unique_sleep(100)
    report = 'batch_runner progress --percent 40 "half way" && exec sleep ' + marker
    write_config(
        project,
        [job("left", report, lane="pair"), job("right", ["sleep", marker], lane="pair")],
        settings={"lanes": {"pair": 2}, "kill_grace": 0.5},
    )
    with Sampler(jobs=marker) as sampler:
        for name in ("left", "right"):
            procs.append(start_cli(project, "run-job", name))
        wait_for(lambda: sampler.now()["jobs"] == 2, SLOW)
        status = json.loads(run_cli(project, "status", "--json").stdout)
        by_name = {r["job_name"]: r for r in status["running"]}
        assert by_name["left"]["progress_percent"] == 40
        assert by_name["left"]["progress_message"] == "half way"
        assert by_name["right"]["progress_percent"] is None
        assert run_cli(project, "stop", "left").returncode == 0
        wait_for(lambda: sampler.now()["jobs"] == 1, SLOW)
        assert procs[0].wait(timeout=SLOW) == 1
        assert runs(project)[by_name["right"]["run_id"]] == "running"
        assert run_cli(project, "stop", "right").returncode == 0
        assert procs[1].wait(timeout=SLOW) == 1
    assert sorted(r["status"] for r in read_results(project)) == ["stopped", "stopped"]


def test_a_retry_stays_in_its_lane(project: Path, procs: list) -> None:
    write_config(
        project,
        [
            job(
                "flaky",
                "exit 3",
                lane="pair",
                max_attempts=2,
                backoff="fixed",
                backoff_seconds=1,
            )
        ],
        settings={"lanes": {"pair": 2}},
    )
    done = run_cli(project, "run-job", "flaky", timeout=SLOW)
    assert done.returncode == 1
    records = [r for r in read_results(project) if r["job_name"] == "flaky"]
    assert [r["attempt"] for r in records] == [1, 2]
    with sqlite3.connect(project / "logs/state/batch_runner.sqlite3") as db:
        assert db.execute("SELECT lane, slot FROM runs").fetchall() == [("pair", 0)]


def test_a_scheduler_sigterm_with_lanes_idle_exits_at_once(project: Path, procs: list) -> None:
    write_config(project, [job("a", "true")], settings={"lanes": {"wide": 4, "x": 2}})
    log = project / "scheduler.stderr"
    with open(log, "w") as stderr:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "batch_runner", "scheduler"],
            cwd=project,
            env={**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)},
            stderr=stderr,
        )
    procs.append(scheduler)
    wait_for(lambda: "scheduler started" in log.read_text(), SLOW)
    scheduler.send_signal(signal.SIGTERM)
    assert scheduler.wait(timeout=SLOW / 2) == 0
    assert "Traceback" not in log.read_text()
