"""What a user reads on one host of a cluster (issue 22, SPEC 14): ``history``, ``logs`` and
``status`` from the shared database, whichever host ran what; ``cluster status`` and
``cluster prune``; the commands that make no sense in a cluster refused in one sentence; and
``batch_runner progress`` from a job, written to the cluster's database.

The database (``cluster_database``, tests/pg_server.py) is filled as the hosts would have
filled it, with SQL; the CLI runs as a user runs it on host "h1".
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from cluster_hosts import Cluster
from conftest import REPO, job, run_cli, write_config
from pg_server import PgDatabase
from psycopg.types.json import Jsonb

from batch_runner.errors import EXIT_BUSY, EXIT_CONFIG, EXIT_NOT_FOUND
from batch_runner.state.layout import LogLayout

DSN_ENV = "BR_DSN"
BACKEND = {"type": "postgres", "dsn_env": DSN_ENV}
T0 = datetime(2026, 3, 1, 8, 0, tzinfo=UTC)
RUN_A = "20260301-080000-aaaaaa"
RUN_B = "20260301-090000-bbbbbb"


@pytest.fixture
def db(project: Path, cluster_database: PgDatabase) -> PgDatabase:
    """A project on host h1 whose config names the cluster's database (jobs "a", "report")."""
    write_config(project, [job("a", "true"), job("report", "true")], settings={"backend": BACKEND})
    return cluster_database


def cli(project: Path, db: PgDatabase, *argv: str, **env: str) -> subprocess.CompletedProcess[str]:
    return run_cli(project, *argv, env={DSN_ENV: db.dsn, "BATCH_RUNNER_HOST_ID": "h1", **env})


