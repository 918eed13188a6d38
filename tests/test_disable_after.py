"""``disable_after`` (issue 20): after N failed runs in a row the scheduler stops queueing a job
until ``enable NAME``; the state holds it, never the config file.

Real processes throughout: ``run-job``, the scheduler, ``list``, ``status``, ``enable``, a
command notifier appending each notice to a file.
"""

from __future__ import annotations

import json
import signal
import sqlite3
from pathlib import Path
from typing import Any

from conftest import job, read_results, run_cli, start_cli, wait_for, write_config
from margins import SLOW

from batch_runner.state.sqlite import schema
from batch_runner.state.sqlite.store import SqliteStore

FAIL = "exit 2"  # a string with shell syntax: run under sh


def notices(root: Path) -> list[dict[str, Any]]:
    sink = root / "notices.jsonl"
    return [json.loads(line) for line in sink.read_text().splitlines()] if sink.exists() else []


def settings(**extra: Any) -> dict[str, Any]:
    return {"notifiers": [{"type": "command", "command": "cat >> notices.jsonl"}], **extra}


def records_of(root: Path, name: str) -> list[dict[str, Any]]:
    return [r for r in read_results(root) if r["job_name"] == name]


def list_rows(root: Path) -> dict[str, dict[str, Any]]:
    done = run_cli(root, "list", "--json")
    assert done.returncode == 0, done.stderr
    return {row["name"]: row for row in json.loads(done.stdout)}


def test_run_job_failures_disable_a_job_with_settings_default_and_its_own_value(
    project: Path,
) -> None:
    path = write_config(
        project,
        [job("shared", FAIL), job("own", FAIL, disable_after=3, notify_after=1)],
        settings=settings(disable_after=2),
    )
    before = path.read_bytes()
    for _ in range(2):
        assert run_cli(project, "run-job", "shared").returncode == 1
        assert run_cli(project, "run-job", "own").returncode == 1
    rows = list_rows(project)
    # settings.disable_after (2) for "shared"; "own" has its own 3 and one failure to go.
    assert rows["shared"]["disabled_reason"] == (
        "disabled after 2 consecutive failed runs (last: exit code 2)"
    )
    assert rows["shared"]["enabled"] is True  # the config's value, untouched
    assert rows["shared"]["next_run"] is None
    assert "disabled_reason" not in rows["own"]
    # The notice at the disabling failure says so, though notify_after (3) was not reached.
    [shared_notice] = [n for n in notices(project) if n["job_name"] == "shared"]
    assert shared_notice["kind"] == "failure" and shared_notice["disabled"] is True
    assert "disabled after 2 consecutive failed runs" in shared_notice["text"]
    assert "batch_runner enable shared" in shared_notice["text"]
    # "own" was notified at its first failure, not disabled; its third failure disables it and
    # sends a second failure notice saying so.
    assert [n["disabled"] for n in notices(project) if n["job_name"] == "own"] == [False]
    assert run_cli(project, "run-job", "own").returncode == 1
    assert [n["disabled"] for n in notices(project) if n["job_name"] == "own"] == [False, True]
    table = run_cli(project, "list")
    assert table.returncode == 0, table.stderr
    shared_line = next(line for line in table.stdout.splitlines() if line.startswith("shared"))
    assert "no (2 failures)" in shared_line
    status = run_cli(project, "status")
    assert "disabled by failures: shared (2 failures), own (3 failures)" in status.stdout
    status_json = json.loads(run_cli(project, "status", "--json").stdout)
    assert [d["name"] for d in status_json["disabled_jobs"]] == ["shared", "own"]
    # A manual run still runs (the operator asked for it), and so does --queue.
    assert run_cli(project, "run-job", "shared").returncode == 1
    assert len(records_of(project, "shared")) == 3
    queued = run_cli(project, "run-job", "shared", "--queue")
    assert queued.returncode == 0, queued.stderr
    # Nothing of this rewrote the config file.
    assert path.read_bytes() == before
    enabled = run_cli(project, "enable", "shared")
    assert enabled.returncode == 0, enabled.stderr
    assert "cleared" in enabled.stdout and "disabled after 2 consecutive" in enabled.stdout
    assert path.read_bytes() == before  # enabled in the file already: not rewritten
    rows = list_rows(project)
    assert "disabled_reason" not in rows["shared"] and rows["shared"]["error_count"] == 0


def test_enable_of_a_job_disabled_in_the_file_and_by_failures_does_both(project: Path) -> None:
    path = write_config(project, [job("both", FAIL, disable_after=1)])
    assert run_cli(project, "run-job", "both").returncode == 1
    assert run_cli(project, "disable", "both").returncode == 0
    done = run_cli(project, "enable", "both")
    assert done.returncode == 0, done.stderr
    assert "enabled job 'both'" in done.stdout and "cleared" in done.stdout
    assert json.loads(path.read_text())["jobs"][0]["enabled"] is True
    assert "disabled_reason" not in list_rows(project)["both"]


def test_enable_says_so_when_there_is_nothing_to_clear(project: Path) -> None:
    write_config(project, [job("fine", "true", disable_after=1)])
    done = run_cli(project, "enable", "fine")
    assert done.returncode == 0, done.stderr
    assert "cleared" not in done.stdout


