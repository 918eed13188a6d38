"""A damaged state database (SPEC 13): every command that reads or writes it says so in one
sentence naming the file and what to do, exits 1 (a storage error, SPEC 9), and never prints a
traceback; reads go through the same error mapping as writes."""

from __future__ import annotations

import json
import sqlite3
import subprocess
from pathlib import Path

import pytest
from conftest import job, run_cli, start_cli, write_config

from batch_runner.errors import DamagedState, StorageError
from batch_runner.state.sqlite import schema
from batch_runner.state.sqlite.store import SqliteStore


def damage_runs_table(database: Path) -> None:
    """Overwrite the page that holds the root of the runs table (page 4 of a new database)."""
    with sqlite3.connect(database) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute("SELECT rootpage FROM sqlite_master WHERE name = 'runs'").fetchone()
    db.close()
    with open(database, "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"garbage!" * (page_size // 8))


def damage_header(database: Path) -> None:
    with open(database, "r+b") as file:
        file.write(b"this is no database at all")


@pytest.fixture
def damaged(project: Path) -> Path:
    write_config(project, [job("quick", "echo quick")])
    assert run_cli(project, "run-job", "quick").returncode == 0
    for n in range(3):
        assert (
            run_cli(project, "queue", "add", "--delay", "1h", "--", "echo", str(n)).returncode == 0
        )
    damage_runs_table(project / "logs" / "state" / "batch_runner.sqlite3")
    return project


def one_sentence(result: subprocess.CompletedProcess, database: Path) -> str:
    assert result.returncode == 1, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    errors = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert str(database) in errors[0]
    return errors[0]


@pytest.mark.parametrize(
    "argv",
    [
        ["queue", "list"],
        ["status"],
        ["queue", "worker"],
        ["run-job", "quick"],
        ["queue", "add", "--", "true"],
        ["queue", "show", "2"],
    ],
    ids=lambda argv: " ".join(argv),
)
def test_a_damaged_database_is_one_sentence_naming_it_and_the_way_out(
    damaged: Path, argv: list[str]
) -> None:
    database = damaged / "logs" / "state" / "batch_runner.sqlite3"
    error = one_sentence(run_cli(damaged, *argv), database)
    assert "is damaged" in error
    assert "batch_runner doctor --repair" in error
    assert "move" in error and "aside" in error
    assert "JSONL" in error  # what still holds the finished runs


def test_a_file_that_is_no_database_is_the_same_sentence(project: Path) -> None:
    write_config(project, [job("quick", "echo quick")])
    assert run_cli(project, "run-job", "quick").returncode == 0
    database = project / "logs" / "state" / "batch_runner.sqlite3"
    damage_header(database)
    for argv in (["status"], ["run-job", "quick"], ["list"]):
        error = one_sentence(run_cli(project, *argv), database)
        assert "is damaged" in error and "doctor --repair" in error


def test_the_scheduler_exits_with_the_sentence(damaged: Path) -> None:
    database = damaged / "logs" / "state" / "batch_runner.sqlite3"
    # A run due now makes the executor thread read the damaged table at once.
    scheduler = start_cli(damaged, "scheduler")
    try:
        _, stderr = scheduler.communicate(timeout=20)
    except subprocess.TimeoutExpired:
        scheduler.kill()
        _, stderr = scheduler.communicate()
    assert scheduler.returncode == 1, stderr
    assert "Traceback" not in stderr
    assert any(
        line.startswith("error:") and str(database) in line and "doctor --repair" in line
        for line in stderr.splitlines()
    ), stderr


# --- the store itself: every read is mapped ---------------------------------------------------


def _store_with_runs(path: Path) -> SqliteStore:
    store = SqliteStore(path)
    for n in range(40):  # more than one page of rows, so the table's root is an inner page
        store.insert_run(
            {
                "run_id": f"r{n:03d}",
                "job_name": "a",
                "kind": "job",
                "spec": {"command": "x" * 200},
                "trigger": "manual",
                "status": "pending" if n % 2 else "success",
                "due_at": 0.0,
                "created_at": float(n),
            }
        )
    store.save_job_state({"job_name": "a", "last_run": None, "last_status": None, "error_count": 0})
    return store


READS = {
    "get_run": lambda s: s.get_run("r001"),
    "find_runs": lambda s: s.find_runs("r00"),
    "run_extras": lambda s: s.run_extras(["r001", "r002"]),
    "active_run_of_job": lambda s: s.active_run_of_job("a"),
    "runs_with_status": lambda s: s.runs_with_status("pending", "running"),
    "recent_finished": lambda s: s.recent_finished(10),
    "next_due_at": lambda s: s.next_due_at(),
}


@pytest.mark.parametrize("read", list(READS), ids=list(READS))
def test_every_read_of_a_damaged_database_is_a_storage_error(tmp_path: Path, read: str) -> None:
    path = tmp_path / "state.sqlite3"
    _store_with_runs(path).close()
    damage_runs_table(path)
    store = SqliteStore(path)  # the schema's own table is intact: opening works
    with pytest.raises(DamagedState) as caught:
        READS[read](store)
    assert str(path) in str(caught.value)
    store.close()


def test_a_damaged_schema_table_fails_at_open_with_the_sentence(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    _store_with_runs(path).close()
    damage_header(path)
    with pytest.raises(DamagedState, match="is damaged"):
        SqliteStore(path)


def test_a_database_locked_beyond_the_busy_timeout_is_a_storage_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "state.sqlite3"
    _store_with_runs(path).close()
    monkeypatch.setattr(schema, "BUSY_TIMEOUT_SECONDS", 0.05)
    holder = sqlite3.connect(path, isolation_level=None)
    # An exclusive lock keeps even WAL readers out (another tool, a `sqlite3` shell).
    holder.execute("PRAGMA locking_mode = EXCLUSIVE")
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(StorageError, match="locked") as caught:
            SqliteStore(path)
        assert str(path) in str(caught.value)
        assert not isinstance(caught.value, DamagedState)
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    with sqlite3.connect(path) as db:  # taken for a new database, it would have been emptied
        assert db.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 40


def test_history_and_logs_still_read_the_results_with_a_damaged_database(damaged: Path) -> None:
    """The results are what `doctor --repair` rebuilds from: a damaged database must not hide
    them, only the queue's extras (priority, progress) are left out, with a warning."""
    history = run_cli(damaged, "history", "--json")
    assert history.returncode == 0, history.stderr
    [run] = [r for r in json.loads(history.stdout) if r["job_name"] == "quick"]
    assert run["priority"] is None and "is damaged" in history.stderr
    logs = run_cli(damaged, "logs", run["run_id"])
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout == "quick\n"
