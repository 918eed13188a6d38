"""``run-job`` end to end: through ``python -m batch_runner`` as cron would call it."""

from __future__ import annotations

import json
import signal
import sys
from pathlib import Path

from conftest import job, read_results, run_cli, start_cli, wait_for, write_config
from margins import SLOW

from batch_runner.state.results import RECORD_FIELDS


def test_success_writes_one_complete_record(project: Path) -> None:
    write_config(project, [job("hello", "echo hello world")])
    result = run_cli(project, "run-job", "hello")
    assert result.returncode == 0, result.stderr
    [record] = read_results(project)
    assert list(record) == list(RECORD_FIELDS)
    assert record["status"] == "success"
    assert record["exit_code"] == 0
    assert record["error"] is None
    assert record["output"] == "hello world\n"
    assert record["trigger"] == "manual"
    assert record["attempt"] == 1 and record["max_attempts"] == 1
    assert (
        "+" in record["start_time"]
        or "-" in record["start_time"][19:]
        or record["start_time"].endswith("Z")
    )
    assert Path(record["log_file"]).read_text() == "hello world\n"


def test_failure_exits_1_and_counts_errors(project: Path) -> None:
    write_config(project, [job("bad", ["sh", "-c", "echo oops >&2; exit 2"])])
    for expected_count in (1, 2):
        result = run_cli(project, "run-job", "bad")
        assert result.returncode == 1
        listing = json.loads(run_cli(project, "list", "--json").stdout)
        assert listing[0]["error_count"] == expected_count
        assert listing[0]["last_status"] == "error"
    record = read_results(project)[-1]
    assert record["exit_code"] == 2
    assert record["error"].startswith("exit code 2")
    assert "oops" in record["error"]


def test_success_resets_error_count(project: Path) -> None:
    flag = project / "flag"
    write_config(project, [job("flaky", f"test -e {flag}")])
    assert run_cli(project, "run-job", "flaky").returncode == 1
    flag.touch()
    assert run_cli(project, "run-job", "flaky").returncode == 0
    [row] = json.loads(run_cli(project, "list", "--json").stdout)
    assert row["error_count"] == 0 and row["last_status"] == "success"


def test_timeout_exits_124_and_kills_the_whole_tree(project: Path) -> None:
    pids = project / "pids"
    command = f"bash -c 'sleep 1000 & echo $! > {pids}; sleep 1000'"
    write_config(project, [job("slow", command, timeout=0.5)], settings={"kill_grace": 0.2})
    result = run_cli(project, "run-job", "slow")
    assert result.returncode == 124, result.stderr
    [record] = read_results(project)
    assert record["status"] == "timeout"
    assert record["error"].startswith("timed out after 0.5 s")
    grandchild = int(pids.read_text())
    assert not Path(f"/proc/{grandchild}").exists() or _is_zombie(grandchild)


def _is_zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z")
    except OSError:
        return True


def test_command_that_cannot_start_is_an_error_run(project: Path) -> None:
    write_config(project, [job("ghost", ["no-such-program-xyz", "--flag"])])
    result = run_cli(project, "run-job", "ghost")
    assert result.returncode == 1
    [record] = read_results(project)
    assert record["status"] == "error"
    assert "no-such-program-xyz" in record["error"]
    assert "Traceback" not in result.stderr


def test_child_environment(project: Path) -> None:
    out = project / "env.json"
    script = f"import json, os; json.dump(dict(os.environ), open({str(out)!r}, 'w'))"
    write_config(project, [job("envy", [sys.executable, "-c", script], env={"EXTRA": "1"})])
    assert run_cli(project, "run-job", "envy").returncode == 0
    env = json.loads(out.read_text())
    [record] = read_results(project)
    assert env["BATCH_RUN_ID"] == env["BATCH_JOB_ID"] == record["run_id"]
    assert env["BATCH_JOB_NAME"] == "envy"
    assert env["BATCH_ATTEMPT"] == "1"
    assert env["BATCH_RUNNER_CONFIG"] == str(project / "config" / "batch_config.json")
    assert env["PYTHONUNBUFFERED"] == "1"
    assert env["EXTRA"] == "1"


