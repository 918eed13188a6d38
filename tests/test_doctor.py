"""``batch_runner doctor``: checks the state database and the results (exit 0 healthy, 1 not);
``--repair`` moves a damaged database aside, with consent, and rebuilds it from the results."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, job, read_results, run_cli, write_config
from test_damaged_state import damage_runs_table

from batch_runner.state.layout import LogLayout
from batch_runner.state.locks import FileLock
from batch_runner.state.sqlite.schema import SCHEMA_VERSION
from batch_runner.state.sqlite.store import SqliteStore


def database(root: Path) -> Path:
    return root / "logs" / "state" / "batch_runner.sqlite3"


def aside(root: Path) -> list[Path]:
    return sorted((root / "logs" / "state").glob("batch_runner.sqlite3.damaged-*[0-9]"))


def lines(result: subprocess.CompletedProcess, level: str) -> list[str]:
    return [line for line in result.stdout.splitlines() if line.startswith(f"{level}:")]


def job_states(root: Path) -> dict[str, dict]:
    result = run_cli(root, "list", "--json")
    assert result.returncode == 0, result.stderr
    return {
        j["name"]: {k: j[k] for k in ("last_run", "last_status", "error_count")}
        for j in json.loads(result.stdout)
    }


@pytest.fixture
def history(project: Path) -> Path:
    """Two jobs with a past (a success; a success then two failures), an ad-hoc run that was
    retried, a canceled run, and runs still waiting."""
    write_config(
        project,
        [job("good", "echo good"), job("flaky", "exit 3", notify_after=2)],
    )
    for argv in (["run-job", "good"], ["run-job", "good"], ["run-job", "flaky"]):
        run_cli(project, *argv)
    run_cli(project, "run-job", "flaky")
    run_cli(project, "queue", "add", "--label", "twice", "--max-attempts", "2", "--", "false")
    assert run_cli(project, "queue", "run").returncode == 1
    # The retry's backoff (30 s) is not waited out: its second attempt runs now.
    with sqlite3.connect(database(project)) as db:
        db.execute("UPDATE runs SET due_at = 0 WHERE status = 'pending'")
    db.close()  # an open handle would keep `doctor --repair` from moving the file
    assert run_cli(project, "queue", "run").returncode == 1
    canceled = run_cli(project, "queue", "add", "--delay", "1h", "--", "true").stdout.strip()
    assert run_cli(project, "queue", "remove", canceled).returncode == 0
    for n in range(2):
        run_cli(project, "queue", "add", "--delay", "1h", "--", "echo", f"later {n}")
    return project


def test_a_healthy_log_dir_is_exit_0(history: Path) -> None:
    result = run_cli(history, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert str(database(history)) in result.stdout and "integrity" in result.stdout
    assert not lines(result, "problem")
    assert result.stdout.splitlines()[-1] == "healthy"
    as_json = json.loads(run_cli(history, "doctor", "--json").stdout)
    assert as_json["healthy"] is True and as_json["database"] == str(database(history))


def test_doctor_creates_no_database_where_nothing_ran(project: Path) -> None:
    write_config(project, [job("good", "echo good")])
    result = run_cli(project, "doctor")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "nothing has run" in result.stdout
    assert not database(project).exists()


def test_a_damaged_database_is_exit_1_and_repair_needs_consent(history: Path) -> None:
    damage_runs_table(database(history))
    damaged = database(history).read_bytes()
    result = run_cli(history, "doctor")
    assert result.returncode == 1
    (problem,) = lines(result, "problem")
    assert str(database(history)) in problem and "damaged" in problem
    refused = run_cli(history, "doctor", "--repair", stdin=subprocess.DEVNULL)
    assert refused.returncode == 2
    assert "--yes" in refused.stderr and "Traceback" not in refused.stderr
    assert database(history).read_bytes() == damaged and not aside(history)


def test_repair_moves_it_aside_and_rebuilds_what_the_results_hold(history: Path) -> None:
    states = job_states(history)
    finished = {r["run_id"] for r in read_results(history) if r["status"] != "skipped"}
    damage_runs_table(database(history))
    damaged = database(history).read_bytes()

    result = run_cli(history, "doctor", "--repair", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    (moved,) = aside(history)
    assert moved.read_bytes() == damaged  # renamed, never deleted
    assert str(moved) in result.stdout
    assert "still waiting in the queue" in result.stdout  # what is lost, said plainly
    assert result.stdout.splitlines()[-1] == "healthy"

    assert job_states(history) == states
    assert states["flaky"]["error_count"] == 2 and states["good"]["last_status"] == "success"
    with sqlite3.connect(database(history)) as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        notified = dict(db.execute("SELECT job_name, notified FROM job_state"))
    db.close()
    assert notified == {"good": 0, "flaky": 1}  # flaky's failure notice had gone out
    listed = run_cli(history, "queue", "list", "--all", "--json")
    runs = {r["run_id"]: r for r in json.loads(listed.stdout)}
    assert set(runs) == finished  # every finished run back, the waiting ones gone
    (twice,) = [r for r in runs.values() if r["label"] == "twice"]
    assert (twice["status"], twice["attempt"], twice["trigger"]) == ("error", 2, "queue")
    assert sorted(r["status"] for r in runs.values()).count("canceled") == 1
    assert run_cli(history, "run-job", "good").returncode == 0
    assert run_cli(history, "doctor").returncode == 0


def _answer(root: Path, answer: bytes) -> tuple[int, str]:
    """``doctor --repair`` on a terminal (a pty as its stdin), answering the question."""
    import pty

    primary, secondary = pty.openpty()
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    with subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "doctor", "--repair"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=root,
    ) as doctor:
        os.close(secondary)
        os.write(primary, answer)  # the terminal buffers it until the question is read
        out, err = doctor.communicate(timeout=60)
    os.close(primary)
    return doctor.returncode, (out + err).decode()


def test_on_a_terminal_repair_asks_first(history: Path) -> None:
    damage_runs_table(database(history))
    code, output = _answer(history, b"n\n")
    assert code == 1 and "[y/N]" in output and "nothing was changed" in output
    assert not aside(history)
    code, output = _answer(history, b"y\n")
    assert code == 0, output
    assert len(aside(history)) == 1


def test_repair_waits_for_no_scheduler(history: Path) -> None:
    damage_runs_table(database(history))
    layout = LogLayout(history / "logs")
    with FileLock(layout.scheduler_lock):
        result = run_cli(history, "doctor", "--repair", "--yes")
    assert result.returncode == 75, result.stderr
    assert "scheduler" in result.stderr and "Traceback" not in result.stderr
    assert not aside(history)


def test_a_torn_results_line_is_a_warning(history: Path) -> None:
    (day_file, *_) = sorted((history / "logs" / "batch").glob("batch_*.jsonl"))
    with open(day_file, "ab") as file:
        file.write(b'{"job_name": "x", "start_ti')
    result = run_cli(history, "doctor")
    assert result.returncode == 0, result.stdout
    (warning,) = lines(result, "warning")
    assert str(day_file) in warning and "line" in warning


def test_lines_kept_back_are_a_problem_that_repair_writes(history: Path) -> None:
    layout = LogLayout(history / "logs")
    store = SqliteStore(layout.database)
    record = {**read_results(history)[0], "run_id": "kept-back", "attempt": 1}
    store.remember_unwritten("kept-back", 1_700_000_000.0, record)
    store.close()
    result = run_cli(history, "doctor")
    assert result.returncode == 1 and "1 result line" in lines(result, "problem")[0]
    repaired = run_cli(history, "doctor", "--repair")  # nothing destructive: no consent asked
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert [r["run_id"] for r in read_results(history)].count("kept-back") == 1


def test_a_newer_database_is_a_problem_repair_leaves_alone(history: Path) -> None:
    with sqlite3.connect(database(history)) as db:
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    db.close()
    result = run_cli(history, "doctor", "--repair", "--yes")
    assert result.returncode == 1
    assert "upgrade batch_runner" in lines(result, "problem")[0]
    assert not aside(history)


def test_doctor_is_listed_in_help(project: Path) -> None:
    result = run_cli(project, "--help")
    assert "doctor" in result.stdout


def test_repair_writes_back_the_lines_the_damaged_database_kept(history: Path) -> None:
    layout = LogLayout(history / "logs")
    store = SqliteStore(layout.database)
    started = read_results(history)[0]
    record = {**started, "run_id": "kept-back", "attempt": 1, "status": "error"}
    store.remember_unwritten("kept-back", 1_700_000_000.0, record)
    store.close()
    damage_runs_table(database(history))
    result = run_cli(history, "doctor", "--repair", "--yes")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "kept back" in result.stdout
    assert [r["run_id"] for r in read_results(history)].count("kept-back") == 1
    listed = json.loads(run_cli(history, "queue", "list", "--all", "--json").stdout)
    assert "kept-back" in {r["run_id"] for r in listed}  # rebuilt with the others


def test_repair_waits_for_a_run_in_a_slot_of_a_lane_no_longer_configured(history: Path) -> None:
    """The lock files say where runs may be, the config no longer does (and the damaged
    database cannot): a slot held in a lane since removed keeps the repair off."""
    damage_runs_table(database(history))
    slot = history / "logs" / "state" / "lane.gone.1.lock"
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            f"fd = os.open({str(slot)!r}, os.O_RDWR | os.O_CREAT, 0o600)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\n"
            "os.write(fd, f'{os.getpid():>10}\\n'.encode())\n"
            "print('held', flush=True)\n"
            "time.sleep(60)\n",
        ],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "held\n"
        result = run_cli(history, "doctor", "--repair", "--yes")
        assert result.returncode == 75, result.stdout + result.stderr
        assert f"a run is in progress (pid {holder.pid})" in result.stderr
        assert not aside(history)
    finally:
        holder.kill()
        holder.wait(timeout=10)