def sql(db: PgDatabase, statement: str, *params: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(db.dsn, autocommit=True) as conn:
        cursor = conn.execute(statement, params or None)  # type: ignore[call-overload]
        return cursor.fetchall() if cursor.description else []


def iso(moment: datetime) -> str:
    return moment.isoformat(timespec="seconds")


def add_attempt(
    db: PgDatabase,
    run_id: str,
    attempt: int,
    *,
    job_name: str = "a",
    host: str = "h2",
    status: str = "success",
    start: datetime = T0,
    output: bytes | None = None,
    max_attempts: int = 1,
) -> dict[str, Any]:
    """An attempt's JSONL line as host ``host`` keeps it in the database, with its output."""
    name = f"{run_id}.log" if attempt == 1 else f"{run_id}.attempt{attempt}.log"
    end = start + timedelta(seconds=2)
    record = {
        "job_name": job_name,
        "start_time": iso(start),
        "end_time": iso(end),
        "status": status,
        "output": "",
        "error": None if status == "success" else "exit code 1",
        "run_id": run_id,
        "attempt": attempt,
        "max_attempts": max_attempts,
        "exit_code": 0 if status == "success" else 1,
        "duration_seconds": 2.0,
        "trigger": "schedule" if attempt == 1 else "retry",
        "scheduled_for": None,
        "output_truncated": False,
        "log_file": f"/srv/{host}/logs/runs/{run_id[:8]}/{name}",
        "host": host,
        "pid": 4242,
    }
    sql(
        db,
        "INSERT INTO batch_runner.attempts (run_id, attempt, record, job_name, start_time, "
        "end_time, status, exit_code, trigger, host) VALUES (%s, %s, %s, %s, %s, %s, %s, %s, "
        "%s, %s)",
        run_id, attempt, Jsonb(record), job_name, start, end, status, record["exit_code"],
        record["trigger"], host,
    )  # fmt: skip
    if output is not None:
        half = len(output) // 2  # two chunks, put back together in order
        for n, data in enumerate([output[:half], output[half:]]):
            sql(
                db,
                "INSERT INTO batch_runner.output_chunks (run_id, attempt, n, data) "
                "VALUES (%s, %s, %s, %s)",
                run_id, attempt, n, data,
            )  # fmt: skip
    return record


def add_run(db: PgDatabase, run_id: str, status: str, **columns: Any) -> None:
    """A ``runs`` row as the hosts leave it."""
    values = {
        "run_id": run_id,
        "job_name": "a",
        "kind": "job",
        "spec": Jsonb({"command": "true"}),
        "trigger": "schedule",
        "status": status,
        "lane": "default",
        "due_at": T0,
        "created_at": T0,
        **columns,
    }
    names = ", ".join(values)
    marks = ", ".join(["%s"] * len(values))
    sql(db, f"INSERT INTO batch_runner.runs ({names}) VALUES ({marks})", *values.values())


def add_process(db: PgDatabase, host: str, pid: int, role: str, seen_ago: float) -> None:
    """``seen_ago`` below 0: seen "in the future", so that it stays alive however slowly the
    commands of the test start on a loaded machine."""
    sql(
        db,
        "INSERT INTO batch_runner.processes (host, pid, started_at, role, last_seen, "
        "config_hash) VALUES (%s, %s, now() - interval '1 hour', %s, "
        "now() - %s * interval '1 s', 'x')",
        host, pid, role, seen_ago,
    )  # fmt: skip


def no_sqlite_state(project: Path) -> bool:
    """No SQLite state database on this host: the cluster's state is all in PostgreSQL."""
    return not os.path.exists(LogLayout(str(project / "logs")).database)


def one_line_error(result: subprocess.CompletedProcess[str], code: int) -> str:
    assert result.returncode == code, (result.stdout, result.stderr)
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    return result.stderr


# --- history ------------------------------------------------------------------------------------


def test_history_shows_every_hosts_attempts(project: Path, db: PgDatabase) -> None:
    add_attempt(db, RUN_A, 1, host="h2", status="error", max_attempts=2)
    add_attempt(db, RUN_A, 2, host="h3", max_attempts=2, start=T0 + timedelta(minutes=1))
    add_attempt(db, RUN_B, 1, job_name="report", host="h1", start=T0 + timedelta(hours=1))
    add_run(db, RUN_A, "success", attempt=2, max_attempts=2, priority=7, progress_percent=50)
    result = cli(project, db, "history", "--json")
    assert result.returncode == 0, result.stderr
    rows = json.loads(result.stdout)
    assert [(r["run_id"], r["attempt"], r["host"]) for r in rows] == [
        (RUN_B, 1, "h1"),
        (RUN_A, 2, "h3"),
        (RUN_A, 1, "h2"),
    ]
    # The keys every run object has (SPEC 9), from the runs the database still holds.
    assert [(r["priority"], r["progress_percent"]) for r in rows] == [
        (None, None),
        (7, 50),
        (7, None),  # progress belongs to the attempt the queue holds now
    ]
    # Nothing was read from, or made on, this host's files.
    assert not (project / "logs" / "batch").exists()
    assert no_sqlite_state(project)


def test_history_filters_and_the_table(project: Path, db: PgDatabase) -> None:
    add_attempt(db, RUN_A, 1, host="h2", status="error")
    add_attempt(db, RUN_B, 1, job_name="report", host="h3", start=T0 + timedelta(hours=1))
    by_name = json.loads(cli(project, db, "history", "a", "--json").stdout)
    assert [r["run_id"] for r in by_name] == [RUN_A]
    by_status = json.loads(cli(project, db, "history", "--status", "success", "--json").stdout)
    assert [r["run_id"] for r in by_status] == [RUN_B]
    since = cli(project, db, "history", "--since", "2026-03-01T08:30:00+00:00", "--json")
    assert [r["run_id"] for r in json.loads(since.stdout)] == [RUN_B]
    assert len(json.loads(cli(project, db, "history", "--limit", "1", "--json").stdout)) == 1
    huge = cli(project, db, "history", "--limit", str(10**30), "--json")
    assert len(json.loads(huge.stdout)) == 2, huge.stderr
    table = cli(project, db, "history")
    assert table.returncode == 0, table.stderr
    lines = table.stdout.splitlines()
    assert lines[0].split()[:3] == ["START", "JOB", "STATUS"]
    assert RUN_B in lines[1] and "report" in lines[1] and "success" in lines[1]
    assert RUN_A in lines[2] and "exit code 1" in lines[2]


def test_history_of_an_unknown_name_is_not_found_with_a_suggestion(
    project: Path, db: PgDatabase
) -> None:
    error = one_line_error(cli(project, db, "history", "reprot"), EXIT_NOT_FOUND)
    assert "reprot" in error and "report" in error  # did you mean
    # A job removed from the config that ran on some host has its history still.
    add_attempt(db, RUN_A, 1, job_name="gone", host="h2")
    result = cli(project, db, "history", "gone", "--json")
    assert result.returncode == 0, result.stderr
    assert [r["run_id"] for r in json.loads(result.stdout)] == [RUN_A]
    # Configured but never run: empty, not an error.
    assert cli(project, db, "history", "report", "--json").stdout.strip() == "[]"


# --- logs ---------------------------------------------------------------------------------------


def test_logs_of_a_run_on_another_host_comes_from_the_database(
    project: Path, db: PgDatabase
) -> None:
    add_attempt(db, RUN_A, 1, host="h2", status="error", output=b"first try\n", max_attempts=2)
    add_attempt(db, RUN_A, 2, host="h3", output=b"second \xff try\n", max_attempts=2)
    add_run(db, RUN_A, "success", attempt=2, max_attempts=2, host="h3",
            log_file=f"/srv/h3/logs/runs/20260301/{RUN_A}.attempt2.log")  # fmt: skip
    result = subprocess.run(
        [sys.executable, "-m", "batch_runner", "logs", RUN_A[:-3]],
        capture_output=True,
        timeout=30,
        cwd=project,
        env={
            **os.environ,
            "BATCH_RUNNER_ROOT": str(project),
            "PYTHONPATH": str(REPO),
            DSN_ENV: db.dsn,
            "BATCH_RUNNER_HOST_ID": "h1",
        },
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"=== attempt 1: /srv/h2/logs/runs/20260301/{RUN_A}.log ===\n".encode()
        + b"first try\n"
        + f"=== attempt 2: /srv/h3/logs/runs/20260301/{RUN_A}.attempt2.log ===\n".encode()
        + b"second \xff try\n"
    )


def test_logs_prefers_this_hosts_file_and_finds_cleaned_runs(project: Path, db: PgDatabase) -> None:
    # Run A was cleaned from the queue: only the result lines of its hosts remain.
    add_attempt(db, RUN_A, 1, host="h1", status="error", output=b"kept copy\n", max_attempts=2)
    add_attempt(db, RUN_A, 2, host="h2", output=b"from h2\n", max_attempts=2)
    here = project / "logs" / "runs" / "20260301" / f"{RUN_A}.log"
    here.parent.mkdir(parents=True)
    here.write_bytes(b"this host's own file\n")
    result = cli(project, db, "logs", RUN_A)
    assert result.returncode == 0, result.stderr
    assert result.stdout == (
        f"=== attempt 1: {here} ===\nthis host's own file\n"
        f"=== attempt 2: /srv/h2/logs/runs/20260301/{RUN_A}.attempt2.log ===\nfrom h2\n"
    )
    # One attempt, no header, as on a single host.
    add_attempt(db, RUN_B, 1, host="h2", output=b"only\n")
    assert cli(project, db, "logs", RUN_B).stdout == "only\n"


def test_logs_of_an_unknown_or_ambiguous_run(project: Path, db: PgDatabase) -> None:
    add_attempt(db, RUN_A, 1, host="h2")
    add_attempt(db, RUN_B, 1, host="h2")
    one_line_error(cli(project, db, "logs", "20260301-1"), EXIT_NOT_FOUND)
    assert "ambiguous" in one_line_error(cli(project, db, "logs", "20260301-"), 2)
    quiet = cli(project, db, "logs", RUN_A)  # no output kept: said, not an error
    assert quiet.returncode == 0
    assert quiet.stderr == f"run {RUN_A} (success) has no output file\n"


# --- status ------------------------------------------------------------------------------------


def test_status_names_the_host_of_each_run_and_every_process(project: Path, db: PgDatabase) -> None:
    add_process(db, "h2", 123, "worker", seen_ago=-60)
    add_process(db, "h3", 77, "scheduler", seen_ago=42)
    add_run(db, RUN_A, "running", host="h2", pid=123, attempt=1,
            start_time=T0, beat_at=datetime.now(UTC))  # fmt: skip
    result = cli(project, db, "status", "--json")
    assert result.returncode == 0, result.stderr
    status = json.loads(result.stdout)
    (running,) = status["running"]
    assert (running["run_id"], running["host"]) == (RUN_A, "h2")
    assert status["scheduler"] == {"alive": False, "pid": None}  # this host's
    cluster = status["cluster"]
    assert cluster["host"] == "h1"
    seen = {(p["host"], p["pid"], p["role"], p["stale"]) for p in cluster["processes"]}
    assert seen == {("h2", 123, "worker", False), ("h3", 77, "scheduler", True)}
    ages = {p["host"]: p["last_seen_seconds"] for p in cluster["processes"]}
    assert ages["h2"] == 0 and 42 <= ages["h3"] < 100
    text = cli(project, db, "status")
    assert text.returncode == 0, text.stderr
    lines = text.stdout.splitlines()
    assert lines[0] == "scheduler: not running"
    assert "cluster: this host is h1" in lines
    assert any(line.startswith("worker h2 pid 123: alive (seen ") for line in lines), lines
    stale = [line for line in lines if line.startswith("scheduler h3 pid 77: STALE (seen ")]
    assert stale and stale[0].endswith("s ago; `batch_runner cluster prune` forgets it)")
    assert any(line.startswith(f"running: a (run {RUN_A}, since ") and " on h2" in line
               for line in lines), lines  # fmt: skip


# --- cluster status / prune --------------------------------------------------------------------


def test_cluster_status_and_prune(project: Path, db: PgDatabase) -> None:
    empty = cli(project, db, "cluster", "status")
    assert empty.stdout == "this host is h1\nno scheduler or worker of the cluster has been seen\n"
    add_process(db, "h2", 123, "worker", seen_ago=-60)
    add_process(db, "h3", 77, "scheduler", seen_ago=42)
    listed = cli(project, db, "cluster", "status", "--json")
    assert listed.returncode == 0, listed.stderr
    shown = json.loads(listed.stdout)
    assert shown["host"] == "h1"
    assert sorted((p["host"], p["stale"]) for p in shown["processes"]) == [
        ("h2", False),
        ("h3", True),
    ]
    table = cli(project, db, "cluster", "status")
    assert table.returncode == 0, table.stderr
    assert table.stdout.splitlines()[0] == "this host is h1"
    assert "STALE" in table.stdout and "cluster prune" in table.stdout
    pruned = cli(project, db, "cluster", "prune")
    assert pruned.returncode == 0, pruned.stderr
    assert pruned.stdout == "forgot 1 process not seen for more than 10 s\n"
    assert sql(db, "SELECT host FROM batch_runner.processes") == [("h2",)]
    assert cli(project, db, "cluster", "prune", "--older-than", "3600").stdout.startswith(
        "forgot 0 processes"
    )
    one_line_error(cli(project, db, "cluster", "prune", "--older-than", "-1"), 2)


@pytest.mark.parametrize("argv", [("status",), ("prune",)], ids=" ".join)
def test_cluster_commands_without_a_backend(project: Path, argv: tuple[str, ...]) -> None:
    write_config(project, [job("a", "true")])
    error = one_line_error(run_cli(project, "cluster", *argv), EXIT_CONFIG)
    assert "has no settings.backend" in error and "there is no cluster to" in error


# --- what a cluster refuses, and doctor ---------------------------------------------------------


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (("cron", "--all"), "every host's cron would run each job; run `batch_runner scheduler`"),
        (("cron", "a"), "every host's cron would run each job"),
        (("queue", "run"), "`batch_runner queue worker"),
        (("doctor", "--repair", "--yes"), "nothing on this host for `doctor --repair` to repair"),
    ],
    ids=["cron --all", "cron NAME", "queue run", "doctor --repair"],
)
def test_what_a_cluster_refuses(
    project: Path, db: PgDatabase, argv: tuple[str, ...], words: str
) -> None:
    add_run(db, RUN_A, "pending")
    error = one_line_error(cli(project, db, *argv), EXIT_CONFIG)
    assert words in error
    assert sql(db, "SELECT status FROM batch_runner.runs") == [("pending",)]  # nothing ran