def test_the_scheduler_stops_queueing_a_failing_job_and_says_so_once(project: Path) -> None:
    path = write_config(
        project,
        [
            job("flaky", FAIL, schedule_time="1", disable_after=2),
            job("tick", "true", schedule_time="1"),
        ],
        settings=settings(),
    )
    before = path.read_bytes()
    scheduler = start_cli(project, "scheduler")
    try:
        wait_for(lambda: len(records_of(project, "flaky")) >= 2, SLOW)
        wait_for(lambda: len(notices(project)) == 1, SLOW)
        ticks = len(records_of(project, "tick"))
        # The scheduler kept firing occurrences (the other job ran four more times) and queued
        # none of the disabled job's.
        wait_for(lambda: len(records_of(project, "tick")) >= ticks + 4, SLOW)
        assert len(records_of(project, "flaky")) == 2
        row = list_rows(project)["flaky"]
        assert row["disabled_reason"].startswith("disabled after 2 consecutive failed runs")
        status = run_cli(project, "status")
        assert "disabled by failures: flaky (2 failures)" in status.stdout
        [notice] = notices(project)
        assert notice["disabled"] is True and "no longer queues it" in notice["text"]
    finally:
        scheduler.send_signal(signal.SIGTERM)
        _, stderr = scheduler.communicate(timeout=SLOW)
    assert stderr.count("flaky is not scheduled") == 1, stderr
    assert path.read_bytes() == before
    assert run_cli(project, "enable", "flaky").returncode == 0
    scheduler = start_cli(project, "scheduler")
    try:
        wait_for(lambda: len(records_of(project, "flaky")) >= 3, SLOW)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        scheduler.communicate(timeout=SLOW)


def test_a_version_5_database_upgrades_keeping_its_job_states(tmp_path: Path) -> None:
    path = tmp_path / "state" / "batch_runner.sqlite3"
    path.parent.mkdir()
    old = schema.SCHEMA.replace(",\n    disabled_reason TEXT,\n    disabled_at REAL", "")
    assert "disabled_reason" not in old
    with sqlite3.connect(path) as db:
        db.executescript(old)
        db.execute("INSERT INTO meta (key, value) VALUES ('schema_version', '5')")
        db.execute(
            "INSERT INTO job_state (job_name, last_run, last_status, error_count, notified) "
            "VALUES ('nightly', '2026-12-01T02:00:00+00:00', 'error', 4, 1)"
        )
        db.execute(
            "INSERT INTO runs (run_id, job_name, kind, spec, trigger, status, due_at, "
            "created_at) VALUES ('r1', 'nightly', 'job', '{}', 'queue', 'pending', 1, 1)"
        )
    store = SqliteStore(path)
    try:
        state = store.job_state("nightly")
        assert state is not None
        assert (state["error_count"], state["notified"], state["last_status"]) == (4, 1, "error")
        assert state["disabled_reason"] is None and state["disabled_at"] is None
        assert store.get_run("r1") is not None
        store.disable_job("nightly", "disabled after 4 consecutive failed runs", 5.0)
        assert store.job_state("nightly")["disabled_at"] == 5.0
    finally:
        store.close()
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(schema.SCHEMA_VERSION),
        )
    assert schema.SCHEMA_VERSION == 7


def test_next_leaves_out_a_job_its_failures_disabled_and_says_so(project: Path) -> None:
    write_config(project, [job("broken", FAIL, disable_after=1), job("fine", "true")])
    assert run_cli(project, "run-job", "broken").returncode == 1
    done = run_cli(project, "next", "--json")
    assert done.returncode == 0, done.stderr
    assert {item["name"] for item in json.loads(done.stdout)} == {"fine"}
    text = run_cli(project, "next")
    assert "not scheduled, disabled by failures: broken (1 failure)" in text.stdout
    assert run_cli(project, "enable", "broken").returncode == 0
    assert "broken" in {
        item["name"] for item in json.loads(run_cli(project, "next", "--json").stdout)
    }


def test_a_manual_success_does_not_lift_the_disable_and_its_notice_says_so(
    project: Path,
) -> None:
    flag = project / "ok"
    write_config(project, [job("mend", f"test -e {flag}", disable_after=1)], settings=settings())
    assert run_cli(project, "run-job", "mend").returncode == 1
    flag.touch()
    assert run_cli(project, "run-job", "mend").returncode == 0
    failure, recovery = notices(project)
    assert failure["disabled"] is True and recovery["kind"] == "recovery"
    assert recovery["disabled"] is True and "no longer queues it" in recovery["text"]
    row = list_rows(project)["mend"]
    assert row["error_count"] == 0 and row["disabled_reason"].startswith("disabled after 1 ")


def test_the_scheduler_does_not_announce_the_next_run_of_a_disabled_job(project: Path) -> None:
    """Its start-up lines name the first runs to come: not one that will not come."""
    write_config(
        project,
        [
            job("flaky", FAIL, schedule_time="60", disable_after=1),
            job("tick", "true", schedule_time="60"),
        ],
        settings=settings(),
    )
    assert run_cli(project, "run-job", "flaky").returncode == 1  # disabled from now on
    scheduler = start_cli(project, "scheduler")
    try:
        # Its plan stored: its signal handlers are in place, its start-up lines on their way.
        wait_for(lambda: planned(project, "tick"), SLOW)
    finally:
        scheduler.send_signal(signal.SIGTERM)
        _, stderr = scheduler.communicate(timeout=SLOW)
    assert "next: tick at" in stderr, stderr
    assert "next: flaky" not in stderr, stderr


def planned(root: Path, name: str) -> bool:
    with sqlite3.connect(root / "logs" / "state" / "batch_runner.sqlite3", timeout=SLOW) as db:
        row = db.execute("SELECT next_run FROM job_plan WHERE job_name = ?", (name,)).fetchone()
    return row is not None and row[0] is not None
