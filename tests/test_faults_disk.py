"""A full disk and a read-only log dir (SPEC 13): one sentence, no traceback, nothing corrupted,
and runs work again as soon as space is freed or the dir is writable again.

The log dir is a 2 MiB tmpfs, so these tests need root (and mount); they skip otherwise.
"""

from __future__ import annotations

import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import fill_up, job, run_cli, small_tmpfs, write_config
from fault_helpers import FINISHED, database, integrity, jsonl_records, runs


@pytest.fixture
def small_disk(project: Path) -> Iterator[Path]:
    with small_tmpfs(project / "logs"):
        yield project


def _in_order(root: Path) -> list[str]:
    """Run ids in the order the runs were accepted."""
    with sqlite3.connect(database(root), timeout=30) as db:
        return [row[0] for row in db.execute("SELECT run_id FROM runs ORDER BY seq")]


def _one_sentence_error(result: subprocess.CompletedProcess) -> str:
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    return errors[0]


def test_a_full_disk_is_one_sentence_and_runs_resume_once_freed(small_disk: Path) -> None:
    root = small_disk
    write_config(root, [job("quick", "echo quick")])
    assert run_cli(root, "run-job", "quick").returncode == 0
    filler = root / "logs" / "filler"
    fill_up(filler)
    error = _one_sentence_error(run_cli(root, "run-job", "quick"))
    assert "disk" in error or "space" in error
    filler.unlink()
    assert integrity(root) == "ok"
    assert run_cli(root, "run-job", "quick").returncode == 0
    records = jsonl_records(root)
    assert [r["status"] for r in records] == ["success", "success"]


def test_a_disk_filled_during_the_run_loses_no_run(small_disk: Path) -> None:
    # The job itself fills the disk: the run log and the result cannot be written.
    root = small_disk
    filler = root / "logs" / "filler"
    write_config(
        root,
        [job("quick", "echo quick"), job("fill", f"head -c 4M /dev/zero > {filler}; seq 100000")],
    )
    assert run_cli(root, "run-job", "quick").returncode == 0
    error = _one_sentence_error(run_cli(root, "run-job", "fill"))
    assert "No space left" in error
    filler.unlink()
    assert integrity(root) == "ok"
    assert run_cli(root, "run-job", "quick").returncode == 0
    status = runs(root)
    # None lost. The state database shares the full disk here, so the fill run could not be
    # recorded either: the next runner marks it interrupted.
    assert len(status) == 3 and set(status.values()) <= FINISHED, status
    jsonl_records(root)  # every line parses


def test_a_read_only_log_dir_is_one_sentence_and_runs_resume(small_disk: Path) -> None:
    root = small_disk
    write_config(root, [job("quick", "echo quick")])
    assert run_cli(root, "run-job", "quick").returncode == 0
    logs = root / "logs"
    subprocess.run(["mount", "-o", "remount,ro", str(logs)], check=True, timeout=10)
    error = _one_sentence_error(run_cli(root, "run-job", "quick"))
    assert str(logs) in error
    subprocess.run(["mount", "-o", "remount,rw", str(logs)], check=True, timeout=10)
    assert integrity(root) == "ok"
    assert run_cli(root, "run-job", "quick").returncode == 0
    assert [r["status"] for r in jsonl_records(root)] == ["success", "success"]


def test_a_result_that_cannot_be_written_still_ends_the_run_as_it_ended(project: Path) -> None:
    # Only the JSONL file is unwritable (a directory stands in its way); the database is fine.
    write_config(project, [job("quick", "echo quick")])
    assert run_cli(project, "run-job", "quick").returncode == 0
    (results,) = (project / "logs" / "batch").glob("batch_*.jsonl")
    results.unlink()
    results.mkdir()
    error = _one_sentence_error(run_cli(project, "run-job", "quick"))
    assert str(results) in error
    assert list(runs(project).values()) == ["success", "success"]
    assert "kept in the state database" in error
    results.rmdir()
    assert run_cli(project, "run-job", "quick").returncode == 0
    assert list(runs(project).values()) == ["success"] * 3
    # The line the directory kept out is appended by the next run, once (the first run's
    # line went with the file this test removed).
    assert [r["run_id"] for r in jsonl_records(project)] == _in_order(project)[1:]


def test_a_result_that_cannot_be_written_before_a_retry_leaves_no_run_behind(
    project: Path,
) -> None:
    write_config(
        project,
        [
            job("quick", "echo quick"),
            job("flaky", "echo no; exit 1", max_attempts=2, backoff="fixed", backoff_seconds=0.1),
        ],
    )
    assert run_cli(project, "run-job", "quick").returncode == 0
    (results,) = (project / "logs" / "batch").glob("batch_*.jsonl")
    results.unlink()
    results.mkdir()
    result = run_cli(project, "run-job", "flaky")
    error = _one_sentence_error(result)
    assert str(results) in error
    # Both attempts ran: run-job stayed with its run to the end, which is recorded.
    assert sorted(runs(project).values()) == ["error", "success"]
    results.rmdir()
    again = run_cli(project, "run-job", "flaky")  # not turned away by a leftover retry
    assert again.returncode == 1, again.stderr
    assert sorted(runs(project).values()) == ["error", "error", "success"]
    # Both attempts of the first flaky run are appended, each once, before the second's.
    first, second = _in_order(project)[1:]
    attempts = [(r["run_id"], r["attempt"]) for r in jsonl_records(project)]
    assert attempts == [(first, 1), (first, 2), (second, 1), (second, 2)]
