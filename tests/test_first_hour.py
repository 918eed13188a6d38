"""The first hour of a new user (issue 17): each case as they ran it, through the CLI."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import REPO, job, read_results, run_cli, write_config


def run_from(cwd: Path, *argv: str, **env: str) -> subprocess.CompletedProcess:
    """The CLI run from ``cwd`` with neither ``$BATCH_RUNNER_ROOT`` nor a config in the env."""
    environ = {**os.environ, "PYTHONPATH": str(REPO), **env}
    environ.pop("BATCH_RUNNER_ROOT", None)
    if "BATCH_RUNNER_CONFIG" not in env:
        environ.pop("BATCH_RUNNER_CONFIG", None)
    return subprocess.run(
        [sys.executable, "-m", "batch_runner", *argv],
        capture_output=True,
        text=True,
        timeout=30,
        env=environ,
        cwd=cwd,
    )


# --- 1: -c from another folder reaches the config's own project ----------------------------


@pytest.mark.parametrize("how", ["-c", "env"])
def test_a_named_config_brings_its_project_from_anywhere(tmp_path: Path, how: str) -> None:
    site, elsewhere = tmp_path / "site", tmp_path / "elsewhere"
    elsewhere.mkdir()
    config = write_config(site, [job("quick", "echo quick")])
    named = {"BATCH_RUNNER_CONFIG": str(config)} if how == "env" else {}
    option = ["-c", str(config)] if how == "-c" else []

    ran = run_from(elsewhere, *option, "run-job", "quick", **named)
    assert ran.returncode == 0, ran.stderr
    assert list((site / "logs" / "batch").glob("batch_*.jsonl")), "the run went elsewhere"
    assert not (elsewhere / "logs").exists()
    history = run_from(elsewhere, *option, "history", "--json", **named)
    assert history.returncode == 0, history.stderr
    assert [run["job_name"] for run in json.loads(history.stdout)] == ["quick"]


def test_a_config_outside_a_config_folder_has_its_own_folder_as_root(tmp_path: Path) -> None:
    site = tmp_path / "etc-batch"
    site.mkdir()
    config = site / "jobs.json"
    config.write_text(json.dumps({"jobs": [job("quick", "echo quick")]}))
    ran = run_from(tmp_path, "-c", str(config), "run-job", "quick")
    assert ran.returncode == 0, ran.stderr
    assert (site / "logs" / "state" / "batch_runner.sqlite3").exists()


def test_root_still_wins_over_the_config_folder(tmp_path: Path) -> None:
    config = write_config(tmp_path / "site", [job("quick", "echo quick")])
    chosen = tmp_path / "chosen"
    chosen.mkdir()
    ran = run_from(tmp_path, "-c", str(config), "--root", str(chosen), "run-job", "quick")
    assert ran.returncode == 0, ran.stderr
    assert (chosen / "logs" / "batch").is_dir() and not (tmp_path / "site" / "logs").exists()


# --- 3: cron --all with one job cron cannot express --------------------------------------


def test_cron_all_prints_the_crontab_with_the_odd_job_as_a_comment_and_exits_2(
    tmp_path: Path,
) -> None:
    jobs = [
        job("nightly", "echo n", schedule_type="daily", schedule_time="02:00"),
        job("odd", "echo o", schedule_time="90m"),
        job("seconds", "echo s", schedule_type="daily", schedule_time="02:00:30"),
    ]
    write_config(tmp_path, jobs)
    result = run_from(tmp_path, "cron", "--all")
    assert result.returncode == 2, result.stderr
    lines = result.stdout.splitlines()
    assert any(line.startswith("0 2 * * * ") and "run-job nightly" in line for line in lines)
    left_out = [line for line in lines if line.startswith("# Left out")]
    assert len(left_out) == 2 and "'odd'" in left_out[0] and "'seconds'" in left_out[1]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert [line.split(":")[1].strip() for line in errors] == ["job 'odd'", "job 'seconds'"]
    assert all(len(line) < 400 for line in errors)


# --- 8: a command notifier gets one JSON document per line --------------------------------


def test_notices_appended_by_cat_stay_one_per_line(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [job("quick", "true")],
        settings={"notifiers": [{"type": "command", "command": "cat >> notices.jsonl"}]},
    )
    for _ in range(2):
        result = run_from(tmp_path, "notify-test")
        assert result.returncode == 0, result.stderr
    lines = (tmp_path / "notices.jsonl").read_text().splitlines()
    assert [json.loads(line)["kind"] for line in lines] == ["test", "test"]


# --- 9: a scheduled run's id is its scheduled time ---------------------------------------


def test_a_run_queued_ahead_of_its_occurrence_is_named_after_the_occurrence(
    project: Path,
) -> None:
    from batch_runner.scheduling.daemon import QUEUE_AHEAD_SECONDS, Scheduler

    # A minute before local midnight, on the scheduler's (injected) clock.
    midnight = time.mktime(time.strptime("2026-12-07 00:00:00", "%Y-%m-%d %H:%M:%S"))
    clock = [midnight - 60.0]
    path = write_config(project, [job("tick", "true", schedule_time="60")])
    sched = Scheduler(
        path, project, clock=lambda: clock[0], rand=lambda: 0.0, monotonic=lambda: 0.0
    )
    sched._plan_all(start_up=True)
    clock[0] = midnight - QUEUE_AHEAD_SECONDS * 0.9  # queued a little ahead, still yesterday
    assert sched._fire_due(clock[0]) == 1
    [run] = sched.ctx.store.runs_with_status("pending")
    assert run["run_id"].startswith("20261207-000000-"), run["run_id"]
    sched.ctx.store.close()
    time.sleep(max(0.0, run["due_at"] - time.time()))
    assert run_cli(project, "queue", "worker").returncode == 0
    [record] = read_results(project)
    # Its run log is in the folder of its day, whatever day it runs on.
    assert Path(record["log_file"]).parent.name == "20261207", record["log_file"]


# --- 2: a config edit that does not validate blocks only what needs the new config ----------

READ_AND_CONTROL = [
    ("status",),
    ("history",),
    ("list",),
    ("next",),
    ("queue", "list"),
    ("stop", "quick"),
    ("cron", "quick"),
    ("systemd",),
]


@pytest.mark.parametrize("breakage", ["trailing comma", "bad schedule", "custom log dir"])
def test_read_and_control_commands_work_from_the_last_good_config(
    tmp_path: Path, breakage: str
) -> None:
    settings = {"log_dir": "var/batch"} if breakage == "custom log dir" else {}
    config = write_config(tmp_path, [job("quick", "echo quick")], settings=settings)
    assert run_from(tmp_path, "run-job", "quick").returncode == 0  # validated: a snapshot
    good = config.read_text()
    if breakage == "bad schedule":
        config.write_text(good.replace('"schedule_time": "3600"', '"schedule_time": "25:00x"'))
    else:  # the most common slip of a hand edit; the log dir must still be found
        config.write_text(good.replace('"command": "echo quick"', '"command": "echo quick",,'))
    assert config.read_text() != good

    for argv in READ_AND_CONTROL:
        result = run_from(tmp_path, *argv)
        # stop: the job is found in the last good config, and is not running.
        expected = (1, "is not running") if argv[0] == "stop" else (0, "")
        assert result.returncode == expected[0], (argv, result.stderr)
        assert expected[1] in result.stderr
        warnings = [line for line in result.stderr.splitlines() if line.startswith("warning: ")]
        assert len(warnings) == 1, (argv, result.stderr)
        assert "working from the last config that validated" in warnings[0]
        assert "batch_runner validate" in warnings[0]
    listed = run_from(tmp_path, "list", "--json")
    assert [row["name"] for row in json.loads(listed.stdout)] == ["quick"]
    history = run_from(tmp_path, "history", "--json")
    assert len(json.loads(history.stdout)) == 1  # the run made before the edit

    for argv in (
        ("validate",),
        ("run-job", "quick"),
        ("add", "x", "true", "--type", "daily", "--time", "02:00"),
    ):
        result = run_from(tmp_path, *argv)
        assert result.returncode == 78, (argv, result.stderr)
        assert "last config" not in result.stderr


def test_without_a_config_that_ever_validated_the_error_stands(tmp_path: Path) -> None:
    config = write_config(tmp_path, [job("quick", "echo quick")])
    config.write_text(config.read_text().replace('"3600"', '"25:00x"'))
    result = run_from(tmp_path, "status")
    assert result.returncode == 78 and "last config" not in result.stderr


# --- 6: failures are warnings, the notice threshold an error, with journal priorities ------


def test_failures_are_warnings_and_the_notice_an_error_in_the_journal(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [job("failing", "exit 3", notify_after=1), job("fine", "true")],
    )
    journal = tmp_path / "journal.txt"
    for name in ("failing", "fine"):
        with open(journal, "ab") as stream:
            info = os.fstat(stream.fileno())
            environ = {
                **os.environ,
                "PYTHONPATH": str(REPO),
                "JOURNAL_STREAM": f"{info.st_dev}:{info.st_ino}",  # as systemd sets it
            }
            environ.pop("BATCH_RUNNER_ROOT", None)
            subprocess.run(
                [sys.executable, "-m", "batch_runner", "-l", "info", "run-job", name],
                stdout=subprocess.DEVNULL,
                stderr=stream,
                env=environ,
                cwd=tmp_path,
                timeout=30,
            )
    lines = journal.read_text().splitlines()
    [end_failing] = [line for line in lines if "end failing" in line]
    assert end_failing.startswith("<4>") and " WARNING end failing " in end_failing
    assert "error — exit code 3" in end_failing
    [notice] = [line for line in lines if "notice:" in line]
    assert notice.startswith("<3>") and " ERROR notice: " in notice
    [end_fine] = [line for line in lines if "end fine" in line]
    assert end_fine.startswith("<6>") and " INFO end fine " in end_fine
    # Not the journal (a file of its own): no priority prefixes.
    plain = run_from(tmp_path, "-l", "info", "run-job", "failing", JOURNAL_STREAM="1:2")
    assert any(line.split(" ", 2)[1] == "WARNING" for line in plain.stderr.splitlines())
    assert not any(line.startswith("<") for line in plain.stderr.splitlines())


# --- 12: the smaller surprises ----------------------------------------------------------


def test_validate_names_a_trailing_comma_and_where_it_is(tmp_path: Path) -> None:
    config = write_config(tmp_path, [job("a", "true")])
    text = config.read_text()
    broken = text.replace('"schedule_time": "3600"', '"schedule_time": "3600",')
    config.write_text(broken)
    result = run_from(tmp_path, "validate")
    assert result.returncode == 78
    comma = broken.index('"3600",') + len('"3600"')
    line = broken.count("\n", 0, comma) + 1
    column = comma - broken.rfind("\n", 0, comma)
    assert f"line {line}, column {column}: " in result.stderr
    assert "a trailing comma before '}'" in result.stderr and "remove it" in result.stderr


@pytest.mark.parametrize(
    ("written", "meant"),
    [("9am", "09:00"), ("9:30 pm", "21:30"), ("12am", "00:00"), ("0930", "09:30")],
)
def test_a_time_written_another_way_gets_a_hint(tmp_path: Path, written: str, meant: str) -> None:
    write_config(tmp_path, [job("a", "true", schedule_type="daily", schedule_time=written)])
    result = run_from(tmp_path, "validate")
    assert result.returncode == 78 and f'(did you mean "{meant}"?)' in result.stderr


def test_an_empty_folder_says_how_to_reach_an_existing_project(tmp_path: Path) -> None:
    result = run_from(tmp_path, "list")
    assert result.returncode == 78
    assert "batch_runner init" in result.stderr and "--root DIR" in result.stderr


def test_queue_list_shows_when_a_delayed_run_is_due(tmp_path: Path) -> None:
    write_config(tmp_path, [job("a", "true")])
    assert (
        run_from(tmp_path, "queue", "add", "--at", "2099-01-01T08:00", "--", "true").returncode == 0
    )
    listed = run_from(tmp_path, "queue", "list").stdout.splitlines()
    assert listed[0].split()[:5] == ["ID", "STATUS", "PRIORITY", "CREATED", "DUE"]
    assert "2099-01-01 08:00:00" in listed[1]
    assert "finished runs too" in run_from(tmp_path, "queue", "list", "--help").stdout


def test_a_reason_does_not_repeat_its_status() -> None:
    from batch_runner.runs.execute import reason_after

    assert (
        reason_after("interrupted", "interrupted: runner shutting down") == "runner shutting down"
    )
    assert reason_after("error", "exit code 3\nboom") == "exit code 3"


# --- 11: the scheduler says at start when the first runs come ---------------------------


def test_the_scheduler_logs_the_first_runs_to_come_at_start(tmp_path: Path) -> None:
    import signal

    from conftest import start_cli

    jobs = [job(f"j{n}", "true", schedule_time=f"{n + 1}h") for n in range(7)]
    write_config(tmp_path, jobs)
    scheduler = start_cli(tmp_path, "scheduler")
    lines: list[str] = []
    try:
        assert scheduler.stderr is not None
        while not any("more: `batch_runner next` lists them" in line for line in lines):
            line = scheduler.stderr.readline()
            assert line, "".join(lines)
            lines.append(line)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.communicate(timeout=30)
    nexts = [line.split(" INFO ", 1)[1] for line in lines if " INFO next: " in line]
    assert [line.split()[1] for line in nexts] == ["j0", "j1", "j2", "j3", "j4"]
    assert nexts[0].endswith("(in 1.0 h)\n") and nexts[4].endswith("(in 5.0 h)\n")
    assert "... and 2 more: `batch_runner next` lists them" in lines[-1]


def test_status_says_stopping_during_the_shutdown_grace(tmp_path: Path) -> None:
    import signal

    from conftest import start_cli, wait_for

    marker = tmp_path / "started"
    write_config(
        tmp_path,
        [job("slow", f"touch {marker}; sleep 30", schedule_time="1")],
        settings={"shutdown_grace": 60},
    )
    scheduler = start_cli(tmp_path, "scheduler")
    try:
        wait_for(marker.exists, 30)
        assert run_from(tmp_path, "status").stdout.startswith(
            f"scheduler: alive, pid {scheduler.pid}"
        )
        scheduler.send_signal(signal.SIGTERM)
        wait_for(lambda: "stopping" in run_from(tmp_path, "status").stdout, 30)
        assert run_from(tmp_path, "status").stdout.startswith(
            f"scheduler: stopping, pid {scheduler.pid}"
        )
        status = json.loads(run_from(tmp_path, "status", "--json").stdout)
        assert status["scheduler"] == {"alive": True, "pid": scheduler.pid}  # the contract's
        assert [run["job_name"] for run in status["running"]] == ["slow"]
    finally:
        scheduler.kill()
        scheduler.communicate(timeout=30)


# --- 7: queue worker speaks like the scheduler and exits 1 when a run failed -------------


def test_queue_worker_lines_reasons_and_exit_code(tmp_path: Path) -> None:
    write_config(tmp_path, [job("a", "true")])
    assert run_from(tmp_path, "queue", "add", "--", "true").returncode == 0
    assert run_from(tmp_path, "queue", "add", "--", "sh", "-c", "exit 3").returncode == 0
    result = run_from(tmp_path, "queue", "worker")
    assert result.returncode == 1, result.stdout
    lines = result.stdout.splitlines()
    stamp = r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}[+-]\d{4}"
    assert all(re.match(stamp + r" (INFO|WARNING) ", line) for line in lines), lines
    [failed] = [line for line in lines if " end " in line and "error" in line]
    assert " WARNING end " in failed and failed.endswith(": error — exit code 3")
    assert not any(".py:" in line for line in lines)
    # Nothing failed this time: exit 0.
    assert run_from(tmp_path, "queue", "add", "--", "true").returncode == 0
    assert run_from(tmp_path, "queue", "worker").returncode == 0


def test_queue_worker_on_a_terminal_has_no_source_locations(tmp_path: Path) -> None:
    from test_tables import on_terminal

    write_config(tmp_path, [job("a", "true")])
    assert run_from(tmp_path, "queue", "add", "--", "sh", "-c", "exit 3").returncode == 0
    lines = on_terminal(tmp_path, 120, "queue", "worker", expect=1)
    [failed] = [line for line in lines if " end " in line]
    assert " WARNING end " in failed and failed.rstrip().endswith("error — exit code 3")
    assert not any("worker.py" in line for line in lines), lines


# --- 15: output is stdout; error the reason and the stderr tail --------------------------


def test_output_is_the_jobs_standard_output(tmp_path: Path) -> None:
    write_config(
        tmp_path,
        [
            job("warns", "printf 'out\\n'; echo warn >&2"),
            job("fails", "printf 'out\\n'; echo bad >&2; exit 1"),
        ],
    )
    assert run_from(tmp_path, "run-job", "warns").returncode == 0
    assert run_from(tmp_path, "run-job", "fails").returncode == 1
    warns, fails = read_results(tmp_path)
    assert (warns["output"], warns["error"]) == ("out\n", None)
    assert (fails["output"], fails["error"]) == ("out\n", "exit code 1\nbad")
    logs = run_from(tmp_path, "logs", warns["run_id"]).stdout.splitlines()
    # Both streams, each marked where the log changes over to it (stdout needs no mark first).
    assert logs in (
        ["out", "[batch_runner: stderr]", "warn"],
        ["[batch_runner: stderr]", "warn", "[batch_runner: stdout]", "out"],
    )


def test_last_good_is_not_for_a_config_that_is_gone_nor_a_fifo(tmp_path: Path) -> None:
    config = write_config(tmp_path, [job("quick", "echo quick")])
    assert run_from(tmp_path, "list").returncode == 0  # a snapshot exists
    config.unlink()
    gone = run_from(tmp_path, "list")
    assert gone.returncode == 78 and "does not exist" in gone.stderr
    assert "last config" not in gone.stderr
    os.mkfifo(config)
    fifo = run_from(tmp_path, "list")  # would hang reading a FIFO
    assert fifo.returncode == 78 and "not a regular file" in fifo.stderr


def test_a_jobs_own_batch_runner_reaches_the_runners_root(tmp_path: Path) -> None:
    """--root R with a config elsewhere: the job's `batch_runner` (which gets the config in
    $BATCH_RUNNER_CONFIG) must reach R, not the config's folder (the shipped clean job)."""
    root, configs = tmp_path / "rootA", tmp_path / "cfgs"
    root.mkdir()
    configs.mkdir()
    config = configs / "jobs.json"
    jobs = [job("hello", "echo hello"), job("where", "batch_runner history --json > seen.json")]
    config.write_text(json.dumps({"jobs": jobs}))
    common = ["--root", str(root), "-c", str(config)]
    assert run_from(tmp_path, *common, "run-job", "hello").returncode == 0
    ran = run_from(tmp_path, *common, "run-job", "where")
    assert ran.returncode == 0, ran.stderr
    seen = json.loads((root / "seen.json").read_text())
    assert [run["job_name"] for run in seen] == ["hello"]
    assert not (configs / "logs").exists()
