"""The state database's schema: created once, upgraded in place, a newer one refused."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from batch_runner.errors import StorageError
from batch_runner.state.sqlite.schema import SCHEMA_VERSION
from batch_runner.state.sqlite.store import SqliteStore as Store


def _version(path: Path) -> int:
    with sqlite3.connect(path) as db:
        return int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])


def test_a_version_1_database_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:  # what a version-1 database looked like
        db.execute("ALTER TABLE runs DROP COLUMN attempt_status")
        db.execute("UPDATE meta SET value = '1' WHERE key = 'schema_version'")
    store = Store(path)
    store.insert_run(
        {
            "run_id": "r1",
            "job_name": "a",
            "kind": "job",
            "spec": {},
            "trigger": "manual",
            "status": "pending",
            "due_at": 0.0,
            "created_at": 0.0,
        }
    )
    store.update_run("r1", attempt_status="error")
    assert store.get_run("r1")["attempt_status"] == "error"
    assert _version(path) == SCHEMA_VERSION
    with sqlite3.connect(path) as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"


def test_a_newer_database_is_refused_with_a_sentence(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:
        db.execute(
            "UPDATE meta SET value = ? WHERE key = 'schema_version'", (str(SCHEMA_VERSION + 1),)
        )
    with pytest.raises(StorageError, match="newer than this batch_runner understands"):
        Store(path)


def test_a_version_2_database_gains_the_table_of_unwritten_lines(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    Store(path).close()
    with sqlite3.connect(path) as db:  # what a version-2 database looked like
        db.execute("DROP TABLE unwritten_results")
        db.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    store = Store(path)
    assert not store.has_unwritten()
    store.remember_unwritten("r1", 1.0, {"run_id": "r1", "status": "success"})
    (line,) = store.unwritten()
    assert line["run_id"] == "r1" and line["record"] == {"run_id": "r1", "status": "success"}
    assert store.forget_unwritten(line["seq"]) and not store.forget_unwritten(line["seq"])
    assert _version(path) == SCHEMA_VERSION
