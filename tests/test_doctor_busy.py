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
from batch_runner.state import storelock as store_module
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
from batch_runner.state.storelock import StoreLock
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


def test_a_repair_waiting_for_its_answer_holds_no_lock(damaged: tuple[Path, str]) -> None:
    """The `[y/N]` question comes before any lock: other commands go on while it waits."""
    import fcntl
    import pty
    import selectors

    from batch_runner.state.locks import FileLock

    root, _ = damaged
    layout = LogLayout(root / "logs")
    primary, secondary = pty.openpty()
    env = {**os.environ, "BATCH_RUNNER_ROOT": str(root), "PYTHONPATH": str(REPO)}
    env.pop("BATCH_RUNNER_CONFIG", None)
    with subprocess.Popen(
        [sys.executable, "-m", "batch_runner", "doctor", "--repair"],
        stdin=secondary,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env=env,
        cwd=root,
    ) as doctor:
        os.close(secondary)
        assert doctor.stderr is not None
        try:
            asked, seen = selectors.DefaultSelector(), b""
            asked.register(doctor.stderr, selectors.EVENT_READ)
            while b"[y/N]" not in seen:  # it waits at the question now
                assert asked.select(timeout=60), seen
                chunk = os.read(doctor.stderr.fileno(), 4096)
                assert chunk, seen
                seen += chunk
            fd = os.open(layout.store_lock, os.O_RDONLY)
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)  # BlockingIOError before the fix
            finally:
                os.close(fd)
            executor = FileLock(layout.executor_lock)
            assert executor.acquire(wait=False)
            executor.release()
            os.write(primary, b"n\n")
            doctor.communicate(timeout=60)
        finally:
            if doctor.poll() is None:
                doctor.kill()
    os.close(primary)
    assert doctor.returncode == 1 and not aside(root)


def test_repair_refuses_after_the_lock_file_was_removed(damaged: tuple[Path, str]) -> None:
    """A worker that locked a file since removed is not seen by the lock: the repair looks for
    open handles of the database itself."""
    root, queued = damaged
    worker = start_cli(root, "queue", "worker", "--forever")
    try:
        wait_for(lambda: succeeded(root, queued), 60)  # the worker has the database open
        inode = database(root).stat().st_ino
        os.unlink(LogLayout(root / "logs").store_lock)
        refused = run_cli(root, "doctor", "--repair", "--yes")
        assert refused.returncode == 75, refused.stdout + refused.stderr
        (error,) = refused.stderr.splitlines()
        assert f"pid {worker.pid}" in error, error
        assert database(root).stat().st_ino == inode and not aside(root)
    finally:
        stop(worker, signal.SIGKILL)


def test_a_store_locks_the_lock_file_at_its_path_not_a_removed_one(project: Path) -> None:
    """The lock file replaced between opening and locking it: the store locks the new one."""
    layout = LogLayout(project / "logs")
    SqliteStore(layout.database).close()
    real_flock, swapped = store_module.fcntl.flock, []

    def flock_then_replace(fd: int, how: int) -> None:
        real_flock(fd, how)
        if not swapped:  # another process removes the file and makes a new one meanwhile
            swapped.append(True)
            os.unlink(layout.store_lock)
            Path(layout.store_lock).touch()

    store_module.fcntl.flock = flock_then_replace  # type: ignore[assignment]
    try:
        store = SqliteStore(layout.database)
    finally:
        store_module.fcntl.flock = real_flock
    try:
        assert swapped
        held = os.fstat(store._lock._fd).st_ino  # type: ignore[arg-type]
        assert held == os.stat(layout.store_lock).st_ino
    finally:
        store.close()


def test_a_loop_in_the_folder_path_is_not_called_a_symlink_lock(tmp_path: Path) -> None:
    os.symlink("loop", tmp_path / "loop")
    database_path = tmp_path / "loop" / "logs" / "state" / "batch_runner.sqlite3"
    with pytest.raises(StorageError) as raised:
        SqliteStore(database_path)
    message = str(raised.value)
    assert "is a symlink" not in message and "`rm" not in message
    assert "store.lock" in message and "symbolic links" in message


def test_a_file_system_without_locks_is_one_sentence(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import errno

    layout = LogLayout(project / "logs")

    def no_locks(fd: int, how: int) -> None:
        raise OSError(errno.ENOLCK, os.strerror(errno.ENOLCK))

    monkeypatch.setattr(store_module.fcntl, "flock", no_locks)
    for attempt in (
        lambda: SqliteStore(layout.database),
        lambda: store_module.StoreLock(layout.store_lock).take_alone(),
    ):
        with pytest.raises(StorageError) as raised:
            attempt()
        message = str(raised.value)
        assert layout.store_lock in message and "does not support locks" in message


def test_a_busy_database_is_said_before_the_question(damaged: tuple[Path, str]) -> None:
    """No "[y/N]" to answer for nothing: with a worker attached, the refusal comes first (here
    without --yes and without a terminal, which would otherwise be a usage error, exit 2)."""
    root, queued = damaged
    worker = start_cli(root, "queue", "worker", "--forever")
    try:
        wait_for(lambda: succeeded(root, queued), 60)
        refused = run_cli(root, "doctor", "--repair")
        assert refused.returncode == 75, refused.stdout + refused.stderr
        assert f"pid {worker.pid}" in refused.stderr and "[y/N]" not in refused.stderr
    finally:
        stop(worker, signal.SIGKILL)
