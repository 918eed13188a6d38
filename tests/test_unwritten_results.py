"""A result line the JSONL cannot take (a full disk) is kept in the state database and appended
later, exactly once, with its original times, to the day file of its original start (SPEC 7).

The end-to-end tests mount a 64 KiB tmpfs on logs/batch only (the state database stays on the
real disk), so they need root and mount; they skip otherwise.
"""

from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import REPO, fill_up, job, run_cli, small_tmpfs, write_config
from fault_helpers import database

from batch_runner.state.journal import already_written, write_waiting
from batch_runner.state.layout import LogLayout
from batch_runner.state.sqlite.store import SqliteStore
from batch_runner.timefmt import day_stamp, iso, parse_iso


@pytest.fixture
def full_results_dir(project: Path) -> Iterator[Path]:
    """logs/batch on a small tmpfs; ``fill`` / ``free`` the file that takes all its room."""
    with small_tmpfs(project / "logs" / "batch", size="64k"):
        yield project


def fill(root: Path) -> None:
    fill_up(root / "logs" / "batch" / "filler")


def free(root: Path) -> None:
    (root / "logs" / "batch" / "filler").unlink()


def lines_by_day(root: Path) -> dict[str, list[dict]]:
    found = {}
    for path in sorted((root / "logs" / "batch").glob("batch_*.jsonl")):
        day = path.name[len("batch_") : -len(".jsonl")]
        found[day] = [json.loads(line) for line in path.read_bytes().split(b"\n") if line]
    return found


def rows(root: Path) -> dict[str, dict]:
    with sqlite3.connect(database(root)) as db:
        db.row_factory = sqlite3.Row
        return {r["run_id"]: dict(r) for r in db.execute("SELECT * FROM runs ORDER BY seq")}


def waiting(root: Path) -> int:
    with sqlite3.connect(database(root)) as db:
        return int(db.execute("SELECT COUNT(*) FROM unwritten_results").fetchone()[0])


def history_ids(root: Path) -> list[str]:
    result = run_cli(root, "history", "--json")
    assert result.returncode == 0, result.stderr
    return [r["run_id"] for r in json.loads(result.stdout)]


def test_a_line_lost_to_a_full_disk_is_appended_by_the_next_run(full_results_dir: Path) -> None:
    root = full_results_dir
    write_config(root, [job("quick", "echo quick")])
    fill(root)
    before = time.time()
    failed = run_cli(root, "run-job", "quick")
    after = time.time()
    assert failed.returncode == 1
    assert "Traceback" not in failed.stderr
    (error,) = [line for line in failed.stderr.splitlines() if line.startswith("error:")]
    assert "No space left on device" in error and "kept" in error, error
    (lost,) = rows(root).values()
    assert lost["status"] == "success"  # the run ended as it did
    assert waiting(root) == 1
    assert history_ids(root) == []

    free(root)
    assert run_cli(root, "run-job", "quick").returncode == 0
    assert waiting(root) == 0
    by_day = lines_by_day(root)
    records = [r for day in by_day.values() for r in day]
    assert sorted(r["run_id"] for r in records) == sorted(rows(root))  # each exactly once
    (record,) = [r for r in records if r["run_id"] == lost["run_id"]]
    assert record in by_day[day_stamp(lost["started_at"])]  # the day file of its start
    # Its own times, not those of the run that appended it.
    assert before <= parse_iso(record["start_time"]) <= parse_iso(record["end_time"]) <= after
    assert record["end_time"] == iso(lost["ended_at"])
    assert record["status"] == "success" and record["output"] == "quick\n"
    assert sorted(history_ids(root)) == sorted(rows(root))


def test_every_attempt_of_a_retried_run_is_kept_and_appended(full_results_dir: Path) -> None:
    root = full_results_dir
    flaky = job("flaky", "echo no; exit 1", max_attempts=2, backoff="fixed", backoff_seconds=0.1)
    write_config(root, [flaky, job("quick", "echo quick")])
    fill(root)
    assert run_cli(root, "run-job", "flaky").returncode == 1
    assert waiting(root) == 2
    free(root)
    worker = run_cli(root, "queue", "worker")  # nothing queued: its start writes them
    assert worker.returncode == 0, worker.stderr
    assert waiting(root) == 0
    records = [r for day in lines_by_day(root).values() for r in day]
    assert sorted((r["attempt"], r["trigger"], r["status"]) for r in records) == [
        (1, "manual", "error"),
        (2, "retry", "error"),
    ]


def test_a_canceled_runs_line_is_kept_too(full_results_dir: Path) -> None:
    root = full_results_dir
    write_config(root, [job("quick", "echo quick")])
    added = run_cli(root, "queue", "add", "--delay", "1h", "--", "true")
    run_id = added.stdout.strip()
    fill(root)
    removed = run_cli(root, "queue", "remove", run_id)
    assert removed.returncode == 1 and "kept" in removed.stderr, removed.stderr
    assert rows(root)[run_id]["status"] == "canceled"
    free(root)
    assert run_cli(root, "run-job", "quick").returncode == 0
    records = [r for day in lines_by_day(root).values() for r in day]
    assert [r["status"] for r in records if r["run_id"] == run_id] == ["canceled"]


# --- exactly once, across a kill between the append and the forgetting ----------------------


def _record(run_id: str, started: float) -> dict:
    return {
        "job_name": "a",
        "start_time": iso(started),
        "end_time": iso(started + 1),
        "status": "success",
        "output": "",
        "error": None,
        "run_id": run_id,
        "attempt": 1,
    }


KILL_AFTER_APPEND = """
import os, signal, sys
from batch_runner.state import journal
from batch_runner.state.layout import LogLayout
from batch_runner.state.sqlite.store import SqliteStore

appended = journal.append_result

def append_then_die(layout, record, started_at):
    # Appended (the line is in the file), its forgetting not committed: the worst moment.
    appended(layout, record, started_at)
    os.kill(os.getpid(), signal.SIGKILL)

journal.append_result = append_then_die
layout = LogLayout(sys.argv[1])
journal.write_waiting(SqliteStore(layout.database), layout)
"""


def test_a_writer_killed_between_the_append_and_the_forgetting_appends_nothing_twice(
    tmp_path: Path,
) -> None:
    layout = LogLayout(tmp_path / "logs")
    store = SqliteStore(layout.database)
    started = 1_700_000_000.0
    store.remember_unwritten("r1", started, _record("r1", started))
    store.close()
    killed = subprocess.run(
        [sys.executable, "-c", KILL_AFTER_APPEND, layout.log_dir],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        timeout=30,
    )
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    day_file = Path(layout.results_file(day_stamp(started)))
    assert len(day_file.read_bytes().splitlines()) == 1  # appended, and still remembered:
    store = SqliteStore(layout.database)
    assert store.has_unwritten()
    assert write_waiting(store, layout) == 0  # found in its day file: only forgotten
    assert not store.has_unwritten()
    assert [json.loads(line)["run_id"] for line in day_file.read_bytes().splitlines()] == ["r1"]


def test_only_the_same_attempt_counts_as_already_written(tmp_path: Path) -> None:
    layout = LogLayout(tmp_path / "logs")
    started = 1_700_000_000.0
    first = _record("r1", started)
    day_file = Path(layout.results_file(day_stamp(started)))
    day_file.parent.mkdir(parents=True)
    day_file.write_text(json.dumps(first) + "\n")
    assert already_written(layout, started, first)
    assert not already_written(layout, started, {**first, "attempt": 2})
    assert not already_written(layout, started + 86400 * 3, first)  # another day's file