def test_systemd_stays_allowed_where_cron_is_refused(project: Path, db: PgDatabase) -> None:
    # A unit runs this host's scheduler, which takes its share of the cluster's occurrences.
    result = cli(project, db, "systemd")
    assert result.returncode == 0, result.stderr
    assert "ExecStart=" in result.stdout and " scheduler" in result.stdout
    one_line_error(cli(project, db, "cron", "--all"), EXIT_CONFIG)


def test_doctor_checks_the_cluster_database(project: Path, db: PgDatabase) -> None:
    add_run(db, RUN_A, "pending")
    add_process(db, "h3", 77, "scheduler", seen_ago=42)
    # A line this host's full disk kept back, and one of another host's: only ours counts.
    for host in ("h1", "h2"):
        sql(db, "INSERT INTO batch_runner.unwritten (host, run_id, started_at, record) "
                "VALUES (%s, 'r', 0, '{}')", host)  # fmt: skip
    result = cli(project, db, "doctor")
    assert result.returncode == 0, result.stderr
    port = db.server.port
    assert (
        f"ok: the cluster database at 127.0.0.1:{port} answers; 1 run(s) wait in its queue"
        in result.stdout.splitlines()
    )
    assert re.search(r"^warning: scheduler h3 pid 77 was last seen \d\d s ago .*cluster prune",
                     result.stdout, re.M), result.stdout  # fmt: skip
    assert "warning: 1 result line(s) of this host could not be written to " in result.stdout
    assert result.stdout.splitlines()[-1] == "healthy"
    # Nothing of SQLite's: no state database checked, none made.
    assert "integrity" not in result.stdout and "state database" not in result.stdout
    assert no_sqlite_state(project)
    report = json.loads(cli(project, db, "doctor", "--json").stdout)
    assert (report["healthy"], report["database"]) == (True, f"127.0.0.1:{port}")