def test_shell_auto_runs_pipes_and_plain_commands(project: Path) -> None:
    write_config(project, [job("piped", "echo abc | tr a-z A-Z"), job("plain", "echo a|b")])
    assert run_cli(project, "run-job", "piped").returncode == 0
    assert read_results(project)[-1]["output"] == "ABC\n"


def test_unknown_job_exits_3(project: Path) -> None:
    write_config(project, [job("hello", "true")])
    result = run_cli(project, "run-job", "helo")
    assert result.returncode == 3
    assert "did you mean 'hello'" in result.stderr
    assert "Traceback" not in result.stderr


def test_missing_config_exits_78_naming_init(project: Path) -> None:
    result = run_cli(project, "run-job", "x")
    assert result.returncode == 78
    assert "batch_runner init" in result.stderr
    assert "Traceback" not in result.stderr


_start = start_cli


def _wait_for(predicate, timeout: float = 10.0) -> None:
    wait_for(predicate, timeout)


def test_two_run_jobs_never_overlap(project: Path) -> None:
    spans = project / "spans"
    body = f"echo start $(date +%s.%N) >> {spans}; sleep 0.3; echo end $(date +%s.%N) >> {spans}"
    write_config(project, [job("a", body), job("b", body)])
    procs = [_start(project, "run-job", name) for name in ("a", "b")]
    for proc in procs:
        assert proc.wait(timeout=20) == 0, proc.stderr.read()
    events = [line.split() for line in spans.read_text().splitlines()]
    assert [kind for kind, _ in events] == ["start", "end", "start", "end"]
    assert float(events[1][1]) <= float(events[2][1])


def test_no_wait_exits_75_when_the_executor_is_busy(project: Path) -> None:
    marker = project / "started"
    # It runs until the end of the test (SIGTERM below): both refusals below find it running
    # however slowly they start.
    write_config(project, [job("long", f"touch {marker}; sleep {SLOW:g}"), job("other", "true")])
    holder = _start(project, "run-job", "long")
    try:
        _wait_for(marker.exists)
        result = run_cli(project, "run-job", "other", "--no-wait")
        assert result.returncode == 75
        assert "busy" in result.stderr
        same = run_cli(project, "run-job", "long")
        assert same.returncode == 75
    finally:
        holder.send_signal(signal.SIGTERM)
        holder.wait(timeout=10)
    statuses = {(r["job_name"], r["status"]) for r in read_results(project)}
    assert ("long", "skipped") in statuses
    assert ("other", "success") not in statuses


def test_sigterm_interrupts_the_run_and_kills_its_group(project: Path) -> None:
    pids = project / "pids"
    write_config(project, [job("slow", f"bash -c 'sleep 1000 & echo $! > {pids}; sleep 1000'")])
    proc = _start(project, "run-job", "slow")
    _wait_for(lambda: pids.exists() and pids.read_text().strip() != "")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=15) == 1
    [record] = read_results(project)
    assert record["status"] == "interrupted"
    grandchild = int(pids.read_text())
    _wait_for(lambda: not Path(f"/proc/{grandchild}").exists() or _is_zombie(grandchild))


