"""``clean``: what is older than the retention goes, what is newer or unfinished stays."""

from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

from conftest import REPO, job, run_cli, write_config

from batch_runner.state.sqlite.store import SqliteStore as Store


def test_clean_removes_only_old_finished_things(project: Path) -> None:
    write_config(project, [job("a", "echo a")], settings={"retention_days": 7})
    assert run_cli(project, "run-job", "a").returncode == 0
    logs = project / "logs"
    old_results = logs / "batch" / "batch_20200101.jsonl"
    old_results.write_text('{"job_name": "a"}\n')
    old_runs = logs / "runs" / "20200101"
    old_runs.mkdir(parents=True)
    (old_runs / "x.log").write_text("old output\n")
    store = Store(logs / "state" / "batch_runner.sqlite3")
    long_ago = time.time() - 30 * 86400
    for run_id, status in (("old-done", "success"), ("old-waiting", "pending")):
        store.insert_run(
            {
                "run_id": run_id,
                "job_name": "a",
                "kind": "job",
                "spec": {},
                "trigger": "queue",
                "status": status,
                "due_at": long_ago,
                "created_at": long_ago,
                "ended_at": long_ago,
            }
        )
    result = run_cli(project, "clean")
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == (
        "kept the last 7 days: removed 1 result file, 1 day of run logs, 1 finished run"
    )
    assert not old_results.exists() and not old_runs.exists()
    assert len(list((logs / "batch").glob("*.jsonl"))) == 1  # today's stays
    assert store.get_run("old-done") is None
    assert store.get_run("old-waiting")["status"] == "pending"


def test_keep_days_must_be_sensible(project: Path) -> None:
    write_config(project, [job("a", "true")])
    result = run_cli(project, "clean", "--keep-days", "-1")
    assert result.returncode == 2 and "keep-days" in result.stderr


def test_the_shipped_config_runs_its_jobs(tmp_path: Path) -> None:
    """Every shipped job really runs on this machine, the weekly clean-up included."""
    shutil.copytree(REPO / "config", tmp_path / "config")
    listing = run_cli(tmp_path, "list", "--json")
    assert listing.returncode == 0, listing.stderr
    names = [row["name"] for row in json.loads(listing.stdout)]
    assert "batch_runner_cleanup" in names
    for name in names:
        result = run_cli(tmp_path, "run-job", name)
        assert result.returncode == 0, (name, result.stdout, result.stderr)


def test_keep_days_0_keeps_nothing_finished(project: Path) -> None:
    """Issue 17.12: it said "kept the last 1 days" and left today's runs in the history."""
    write_config(project, [job("a", "echo a")])
    assert run_cli(project, "run-job", "a").returncode == 0
    waiting = run_cli(project, "queue", "add", "--delay", "1h", "--", "true").stdout.strip()
    result = run_cli(project, "clean", "--keep-days", "0")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("kept nothing finished: removed 1 result file, 1 day of run")
    assert json.loads(run_cli(project, "history", "--json").stdout) == []
    assert [
        r["run_id"] for r in json.loads(run_cli(project, "queue", "list", "--json").stdout)
    ] == [waiting]