def test_doctor_with_the_database_down_is_75(project: Path, db: PgDatabase) -> None:
    with socket.socket() as free:
        free.bind(("127.0.0.1", 0))
        port = free.getsockname()[1]
    result = cli(project, db, "doctor", **{DSN_ENV: f"host=127.0.0.1 port={port} dbname=x"})
    error = one_line_error(result, EXIT_BUSY)
    assert f"cannot connect to the cluster database at 127.0.0.1:{port}" in error
    assert result.stdout == ""


# --- progress from inside a job ----------------------------------------------------------------


def test_progress_from_a_job_goes_to_the_cluster(project: Path, db: PgDatabase) -> None:
    add_run(db, RUN_A, "running", host="h1", pid=1, attempt=1, start_time=T0)
    # The environment the executor gives a job (execution.command, runs.execute).
    job_env = {
        "BATCH_RUN_ID": RUN_A,
        "BATCH_RUNNER_LOG_DIR": str(project / "logs"),
        "BATCH_RUNNER_CONFIG": str(project / "config" / "batch_config.json"),
    }
    result = cli(project, db, "progress", "--percent", "40", "halfway", **job_env)
    assert result.returncode == 0, result.stderr
    assert sql(db, "SELECT progress_percent, progress_message FROM batch_runner.runs") == [
        (40.0, "halfway")
    ]
    assert no_sqlite_state(project)  # not this host's SQLite
    missing = cli(project, db, "progress", "x", **{**job_env, "BATCH_RUN_ID": RUN_B})
    assert f"no run {RUN_B} in the cluster database" in one_line_error(missing, EXIT_NOT_FOUND)


# --- end to end: a job run by another host's worker ---------------------------------------------


def test_a_run_on_another_hosts_worker_as_this_host_sees_it(cluster: Cluster) -> None:
    """h1's worker runs the job, which reports progress and prints; h2 (another log dir, as
    another machine would have) waits for it with run-job, then reads its history and logs."""
    command = "batch_runner progress --percent 40 halfway && echo output of the job"
    jobs = [job("report", command)]
    h1, h2 = cluster.host("h1", jobs), cluster.host("h2", jobs)
    h1.start("queue", "worker", "--forever")
    ran = h2.run("run-job", "report")
    assert ran.returncode == 0, ran.stderr
    (row,) = json.loads(h2.run("history", "--json").stdout)
    assert (row["host"], row["status"], row["progress_percent"]) == ("h1", "success", 40)
    assert not list(h2.root.glob("logs/runs/*/*.log"))  # h2 has no copy of its own
    logs = h2.run("logs", row["run_id"])
    assert (logs.returncode, logs.stdout) == (0, "output of the job\n"), logs.stderr
