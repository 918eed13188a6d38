"""``doctor --repair`` never moves the state database away from under a process that has it
open: every process holding the store keeps a shared lock on ``state/store.lock``, which the
repair takes alone (exit 75 when it cannot), and holds until the new database is built."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import REPO, job, read_results, run_cli, start_cli, wait_for, write_config

from batch_runner.errors import Busy, StorageError
from batch_runner.state import store as store_module
from batch_runner.state.layout import LogLayout
from batch_runner.state.sqlite.store import SqliteStore


def database(root: Path) -> Path:
    return root / "logs" / "state" / "batch_runner.sqlite3"


def aside(root: Path) -> list[Path]:
    return sorted((root / "logs" / "state").glob("batch_runner.sqlite3.damaged-*[0-9]"))


def damage_index(path: Path, index: str) -> None:
    """Overwrite the root page of ``index``: ``integrity_check`` fails, while the queries that
    do not read that index (the queue's, a run by its id) still work."""
    with sqlite3.connect(path) as db:
        db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        page_size = db.execute("PRAGMA page_size").fetchone()[0]
        (root,) = db.execute(
            "SELECT rootpage FROM sqlite_master WHERE name = ?", (index,)
        ).fetchone()
    db.close()
    with open(path, "r+b") as file:
        file.seek((root - 1) * page_size)
        file.write(b"garbage!" * (page_size // 8))


def succeeded(root: Path, run_id: str) -> bool:
    return any(r["run_id"] == run_id and r["status"] == "success" for r in read_results(root))


def add(root: Path, *argv: str) -> str:
    result = run_cli(root, "queue", "add", "--", *argv)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def stop(worker: subprocess.Popen, how: signal.Signals = signal.SIGTERM) -> None:
    worker.send_signal(how)
    try:
        worker.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        worker.kill()
        worker.communicate()


@pytest.fixture
def damaged(project: Path) -> tuple[Path, str]:
    """A database whose ``runs_created`` index is damaged, with one run queued before."""
    write_config(project, [job("good", "echo good")])
    assert run_cli(project, "run-job", "good").returncode == 0
    queued = add(project, "echo", "before")
    damage_index(database(project), "runs_created")
    assert run_cli(project, "doctor").returncode == 1  # damaged, as the check sees it
    return project, queued


def test_repair_refuses_while_a_worker_has_the_database_open(damaged: tuple[Path, str]) -> None:
    root, queued = damaged
    worker = start_cli(root, "queue", "worker", "--forever")
    try:
        wait_for(lambda: succeeded(root, queued), 60)  # the worker has the database open
        inode = database(root).stat().st_ino
        checked = run_cli(root, "doctor")  # the read-only check still works meanwhile
        assert checked.returncode == 1 and "damaged" in checked.stdout, checked.stderr
        refused = run_cli(root, "doctor", "--repair", "--yes")
        assert refused.returncode == 75, refused.stdout + refused.stderr
        assert "Traceback" not in refused.stderr
        (error,) = refused.stderr.splitlines()
        assert "queue worker --forever" in error and f"pid {worker.pid}" in error
        assert database(root).stat().st_ino == inode and not aside(root)  # nothing changed
    finally:
        stop(worker, signal.SIGKILL)  # no goodbye: the kernel lets go of its lock all the same

    repaired = run_cli(root, "doctor", "--repair", "--yes")
    assert repaired.returncode == 0, repaired.stdout + repaired.stderr
    assert len(aside(root)) == 1
    after = add(root, "echo", "after-repair")
    worker = start_cli(root, "queue", "worker", "--forever")
    try:
        wait_for(lambda: succeeded(root, after), 60)
    finally:
        stop(worker)


HOLDER = """
import sys
from batch_runner.state.store import StoreLock
lock = StoreLock(sys.argv[1])
print("held" if lock.take_alone() else "busy", flush=True)
sys.stdin.readline()
"""


def hold_alone(layout: LogLayout) -> subprocess.Popen:
    """Another process holding the store lock alone, as ``doctor --repair`` does."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLDER, layout.store_lock],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
    )
    assert holder.stdout is not None and holder.stdout.readline() == "held\n"
    return holder


def release(holder: subprocess.Popen) -> None:
    holder.communicate("\n", timeout=30)


def has_open(pid: int, path: str) -> bool:
    fds = Path(f"/proc/{pid}/fd")
    try:
        return any(os.readlink(fds / fd) == path for fd in os.listdir(fds))
    except OSError:
        return False


def test_a_process_that_starts_during_a_repair_waits_for_it(project: Path) -> None:
    write_config(project, [job("good", "echo good")])
    assert run_cli(project, "run-job", "good").returncode == 0
    layout = LogLayout(project / "logs")
    holder = hold_alone(layout)
    try:
        adder = subprocess.Popen(
            [sys.executable, "-m", "batch_runner", "queue", "add", "--", "true"],
            env={**os.environ, "BATCH_RUNNER_ROOT": str(project), "PYTHONPATH": str(REPO)},
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        wait_for(lambda: has_open(adder.pid, layout.store_lock), 30)  # it waits at the lock
        assert adder.poll() is None
    finally:
        release(holder)
    out, err = adder.communicate(timeout=30)
    assert adder.returncode == 0, err
    with sqlite3.connect(layout.database) as db:
        (status,) = db.execute(
            "SELECT status FROM runs WHERE run_id = ?", (out.strip(),)
        ).fetchone()
    db.close()
    assert status == "pending"


def test_a_repair_that_takes_too_long_is_one_sentence(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    layout = LogLayout(project / "logs")
    SqliteStore(layout.database).close()
    monkeypatch.setattr(store_module, "REPAIR_WAIT_SECONDS", 0.2)
    holder = hold_alone(layout)
    try:
        with pytest.raises(Busy) as raised:
            SqliteStore(layout.database)
    finally:
        release(holder)
    message = str(raised.value)
    assert "doctor --repair" in message and f"pid {holder.pid}" in message
    assert layout.database in message
    SqliteStore(layout.database).close()  # once it is done, the store opens at once


def test_the_store_lock_is_no_symlink(project: Path, tmp_path: Path) -> None:
    layout = LogLayout(project / "logs")
    os.makedirs(layout.state_dir)
    os.symlink(tmp_path / "elsewhere", layout.store_lock)
    with pytest.raises(StorageError, match="symlink"):
        SqliteStore(layout.database)
    assert not (tmp_path / "elsewhere").exists()


def test_a_repair_that_finds_the_database_healthy_once_alone_moves_nothing(
    project: Path,
) -> None:
    """Between doctor's first look and taking the store alone, another repair may have
    finished: the healthy database (and runs queued since) must stay where it is."""
    from batch_runner.cli import app
    from batch_runner.cli.commands.doctor import _rebuild

    write_config(project, [job("quick", "true")])
    queued = add(project, "--delay", "1h", "--", "true")
    args = type("Args", (), {"config": None, "root": str(project), "command": "doctor"})()
    ctx = app.context(args)  # type: ignore[arg-type]
    assert _rebuild(ctx, True) == []
    ctx.store.close()
    assert aside(project) == []
    assert queued in run_cli(project, "queue", "list").stdout