def test_sigkill_of_the_runner_is_recovered_as_interrupted(project: Path) -> None:
    pids = project / "pids"
    write_config(
        project,
        [job("slow", f"bash -c 'sleep 1000 & echo $! > {pids}; sleep 1000'"), job("next", "true")],
    )
    proc = _start(project, "run-job", "slow")
    _wait_for(lambda: pids.exists() and pids.read_text().strip() != "")
    proc.kill()
    proc.wait(timeout=5)
    grandchild = int(pids.read_text())
    assert Path(f"/proc/{grandchild}").exists()  # orphaned, still running
    assert run_cli(project, "run-job", "next").returncode == 0
    statuses = [(r["job_name"], r["status"]) for r in read_results(project)]
    assert statuses == [("slow", "interrupted"), ("next", "success")]
    _wait_for(lambda: not Path(f"/proc/{grandchild}").exists() or _is_zombie(grandchild))
    listing = {row["name"]: row for row in json.loads(run_cli(project, "list", "--json").stdout)}
    assert listing["slow"]["last_status"] == "interrupted"


def test_a_run_its_dead_runner_never_reported_is_still_found_and_ended(project: Path) -> None:
    """A runner killed in a run's first moments has recorded no process group for it yet
    (executor.STARTED_REPORT_DELAY): the group is found by the run's id, and ended whole,
    even a member that dropped BATCH_RUN_ID from its environment."""
    import os
    import subprocess
    import time

    from batch_runner.state.sqlite.store import SqliteStore as Store

    write_config(project, [job("next", "true")])
    store = Store(project / "logs" / "state" / "batch_runner.sqlite3")
    now = time.time()
    store.insert_run(
        {
            "run_id": "lost-run",
            "job_name": "adhoc",
            "kind": "adhoc",
            "spec": {"command": ["true"]},
            "trigger": "queue",
            "status": "running",
            "due_at": now,
            "created_at": now,
            "started_at": now,
            "attempt": 1,
            "owner_pid": 999999999,
            "host": os.uname().nodename,
        }
    )
    store.close()
    pid_file = project / "scrubbed.pid"
    scrubbed = f"env -u BATCH_RUN_ID sh -c 'echo $$ > {pid_file}; exec sleep 1000'"
    leader = subprocess.Popen(
        ["sh", "-c", f"{scrubbed} & exec sleep 1000"],
        env={**os.environ, "BATCH_RUN_ID": "lost-run"},
        start_new_session=True,
    )
    _wait_for(lambda: pid_file.exists() and pid_file.read_text().strip() != "")
    member = int(pid_file.read_text())
    assert run_cli(project, "run-job", "next").returncode == 0
    assert leader.wait(timeout=10) < 0  # killed by a signal
    _wait_for(lambda: not Path(f"/proc/{member}").exists() or _is_zombie(member))
    lost = [r for r in read_results(project) if r["run_id"] == "lost-run"]
    assert [r["status"] for r in lost] == ["interrupted"]
    assert lost[0]["pid"] == leader.pid


def test_concurrent_writers_append_whole_lines(project: Path) -> None:
    write_config(project, [job(f"j{i}", "printf 'x%.0s' $(seq 1 2000)") for i in range(6)])
    procs = [_start(project, "run-job", f"j{i}") for i in range(6)]
    for proc in procs:
        assert proc.wait(timeout=30) == 0
    records = read_results(project)
    assert sorted(r["job_name"] for r in records) == [f"j{i}" for i in range(6)]
    assert all(len(r["output"]) == 2000 for r in records)


def test_history_and_logs_read_runs_back(project: Path) -> None:
    write_config(project, [job("a", "echo first"), job("b", "echo second; exit 3")])
    run_cli(project, "run-job", "a")
    run_cli(project, "run-job", "b")
    history = json.loads(run_cli(project, "history", "--json").stdout)
    assert [r["job_name"] for r in history] == ["b", "a"]
    only_errors = json.loads(run_cli(project, "history", "--status", "error", "--json").stdout)
    assert [r["job_name"] for r in only_errors] == ["b"]
    logs = run_cli(project, "logs", history[1]["run_id"])
    assert logs.returncode == 0 and logs.stdout == "first\n"
    assert run_cli(project, "logs", "nope").returncode == 3
    plain = run_cli(project, "history", "a")
    assert "success" in plain.stdout and "\x1b[" not in plain.stdout
